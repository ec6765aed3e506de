"""The 2026-07-28 request headers that mirror the body: checked on the way in, written on the way out.

Streamable HTTP in 2026-07-28 copies the body's ``method`` into ``Mcp-Method`` and, for
``tools/call``, ``prompts/get`` and ``resources/read``, ``params.name`` or ``params.uri`` into
``Mcp-Name`` (with ``MCP-Protocol-Version`` beside them), so load balancers and gateways can route
without reading the body. When something in front routes, rate-limits or authorizes on a header
while the server runs the body, a request whose two disagree is a confused deputy. So the spec has
every server that reads the body refuse a request whose mirrored headers are missing, malformed or
different from the body: HTTP 400 with JSON-RPC error -32020 (HeaderMismatch). The guard decides
policy on the body alone; this check makes sure nothing in front of it was shown another request.
The same holds for ``Mcp-Param-{Name}``: a tool may mark properties of its input schema with
``x-mcp-header`` (only along a chain of ``properties``, only string, integer or boolean), and a
call must then carry each such argument in that header, and no such header without the argument.

Header names are case-insensitive, values are not. A name that is not plain visible ASCII travels
as ``=?base64?<base64 of its UTF-8>?=`` and is decoded before the comparison; a malformed one
matches nothing.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, Protocol

from . import era

__all__ = ["HEADER_MISMATCH", "NAMED", "encode_value", "mismatch", "param_headers", "param_mismatch"]

HEADER_MISMATCH = -32020
# The methods whose target is mirrored in Mcp-Name, and the params field it comes from.
NAMED: Mapping[str, str] = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

_VERSION, _METHOD, _NAME = "mcp-protocol-version", "mcp-method", "mcp-name"
_SENTINEL = re.compile(r"=\?base64\?(.*)\?=", re.DOTALL)
# RFC 9110 field-value characters: visible ASCII, space and tab. Anything else (Starlette hands
# the raw bytes over as latin-1) is a malformed header, never a near match.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
_PLAIN_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


class _Headers(Protocol):
    def getlist(self, key: str) -> list[str]: ...


def mismatch(headers: _Headers, message: Mapping[str, Any]) -> str | None:
    """Why a 2026-07-28 request's mirrored headers do not stand for its body, or None when they do.

    ``headers`` is the request's header multimap (Starlette's ``Headers``); ``message`` the parsed
    JSON-RPC request. The reason names headers and body fields, never their values."""
    found: dict[str, str | None] = {}
    for key in (_VERSION, _METHOD, _NAME):
        values = headers.getlist(key)
        if len(values) > 1:  # a router reading the first copy and one reading the last would disagree
            return f"{_title(key)} header appears more than once"
        if values and not _FIELD_VALUE.fullmatch(values[0]):
            return f"{_title(key)} header holds characters a header value may not carry"
        found[key] = values[0] if values else None
    params = message.get("params")
    params = params if isinstance(params, Mapping) else {}
    meta = params.get("_meta")
    body_version = meta.get(era.PROTOCOL_KEY) if isinstance(meta, Mapping) else None
    if found[_VERSION] is None:
        return "MCP-Protocol-Version header is missing"
    if found[_VERSION] != body_version:
        return f"MCP-Protocol-Version header does not match the body's _meta {era.PROTOCOL_KEY}"
    method = message.get("method")
    if found[_METHOD] is None:
        return "Mcp-Method header is missing: every 2026-07-28 request mirrors its method in it"
    if found[_METHOD] != method:
        return "Mcp-Method header does not match the body's method"
    field = NAMED.get(method) if isinstance(method, str) else None
    if field is None:
        return None
    return _name_mismatch(found[_NAME], params.get(field), str(method), field)


def _name_mismatch(header: str | None, expected: Any, method: str, field: str) -> str | None:
    if header is None:
        if expected is None:
            return None  # no target in the body either: the request itself is refused further on
        return f"Mcp-Name header is missing: a {method} request mirrors params.{field} in it"
    decoded = decode_value(header)
    if decoded is None:
        return "Mcp-Name header holds a malformed base64 value"
    if decoded != expected:
        return f"Mcp-Name header does not match the body's params.{field}"
    return None


def decode_value(value: str) -> str | None:
    """A mirrored header value as the text it stands for; None for a malformed base64 form."""
    match = _SENTINEL.fullmatch(value)
    if match is None:
        return value
    payload = match.group(1)
    try:
        raw = base64.b64decode(payload, validate=True)
        # Only the canonical form: two spellings of one value would be two keys to a cache or router.
        if base64.b64encode(raw).decode("ascii") != payload:
            return None
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def encode_value(text: str) -> str:
    """``text`` as a header value: itself when plain visible ASCII (inner spaces allowed) and not
    shaped like the base64 form, else that form."""
    if _PLAIN_VALUE.fullmatch(text) and _SENTINEL.fullmatch(text) is None:
        return text
    return "=?base64?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def param_mismatch(headers: _Headers, input_schema: Any, arguments: Any) -> str | None:
    """Why a tools/call's ``Mcp-Param-*`` headers do not stand for its ``arguments`` under the
    tool's ``input_schema``, or None when they do (or the schema marks nothing it may mark)."""
    marked = _marked(input_schema)
    for token, path, kind in marked or ():
        header = f"Mcp-Param-{token}"
        values = headers.getlist(header.lower())
        if len(values) > 1:
            return f"{header} header appears more than once"
        value = _value_at(arguments, path)
        rendered = None if value is None else _rendered(value, kind)
        if not values:
            if rendered is not None:
                return f"{header} header is missing: the tool mirrors argument {'.'.join(path)} in it"
            continue
        if not _FIELD_VALUE.fullmatch(values[0]):
            return f"{header} header holds characters a header value may not carry"
        decoded = decode_value(values[0])
        if decoded is None:
            return f"{header} header holds a malformed base64 value"
        if rendered is None or not _same(decoded, rendered, value, kind):
            return f"{header} header does not match argument {'.'.join(path)}"
    return None


def param_headers(input_schema: Any, arguments: Any) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers a 2026-07-28 client sends with a call of a tool whose input
    schema is ``input_schema``: one per marked argument present, in header-safe form."""
    headers: dict[str, str] = {}
    for token, path, kind in _marked(input_schema) or ():
        value = _value_at(arguments, path)
        rendered = None if value is None else _rendered(value, kind)
        if rendered is not None:
            headers[f"Mcp-Param-{token}"] = encode_value(rendered)
    return headers


def marks_parameters(input_schema: Any) -> bool:
    """Whether calls of a tool with this input schema carry ``Mcp-Param-*`` headers."""
    return bool(_marked(input_schema))


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_KINDS = ("string", "integer", "boolean")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _marked(schema: Any) -> list[tuple[str, tuple[str, ...], str]] | None:
    """(token, property path, type) for each ``x-mcp-header`` on a chain of ``properties``; None
    when one is not a valid mark (conforming clients then drop the tool: nothing to check)."""
    found: list[tuple[str, tuple[str, ...], str]] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        properties = node.get("properties") if isinstance(node, Mapping) else None
        for key, sub in (properties.items() if isinstance(properties, Mapping) else ()):
            if not isinstance(sub, Mapping):
                continue
            token = sub.get("x-mcp-header")
            if token is not None:
                if not isinstance(token, str) or not _TOKEN.fullmatch(token) or sub.get("type") not in _KINDS:
                    return None
                found.append((token, (*path, str(key)), str(sub["type"])))
            stack.append((sub, (*path, str(key))))
    if len({token.lower() for token, _, _ in found}) != len(found):
        return None  # two marks one header apart only by case
    return found


def _value_at(arguments: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(arguments, Mapping):
            return None
        arguments = arguments.get(key)
    return arguments


def _rendered(value: Any, kind: str) -> str | None:
    """The header text a client sends for ``value``; None when no conforming client sends one."""
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value).is_integer() and abs(value) <= 2**53 - 1:
            return str(int(value))
        return None
    if kind == "string" and isinstance(value, str):
        return value
    return None


def _same(decoded: str, rendered: str, value: Any, kind: str) -> bool:
    if kind != "integer":
        return decoded == rendered
    # Numerically, as the spec advises ("42.0" stands for 42), but only for a plain decimal number.
    return _NUMBER.fullmatch(decoded) is not None and float(decoded) == float(value)


def _title(key: str) -> str:
    return {_VERSION: "MCP-Protocol-Version", _METHOD: "Mcp-Method", _NAME: "Mcp-Name"}[key]

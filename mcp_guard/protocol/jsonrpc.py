"""JSON-RPC 2.0 framing for MCP's newline-delimited stdio and HTTP bodies.

Messages stay plain dicts: the relay parses each line once and builds only what it changes,
so fields it does not know (``_meta`` keys, newer result fields) pass through untouched.

What a peer sends is held to a few rules at parse time, so nothing behind the parser has to
cope with them (both directions, every transport):

- Lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but no Unicode text) become U+FFFD.
  Refusing the message instead would let one character sink a whole result, and passing them
  on would crash the encoder or hand the next peer text that is not UTF-8. The replacement is
  made before any hook sees the message, so what is masked and audited is what is sent on.
- Nesting deeper than :data:`MAX_DEPTH` is refused: walkers over messages recurse, and no MCP
  message needs more.
- ``NaN``, ``Infinity`` and numbers that overflow a float are refused: they are not JSON, and
  could not be written out again.

A message that breaks a rule raises :class:`ParseError`, which carries the request id when one
can be sniffed from the raw bytes, so the request it answers can fail at once.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Implementation-defined server errors (-32000..-32099).
UPSTREAM_UNAVAILABLE = -32010
MESSAGE_TOO_LARGE = -32011
# The upstream did not answer within its request deadline.
UPSTREAM_TIMEOUT = -32013

# How deep objects and arrays may nest. Tool schemas rarely pass 10; walkers recurse per level.
MAX_DEPTH = 100

Message = dict[str, Any]
RequestId = int | str

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_ID_SNIFF = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')
# A \uD800-\uDFFF escape in the raw text: the only way a surrogate gets into a parsed str.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
SNIFF_BYTES = 4096


class ParseError(ValueError):
    """A line that is not a JSON-RPC message; ``id`` is the request id sniffed from it, if any.

    ``code`` is the JSON-RPC error to answer with: -32700 for what is not JSON, -32600 for JSON
    the guard will not take (nested too deep)."""

    def __init__(self, message: str, id: RequestId | None = None, code: int = PARSE_ERROR) -> None:
        super().__init__(message)
        self.id = id
        self.code = code


def dumps(message: Message) -> bytes:
    """One message as a UTF-8 line; lone surrogates (from a hook, say) become U+FFFD."""
    text = _dumps(message)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8") + b"\n"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def loads(data: bytes | str) -> Message:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
        message = _decoder.decode(text)
    except RecursionError:
        raise ParseError(f"nested deeper than {MAX_DEPTH} levels", sniff_id(raw), INVALID_REQUEST) from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ParseError(f"not valid JSON: {_short(exc)}", sniff_id(raw)) from None
    if not isinstance(message, dict):
        raise ParseError("a JSON-RPC message must be an object (batches are not part of MCP)", sniff_id(raw))
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth_over(message, MAX_DEPTH):
        raise ParseError(f"nested deeper than {MAX_DEPTH} levels", _top_id(message), INVALID_REQUEST)
    if _SURROGATE_ESCAPE.search(raw) is not None:
        message = _scrub(message)
    return message


def _short(exc: ValueError) -> str:
    # A decode error quotes the bytes it met; keep only the reason, never the content.
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {exc.start}"
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos}"
    return str(exc)[:120]


def _top_id(message: Message) -> RequestId | None:
    rid = message.get("id")
    return rid if valid_id(rid) else None


def _depth_over(value: Any, limit: int) -> bool:
    """True when containers nest more than ``limit`` deep; level by level, so it cannot overflow."""
    level, depth = [value], 1
    while level:
        if depth > limit:
            return True
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level, depth = below, depth + 1
    return False


def _scrub(value: Any) -> Any:
    """The same value with every lone surrogate, in keys and strings, replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def sniff_id(raw: bytes) -> RequestId | None:
    """Best-effort request id from a message that cannot be parsed: its start, then its end."""
    for window in (raw[:SNIFF_BYTES], raw[-SNIFF_BYTES:]):
        match = _ID_SNIFF.search(window)
        if match is None:
            continue
        try:
            value = json.loads(match.group(1))
        except ValueError:
            continue
        if valid_id(value):
            return value  # type: ignore[no-any-return]
    return None


def is_request(message: Message) -> bool:
    return "method" in message and "id" in message


def is_notification(message: Message) -> bool:
    return "method" in message and "id" not in message


def is_response(message: Message) -> bool:
    return "method" not in message and ("result" in message or "error" in message)


def valid_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def request(id: RequestId, method: str, params: dict[str, Any] | None) -> Message:
    message: Message = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any] | None = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def result(id: RequestId, value: Any) -> Message:
    return {"jsonrpc": "2.0", "id": id, "result": value}


def error(id: RequestId | None, code: int, message: str, data: Any = None) -> Message:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id, "error": err}

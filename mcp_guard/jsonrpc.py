"""JSON-RPC 2.0 framing for MCP's newline-delimited stdio and HTTP bodies.

Messages stay plain dicts: the relay parses each line once and builds only what it changes,
so fields it does not know (``_meta`` keys, newer result fields) pass through untouched.
"""

from __future__ import annotations

import json
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

Message = dict[str, Any]
RequestId = int | str

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_ID_SNIFF = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')


class ParseError(ValueError):
    """A line that is not a JSON-RPC message."""


def dumps(message: Message) -> bytes:
    return _dumps(message).encode("utf-8") + b"\n"


def loads(data: bytes | str) -> Message:
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ParseError("a JSON-RPC message must be an object (batches are not part of MCP)")
    return message


def sniff_id(head: bytes) -> RequestId | None:
    """Best-effort request id from the start of a message too large to parse."""
    match = _ID_SNIFF.search(head[:4096])
    if match is None:
        return None
    try:
        value = json.loads(match.group(1))
    except ValueError:
        return None
    return value if isinstance(value, (int, str)) else None


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

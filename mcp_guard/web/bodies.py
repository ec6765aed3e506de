"""Request bodies the review app reads: bounded, and a decision's JSON checked before anything is decided.

Every POST to the review page and API is read here first, at most ``MAX_BODY`` bytes (a declared
larger length is refused before a byte is read). A client that goes away mid-body decided nothing
and is let go without a word in the log. A decision's body is empty (no reason) or a JSON object
whose ``reason`` and ``scope`` are strings; anything else is a 400, never a vote.
"""

from __future__ import annotations

import json
from functools import wraps
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ..approvals import reason_refusal
from ..relay.fronts.checks import body_within  # the same bound serve's /mcp reads with
from .cookies import Endpoint

MAX_BODY = 64 * 1024


class BadBody(Exception):
    """A body no decision may come from: ``status`` and a one-line message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def bounded(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` given its request with the body already read, within ``MAX_BODY``."""

    @wraps(endpoint)
    async def wrapped(req: Request) -> Response:
        if req.method != "POST":
            return await endpoint(req)
        try:
            body = await _read(req)
        except BadBody as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it; nothing was decided

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        return await endpoint(Request(req.scope, replay))

    return wrapped


async def _read(req: Request) -> bytes:
    body = await body_within(req, MAX_BODY)
    if body is None:
        raise BadBody(413, f"a request body is at most {MAX_BODY} bytes; nothing was decided")
    return body


def decision_fields(body: bytes) -> tuple[str, str]:
    """The ``reason`` and ``scope`` of an API decision; raises BadBody for anything but an empty
    body or a JSON object with string values for them."""
    if not body.strip():
        return "", "once"
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: nesting too deep to parse
        raise BadBody(400, "the body must be a JSON object such as {\"reason\": \"...\"}; nothing was decided") from None
    if not isinstance(payload, dict):
        raise BadBody(400, "the body must be a JSON object such as {\"reason\": \"...\"}; nothing was decided")
    reason, scope = payload.get("reason", ""), payload.get("scope", "once")
    for name, value in (("reason", reason), ("scope", scope)):
        if not isinstance(value, str):
            raise BadBody(400, f"{name!r} must be a string; nothing was decided")
    refusal = reason_refusal(reason)
    if refusal is not None:
        raise BadBody(400, refusal)
    return reason, scope


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")

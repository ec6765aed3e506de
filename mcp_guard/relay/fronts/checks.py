"""What every request to ``mcp-guard serve`` is checked against before the relay reads it: the
Host it was sent to (no DNS rebinding), a body within the size limit, and headers that mirror the
body (2026-07-28's Mcp-Method, Mcp-Name, MCP-Protocol-Version and Mcp-Param-*) standing for it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ...protocol import jsonrpc, mirrored
from ..hub import Hub
from ..upstream import ClientFacts
from .hotpath import scope_host

LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


def mirrored_headers_refusal(request: Request, message: jsonrpc.Message) -> Response | None:
    """400 HeaderMismatch when the Mcp-Method / Mcp-Name / MCP-Protocol-Version headers do not
    stand for the body: something in front may have routed or allowed on them, and the guard
    decides on the body alone (2026-07-28 Streamable HTTP, Server Validation)."""
    why = mirrored.mismatch(request.headers, message)
    if why is None:
        return None
    rid = message.get("id")
    return json_error(400, f"Header mismatch: {why}", mirrored.HEADER_MISMATCH, rid if jsonrpc.valid_id(rid) else None)


async def param_headers_refusal(
    request: Request, message: jsonrpc.Message, hub: Hub, facts: ClientFacts
) -> Response | None:
    """400 HeaderMismatch when a tools/call's Mcp-Param-* headers do not stand for its arguments
    under the tool's own schema (its x-mcp-header marks), or cannot be checked against it."""
    params = message.get("params")
    if message.get("method") != "tools/call" or not isinstance(params, dict):
        return None
    try:
        up, name = hub.route_name(params.get("name"), "tool")
        definition = await hub.router.tool_definition(facts, up, name)
    except Exception:  # an unknown tool, a server that cannot list: the call itself meets that error
        definition = None
    if isinstance(definition, dict):
        why = mirrored.param_mismatch(request.headers, definition.get("inputSchema"), params.get("arguments"))
    elif any(key.lower().startswith("mcp-param-") for key in request.headers):
        why = "Mcp-Param-* headers cannot be checked: the tool's schema is not known"
    else:
        return None
    if why is None:
        return None
    rid = message.get("id")
    return json_error(400, f"Header mismatch: {why}", mirrored.HEADER_MISMATCH, rid if jsonrpc.valid_id(rid) else None)


async def body_within(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit``: a client cannot make the guard buffer more."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def host_check(allowed: set[str]) -> Any:
    """Every route (the review page too) answers only to the expected Host: no DNS rebinding."""
    from starlette.middleware import Middleware

    return Middleware(HostCheck, allowed=frozenset(allowed))


class HostCheck:
    def __init__(self, app: Any, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = scope_host(scope)
            if host not in self.allowed:
                await PlainTextResponse(f"Host {host!r} is not allowed", status_code=421)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def json_error(
    status: int,
    text: str,
    code: int = jsonrpc.INVALID_REQUEST,
    rid: jsonrpc.RequestId | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = jsonrpc.dumps(jsonrpc.error(rid, code, text))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def allowed_hosts(host: str, port: int, extra: list[str]) -> set[str]:
    names = set(LOOPBACK) if host in LOOPBACK or host in ("0.0.0.0", "::") else {host}
    if host not in LOOPBACK:
        names.add(host)
    hosts = {f"{name}:{port}" for name in names if name != "::1"}
    hosts.update(extra)
    return hosts

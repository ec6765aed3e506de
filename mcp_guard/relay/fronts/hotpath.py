"""The per-request path of ``serve``'s ``/mcp``, kept lean: it runs for every call of every session.

Profiled under 200 concurrent sessions (benchmarks/serve_load.py), a relayed call spent more of
the guard's CPU in the HTTP layers around ``HttpFront.endpoint`` than in the relay: Starlette's
error and exception middleware, its router, the request/response wrappers, uvicorn's
proxy-headers middleware, and a ``StreamingResponse`` that starts a task group of two tasks per
answer (one to stream, one to watch for a disconnect) and writes the final event and the end of
the stream separately. So:

* :class:`McpFirst` hands ``/mcp`` straight to the endpoint, after the same Host check every
  route gets; every other path (the review page, metadata, ``/healthz``) goes through the
  Starlette app unchanged. An exception in the endpoint is a 500, logged, never a crash.
* :class:`EventStream` writes an answer's SSE stream: the headers at once (a call may wait
  minutes for a human, and clients time out on headers that never come), each message as it
  comes, and the final answer together with the end of the stream in one write. One watcher
  task notices a client that hung up, so what would have gone to this stream goes to the
  session's GET stream or backlog instead (the ``done`` callback), as before; once the body is
  complete the server answers the watcher's pending receive() and it ends without a cancel.
* :class:`Outbox` routes a session's messages toward the client (its request's stream, the GET
  stream, the backlog), and refers to neither the session nor ``HttpSession``: no reference
  cycle, so a 2026-07-28 exchange is freed when it ends rather than by the cycle collector.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from ...protocol import jsonrpc
from ...protocol.sse import encode as sse_encode

__all__ = ["GET_BACKLOG", "EventStream", "McpFirst", "Outbox", "PATH", "scope_host"]

logger = logging.getLogger(__name__)

PATH = "/mcp"
# Messages for a session's GET stream wait here while no stream is open; the oldest go first.
GET_BACKLOG = 1000
ALLOWED_METHODS = ("GET", "POST", "DELETE")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Endpoint = Callable[[Any], Awaitable[Any]]


def scope_host(scope: Scope) -> str:
    """The request's Host header, as the client sent it ("" when absent)."""
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")


async def _plain(send: Send, status: int, text: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = text.encode("utf-8")
    head = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class McpFirst:
    """An ASGI app: ``/mcp`` to ``endpoint`` (a Starlette-style ``Request -> Response``), the rest to ``app``."""

    def __init__(self, endpoint: Endpoint, app: Any, allowed_hosts: frozenset[str]) -> None:
        from starlette.requests import ClientDisconnect, Request

        self.endpoint = endpoint
        self.app = app
        self.allowed_hosts = allowed_hosts
        self._request = Request
        self._disconnect = ClientDisconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        host = scope_host(scope)
        if host not in self.allowed_hosts:  # no DNS rebinding, as on every other route
            await _plain(send, 421, f"Host {host!r} is not allowed")
            return
        if scope["method"] not in ALLOWED_METHODS:
            await _plain(send, 405, "Method Not Allowed", [(b"allow", ", ".join(ALLOWED_METHODS).encode())])
            return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            response = await self.endpoint(self._request(scope, receive))
            await response(scope, receive, tracked)
        except self._disconnect:
            return  # the client hung up while its body was being read: no one to answer
        except Exception:  # never BaseException: cancellation passes through
            logger.exception("serving %s %s failed", scope["method"], PATH)
            if not started:
                await _plain(send, 500, "Internal Server Error")


class EventStream:
    """The SSE answer to one request: messages from ``items`` until the one answering ``rid``.

    ``done`` runs once the stream ends, whichever way: the answer went out, the client hung up,
    or the server is shutting down."""

    media_type = "text/event-stream"

    def __init__(
        self,
        items: anyio.abc.ObjectReceiveStream[jsonrpc.Message],
        rid: jsonrpc.RequestId,
        done: Callable[[], None],
        headers: dict[str, str],
    ) -> None:
        self.items = items
        self.rid = rid
        self.done = done
        self.headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        self.headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._watching = False  # the watcher is waiting on receive()
        self._complete = False  # the body has been ended

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, receive, tg.cancel_scope)
                await self._relay(send)
                # The body is complete, so the server answers the watcher's receive() with
                # http.disconnect and it ends by itself: no cancellation (anyio formats the
                # task's repr on every cancel). Cancelled only if it is still waiting after that.
                await anyio.lowlevel.checkpoint()
                if self._watching:
                    tg.cancel_scope.cancel()
        finally:
            self.done()

    async def _relay(self, send: Send) -> None:
        """Each message as it comes; the answer to ``rid`` and the end of the body in one write."""
        while True:
            try:
                item = await self.items.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                item = None  # the session ended before answering
            final = item is None or ("method" not in item and item.get("id") == self.rid)
            self._complete = final
            body = b"" if item is None else sse_encode(item)
            await send({"type": "http.response.body", "body": body, "more_body": not final})
            if final:
                return

    async def _watch(self, receive: Receive, relay: anyio.CancelScope) -> None:
        """Until the client hangs up (the relay is then cancelled) or the body is complete."""
        self._watching = True
        try:
            while (await receive())["type"] != "http.disconnect":
                pass  # a body the endpoint did not read: nothing to do with it
        finally:
            self._watching = False
        if not self._complete:
            relay.cancel()  # the client hung up mid-stream


class Outbox:
    """Where a session's messages toward the client go: the stream of the request they belong to,
    else the GET stream, else the backlog.

    Apart from ``HttpSession`` (http.py) so that the Session, which holds ``send``, holds nothing that
    refers back to it: that cycle left every 2026-07-28 exchange (hundreds a second under load)
    to the cycle collector instead of being freed when it ends."""

    def __init__(self) -> None:
        self.streams: dict[jsonrpc.RequestId, anyio.abc.ObjectSendStream[jsonrpc.Message]] = {}
        self.get_stream: anyio.abc.ObjectSendStream[jsonrpc.Message] | None = None
        self.backlog: list[jsonrpc.Message] = []

    async def send(self, message: jsonrpc.Message, related: jsonrpc.RequestId | None) -> None:
        target = self.streams.get(related) if related is not None else None
        if target is None and related is None and "method" not in message:
            target = self.streams.get(message.get("id"))  # type: ignore[arg-type]
        if target is None:
            target = self.get_stream
        if target is not None:
            try:
                target.send_nowait(message)
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        self.backlog.append(message)
        del self.backlog[:-GET_BACKLOG]

"""The guard as a streamable HTTP server at ``/mcp`` (``mcp-guard serve``).

Lifecycle (server.py starts it): one task group holds the guard (shared upstreams, stateless
hubs), uvicorn, and one task per client session. A handshake-era client gets a session at ``initialize``
(``Mcp-Session-Id``) with a hub of its own: its own upstream processes and HTTP upstream
sessions, started with its capabilities, stopped at DELETE, after ``idle_s`` without a request,
or at shutdown. Each POSTed request is answered on its own SSE stream, which also carries the
server's requests and notifications tied to it; a GET stream carries the rest. A 2026-07-28
request is one stateless exchange with a session of its own, on the guard's stateless hub for
the capabilities it declares.

Only loopback Host and Origin headers are accepted unless configured otherwise, so a web
page cannot reach the guard through DNS rebinding.

With an authenticator (``serve --auth tokens|oidc``) every /mcp request is authenticated before
anything else is read, and a handshake-era session belongs to the caller that opened it: the
same ``Mcp-Session-Id`` with another caller's credentials is answered 404, as if it did not
exist. Without one, the one caller is the user who started ``serve`` (loopback only).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ...auth.caller import Authenticator, Caller
from ...protocol import era, jsonrpc
from ..hub import Hub
from ..lines import DEFAULT_MAX_MESSAGE_BYTES
from ..session import Session
from ...protocol.sse import encode as sse_encode
from ..upstream import ClientFacts
from .callers import CallerScopes, Refusals, authenticate, still_valid
from .checks import body_within, host_check, json_error, mirrored_headers_refusal, param_headers_refusal
from .hotpath import EventStream, McpFirst, Outbox

if TYPE_CHECKING:
    from ...guard import Guard

logger = logging.getLogger(__name__)

# A session with no request for this long is closed, and its upstream processes with it: each
# session costs a process per server. The client gets 404 next time and starts a new session.
SESSION_IDLE_S = 1800.0
# Handshake-era sessions one authenticated caller may hold open at once (serve
# --max-sessions-per-caller): each costs upstream processes, so one token must not be able to
# exhaust the machine for everyone.
MAX_SESSIONS_PER_CALLER = 50
# How often the credential of each open GET stream is checked again: a revoked or expired caller
# stops receiving within this time, not only at its next request.
RECHECK_S = 5.0


class HttpSession:
    """A client session over HTTP: its hub, and the stream each outbound message goes to."""

    def __init__(self, hub: Hub, caller: Caller, stateless: bool = False) -> None:
        self.id = secrets.token_hex(16)
        self.hub = hub
        self.caller_key = caller.key  # only this caller may use the session
        self.outbox = Outbox()
        self.session = Session(hub, self.outbox.send, user=caller.user, label="http", caller=caller)
        self.session.stateless = stateless
        self.streams = self.outbox.streams
        self.backlog = self.outbox.backlog
        self.authorization: str | None = None  # the open GET stream's credential, checked again while it is open
        self.last_seen = time.monotonic()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own this session's hub (its upstreams) and the session, until the session closes."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.hub.run)
            await tg.start(self.session.run)
            task_status.started()
            await self.session.wait_closed()
            tg.cancel_scope.cancel()

    @property
    def idle(self) -> bool:
        return not self.streams and not self.session.busy

    @property
    def get_stream(self) -> anyio.abc.ObjectSendStream[jsonrpc.Message] | None:
        return self.outbox.get_stream

    @get_stream.setter
    def get_stream(self, stream: anyio.abc.ObjectSendStream[jsonrpc.Message] | None) -> None:
        self.outbox.get_stream = stream


class HttpFront:
    def __init__(
        self,
        guard: Guard,
        task_group: anyio.abc.TaskGroup,
        *,
        allowed_hosts: set[str],
        user: str = "",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        extra_routes: list[Any] | None = None,
        idle_s: float = SESSION_IDLE_S,
        authenticator: Authenticator | None = None,
        max_sessions_per_caller: int = MAX_SESSIONS_PER_CALLER,
        refusals: Refusals | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.max_sessions_per_caller = max_sessions_per_caller
        self._held: Counter[str] = Counter()  # caller key -> handshake-era sessions open (or opening)
        self.refusals = refusals or Refusals()
        self.anonymous = Caller(user=user)
        self.scopes = CallerScopes()
        self.extra_routes = list(extra_routes or [])
        self.guard = guard
        self.idle_s = idle_s
        self.tg = task_group
        self.allowed_hosts = allowed_hosts
        self.user = user
        self.max_message_bytes = max_message_bytes
        self.sessions: dict[str, HttpSession] = {}

    def app(self) -> McpFirst:
        """``/mcp`` on the lean path (hotpath.py); every other route through Starlette."""
        rest = Starlette(
            routes=[
                Route("/mcp", self.endpoint, methods=["GET", "POST", "DELETE"]),  # /mcp/ redirects here
                Route("/healthz", lambda request: PlainTextResponse("ok")),
                *(self.authenticator.routes() if self.authenticator is not None else []),
                *self.extra_routes,
            ],
            middleware=[host_check(self.allowed_hosts)],
        )
        return McpFirst(self.endpoint, rest, frozenset(self.allowed_hosts))

    def _origin_ok(self, request: Request) -> Response | None:
        # The Host header was checked before the endpoint (McpFirst, or the app's checks.HostCheck).
        origin = request.headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc not in self.allowed_hosts:
                return PlainTextResponse(f"Origin {origin!r} is not allowed", status_code=403)
        return None

    async def endpoint(self, request: Request) -> Response:
        refused = self._origin_ok(request)
        if refused is not None:
            return refused
        caller = self.anonymous if self.authenticator is None else await authenticate(
            request, self.authenticator, self.refusals)
        if isinstance(caller, Response):
            return caller
        if request.method == "POST":
            return await self._post(request, caller)
        sid = request.headers.get("mcp-session-id")
        http_session = self._bound(sid, caller)
        if http_session is None:
            return json_error(404 if sid else 400, "unknown or missing Mcp-Session-Id")
        if request.method == "DELETE":
            self._end(http_session)
            return Response(status_code=200)
        if self.authenticator is not None:  # held in memory only while the stream is open
            http_session.authorization = request.headers.get("authorization")
        return self._get_stream(http_session)

    def _bound(self, sid: str | None, caller: Caller) -> HttpSession | None:
        """The session ``sid`` if ``caller`` opened it; another caller's is as unknown as a made-up one."""
        found = self.sessions.get(sid or "")
        return found if found is not None and found.caller_key == caller.key else None

    async def _post(self, request: Request, caller: Caller) -> Response:
        body = await body_within(request, self.max_message_bytes)
        if body is None:
            text = f"message over the limit of {self.max_message_bytes} bytes"
            return json_error(413, text, jsonrpc.MESSAGE_TOO_LARGE)
        try:
            message = jsonrpc.loads(body)
        except jsonrpc.ParseError as exc:
            return json_error(400, f"mcp-guard could not read this message: {exc}", exc.code, exc.id)
        version = request.headers.get("mcp-protocol-version")
        modern = version in era.MODERN_VERSIONS or era.request_version(message.get("params")) in era.MODERN_VERSIONS
        if modern:
            return await self._stateless(request, message, caller)
        sid = request.headers.get("mcp-session-id")
        if message.get("method") == "initialize" and not sid:
            refused = self._over_cap(caller, message)
            if refused is not None:
                return refused
            self._held[caller.key] += 1  # before the await: concurrent initializes see it
            try:
                http_session = HttpSession(self.guard.hub(), caller)
                await self.tg.start(http_session.run)
            except BaseException:
                self._release(caller.key)
                raise
            self.sessions[http_session.id] = http_session
        else:
            found = self._bound(sid, caller)
            if found is None:
                return json_error(404 if sid else 400, "unknown or missing Mcp-Session-Id")
            http_session = found
        http_session.last_seen = time.monotonic()
        if not jsonrpc.is_request(message):
            await http_session.session.feed(message, caller)
            return Response(status_code=202)
        return await self._answer(request, http_session, message, {"mcp-session-id": http_session.id}, caller=caller)

    async def _stateless(self, request: Request, message: jsonrpc.Message, caller: Caller) -> Response:
        if not jsonrpc.is_request(message):
            return Response(status_code=202)  # 2026-07-28 over HTTP: nothing to deliver notifications to
        if self.authenticator is None:
            return await self._exchange(request, message, caller)
        # A 2026 request may run an upstream process of its own: it holds one of the caller's slots
        # while it is answered, as a session does while it is open.
        refused = self._over_cap(caller, message)
        if refused is not None:
            return refused
        self._held[caller.key] += 1
        try:
            return await self._exchange(request, message, caller)
        finally:
            self._release(caller.key)

    async def _exchange(self, request: Request, message: jsonrpc.Message, caller: Caller) -> Response:
        refused = mirrored_headers_refusal(request, message)
        if refused is not None:
            return refused
        taken, _ = era.split_meta(message.get("params") if isinstance(message.get("params"), dict) else None)
        caps = taken.get(era.CLIENT_CAPS_KEY)
        facts = ClientFacts(era=era.MODERN, capabilities=caps if isinstance(caps, dict) else {})
        hub = await self.guard.stateless_hub(facts)
        refused = await param_headers_refusal(request, message, hub, facts)
        if refused is not None:
            return refused
        http_session = HttpSession(hub, caller, stateless=True)
        await self.tg.start(http_session.session.run)
        if not http_session.session.keyed_by_caller:
            return await self._answer(request, http_session, message, {}, close_after=True)
        # An authenticated caller's 2026 state outlives the exchange: in use until it ends, then idle.
        release = self.scopes.hold(http_session.session.key)
        try:
            return await self._answer(request, http_session, message, {}, close_after=True, on_done=release)
        except BaseException:
            release()
            raise

    def _over_cap(self, caller: Caller, message: jsonrpc.Message) -> Response | None:
        """429 when an authenticated caller already holds its share: handshake-era sessions open and
        2026-07-28 requests being answered, together."""
        cap = self.max_sessions_per_caller
        if self.authenticator is None or self._held[caller.key] < cap:
            return None
        logger.warning("refused a request: its caller already holds %d sessions and requests (--max-sessions-per-caller)", cap)
        text = (
            f"mcp-guard: this caller already holds {cap} open sessions and 2026-07-28 requests in flight, the most it"
            " may hold at once; end the sessions no longer used (HTTP DELETE /mcp with their Mcp-Session-Id), reuse"
            f" one, or wait for a request to be answered. An idle session is closed after {self.idle_s:.0f} s"
            " without a request."
        )
        rid = message.get("id")
        return json_error(429, text, jsonrpc.INVALID_REQUEST, rid if jsonrpc.valid_id(rid) else None)

    def _release(self, key: str) -> None:
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]

    def _end(self, http_session: HttpSession) -> None:
        if self.sessions.pop(http_session.id, None) is not None:  # a session ends once, and frees its slot once
            self._release(http_session.caller_key)
        self.guard.forget(http_session.hub)
        http_session.session.close()

    async def recheck_streams(self) -> None:
        """End the sessions whose open GET stream's credential was revoked or has expired."""
        while self.authenticator is not None:
            await anyio.sleep(RECHECK_S)
            for http_session in list(self.sessions.values()):
                stream = http_session.get_stream
                if stream is None or await still_valid(self.authenticator, http_session.authorization, http_session.caller_key):
                    continue
                logger.info("ending HTTP session %s: its caller's credential is no longer valid", http_session.id[:8])
                stream.close()
                self._end(http_session)

    async def reap_idle(self) -> None:
        """Close sessions that sent nothing for ``idle_s``: each holds upstream processes."""
        while True:
            await anyio.sleep(min(self.idle_s / 4, 30.0))
            now = time.monotonic()
            for http_session in list(self.sessions.values()):
                if http_session.idle and now - http_session.last_seen > self.idle_s:
                    logger.info("closing HTTP session %s after %.0f s without a request", http_session.id[:8], self.idle_s)
                    self._end(http_session)
            await self.scopes.reap(self.idle_s, self.guard.pipeline.close_session)

    async def _answer(
        self,
        request: Request,
        http_session: HttpSession,
        message: jsonrpc.Message,
        headers: dict[str, str],
        close_after: bool = False,
        on_done: Callable[[], None] | None = None,
        caller: Caller | None = None,
    ) -> Response:
        rid = message.get("id")

        def over() -> None:
            if close_after:
                http_session.session.close()
            if on_done is not None:
                on_done()

        if not jsonrpc.valid_id(rid):
            await http_session.session.feed(message, caller)  # answers the invalid id itself
            over()
            return Response(status_code=202)
        if rid in http_session.streams:
            # Two POSTs with one id: the second would take over the first one's answer stream.
            text = f"request id {rid!r} is already in use by a request in flight"
            over()
            return json_error(200, text, jsonrpc.INVALID_REQUEST, rid, headers)  # type: ignore[arg-type]
        # Not create_memory_object_stream[...](): subscripting builds a typing alias on every call.
        send: anyio.abc.ObjectSendStream[jsonrpc.Message]
        receive: anyio.abc.ObjectReceiveStream[jsonrpc.Message]
        send, receive = anyio.create_memory_object_stream(math.inf)
        http_session.streams[rid] = send  # type: ignore[index]
        await http_session.session.feed(message, caller)

        def done() -> None:
            http_session.streams.pop(rid, None)  # type: ignore[arg-type]
            send.close()
            over()

        if "text/event-stream" not in request.headers.get("accept", ""):
            try:
                async for item in receive:
                    if "method" not in item and item.get("id") == rid:
                        return Response(jsonrpc.dumps(item), media_type="application/json", headers=headers)
            finally:
                done()
            return json_error(500, "no response")

        return EventStream(receive, rid, done, headers)  # type: ignore[arg-type,return-value]

    def _get_stream(self, http_session: HttpSession) -> Response:
        if http_session.get_stream is not None:
            return json_error(409, "this session already has a GET stream")
        send, receive = anyio.create_memory_object_stream[jsonrpc.Message](math.inf)
        for item in http_session.backlog:
            send.send_nowait(item)
        http_session.backlog.clear()
        http_session.get_stream = send

        async def stream() -> Any:
            try:
                yield b": mcp-guard stream open\n\n"
                async for item in receive:
                    yield sse_encode(item)
            finally:
                http_session.get_stream = None
                http_session.authorization = None
                send.close()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

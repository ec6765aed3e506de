"""One client connection, in either era: dispatch, cancellation, requests toward the client.

Lifecycle: the transport feeds messages to :meth:`Session.feed`. Each client request runs in
a task of its own in the session's task group, so a call waiting on a slow upstream (or, later,
on a human) never blocks the others, and ``notifications/cancelled`` cancels exactly that
request (its own cancel scope), which cancels the upstream request with it. A task that has
served a request waits for the next one rather than ending (a few stay idle, the rest end):
spawning an anyio task costs more than the rest of a small call's relaying. When the client goes
away the task group is cancelled: nothing the client started outlives it, except bridged calls
parked in the hub for a 2026-07-28 retry, which expire on their own.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..auth.caller import Caller
from ..protocol import era, jsonrpc
from ..errors import RPCError
from .peer import Incoming, Outgoing
from .upstream import ClientFacts, ProgressFn

if TYPE_CHECKING:
    from .hub import Hub

logger = logging.getLogger(__name__)

SendFn = Callable[[jsonrpc.Message, "jsonrpc.RequestId | None"], Awaitable[None]]
# How many request tasks may wait idle for the next request; past that, a finished one ends.
IDLE_WORKERS = 4


@dataclass
class RequestContext:
    """One client request as the hub handles it."""

    session: Session
    id: jsonrpc.RequestId
    method: str
    facts: ClientFacts
    progress_token: Any = None
    # The upstream the answer came from, set by the hub (for the egress's vault).
    origin: str | None = None
    # Work that must run once the answer is on its way (audit of the finished call): it does
    # not delay the client's answer, and it runs even when the request is cancelled.
    after: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Who authenticated the HTTP request that carried this one (serve --auth): its own token's
    # user and groups decide, not those of the request that opened the session.
    caller: Caller | None = None

    @property
    def user(self) -> str:
        return self.caller.user if self.caller is not None else self.session.user

    @property
    def groups(self) -> frozenset[str]:
        return self.caller.groups if self.caller is not None else self.session.groups

    @property
    def modern(self) -> bool:
        return self.facts.era == era.MODERN

    def progress_sink(self) -> ProgressFn | None:
        """Relays upstream progress to this request's caller, under the caller's own token."""
        token = self.progress_token
        if token is None:
            return None
        session, rid = self.session, self.id

        async def sink(params: dict[str, Any]) -> None:
            out = dict(params)
            out["progressToken"] = token
            await session.send_safely(jsonrpc.notification("notifications/progress", out), rid, self.origin)

        return sink


class Session:
    def __init__(self, hub: Hub, send: SendFn, *, user: str = "", label: str = "", caller: Caller | None = None) -> None:
        self.hub = hub
        self._send = send
        # Unique across processes: session grants in a shared store are kept under it.
        self.id = f"s-{secrets.token_hex(8)}"
        self.user = user
        self.caller = caller  # who authenticated (serve --auth); None or scheme "none": nobody did
        self.groups = caller.groups if caller is not None else frozenset()
        # What an authenticated caller's 2026 exchanges keep their state under: a digest, so the key
        # (which may hold an issuer URL and a subject) does not travel into logs or the store.
        authenticated = caller is not None and caller.scheme != "none"
        self._caller_key = "c-" + hashlib.sha256(caller.key.encode()).hexdigest()[:32] if authenticated else ""
        self.label = label
        self.era: str | None = None
        self.facts = ClientFacts()  # from initialize; modern requests bring their own
        self.subscriptions: set[str] = set()  # resource URIs (handshake-era subscribe)
        self.listens: dict[jsonrpc.RequestId, dict[str, Any]] = {}  # 2026 subscriptions/listen filters
        self.log_opt_in = False
        self.stateless = False  # one HTTP exchange per request (2026-07-28 over HTTP)
        self.closed = False
        self._in = Incoming()  # the client's requests being served
        # Set once the client's era is known: at initialize, or at its first 2026 request other
        # than a server/discover probe (a client may probe, then fall back to initialize).
        self.settled = anyio.Event()
        self._out = Outgoing()  # the guard's requests to the client (sampling, elicitation, roots)
        self._tg: anyio.abc.TaskGroup | None = None
        self._ended = anyio.Event()
        self._jobs: deque[tuple[Any, ...]] = deque()  # requests taken in, waiting for a task to serve them
        self._idle: list[anyio.Event] = []  # request tasks waiting for the next request: set one to wake it

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hold the task group that the client's requests run in, until :meth:`close`."""
        self.hub.sessions.append(self)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self.closed = True
            if self in self.hub.sessions:
                self.hub.sessions.remove(self)
            self._out.fail_all(RPCError(jsonrpc.UPSTREAM_UNAVAILABLE, "the client disconnected before answering"))
            if not self.keyed_by_caller:  # the caller's state outlives this exchange (the front drops it when idle)
                with anyio.CancelScope(shield=True):
                    await self.hub.pipeline.close_session(self.key)
            self._ended.set()

    @property
    def keyed_by_caller(self) -> bool:
        """Whether this is a 2026 exchange of an authenticated caller, whose state spans its exchanges."""
        return self.stateless and bool(self._caller_key)

    @property
    def key(self) -> str:
        """What per-session state (the vault, session grants) is kept under.

        A stateless 2026 HTTP exchange of an authenticated caller shares the caller's: its
        placeholders rehydrate in the caller's next exchange, never in another caller's. With no
        authenticated caller to tie exchanges together, each is a session of its own."""
        return self._caller_key if self.stateless and self._caller_key else self.id

    async def wait_closed(self) -> None:
        await self._ended.wait()

    @property
    def busy(self) -> bool:
        """Whether a client request is in flight."""
        return bool(len(self._in))

    async def drained(self) -> None:
        """Return once no client request is in flight (used at shutdown only)."""
        while len(self._in):
            await anyio.sleep(0.01)

    def close(self) -> None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def send(
        self, message: jsonrpc.Message, related: jsonrpc.RequestId | None = None, origin: str | None = None
    ) -> None:
        """Send toward the client, through the one egress (``origin``: the upstream it came from)."""
        outgoing = await self.hub.egress.outbound(self.key, message, origin)
        if outgoing is not None:
            await self._send(outgoing, related)

    async def send_safely(
        self, message: jsonrpc.Message, related: jsonrpc.RequestId | None = None, origin: str | None = None
    ) -> None:
        """Send, ignoring a client that has already gone: notifications are best effort."""
        try:
            await self.send(message, related, origin)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    # -- inbound ------------------------------------------------------------------------------------

    async def feed(self, message: jsonrpc.Message, caller: Caller | None = None) -> None:
        """Handle one message from the client. Requests are answered from their own task.

        ``caller``: who authenticated the HTTP request carrying it (the session's own caller's
        key, checked by the front); its user and groups are the ones a request is decided with."""
        method = message.get("method")
        if method is None:
            self._on_response(message)
            return
        if not isinstance(method, str):
            if "id" in message:
                await self.send(jsonrpc.error(message.get("id"), jsonrpc.INVALID_REQUEST, "method must be a string"))
            return
        if "id" not in message:
            await self._on_notification(method, message.get("params"))
            return
        rid = message["id"]
        if not jsonrpc.valid_id(rid):
            await self.send(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "a request id must be a string or an integer"))
            return
        if rid in self._in:
            # Its answer would be indistinguishable from the first one's, and a cancel would hit both.
            text = f"request id {rid!r} is already in use by a request in flight"
            await self.send(jsonrpc.error(rid, jsonrpc.INVALID_REQUEST, text), rid)
            return
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            await self.send(jsonrpc.error(rid, jsonrpc.INVALID_PARAMS, "params must be an object"), rid)
            return
        assert self._tg is not None
        scope = self._in.begin(rid)
        self._jobs.append((rid, method, params, scope, caller))
        if self._idle:
            self._idle.pop().set()
        else:
            self._tg.start_soon(self._serve_requests)

    async def _serve_requests(self) -> None:
        """One request task: serves the requests waiting, then waits for more (or ends, when
        enough others already wait). A request's own scope cancels that request alone."""
        while True:
            if self._jobs:
                await self._handle(*self._jobs.popleft())
            elif len(self._idle) >= IDLE_WORKERS:
                return
            else:
                wake = anyio.Event()
                self._idle.append(wake)
                try:
                    await wake.wait()
                finally:
                    if wake in self._idle:  # cancelled while idle: no request may be handed to it
                        self._idle.remove(wake)

    async def _handle(
        self, rid: jsonrpc.RequestId, method: str, params: dict[str, Any] | None, scope: anyio.CancelScope,
        caller: Caller | None = None,
    ) -> None:
        ctx: RequestContext | None = None
        with scope:
            try:
                ctx, params = self._context(rid, method, params)
                ctx.caller = caller
                reply = jsonrpc.result(rid, await self.hub.handle(ctx, params))
            except RPCError as exc:
                reply = {"jsonrpc": "2.0", "id": rid, "error": exc.to_error()}
            except Exception:
                logger.exception("handling %s failed", method)
                reply = jsonrpc.error(rid, jsonrpc.INTERNAL_ERROR, f"mcp-guard failed while handling {method}")
            finally:
                self._in.end(rid, scope)
        try:
            if not scope.cancelled_caught:  # cancelled by the client: the spec says no response
                await self.send_safely(reply, rid, ctx.origin if ctx is not None else None)
        finally:  # even when the session is torn down while the answer is being written
            with anyio.CancelScope(shield=True):
                for job in ctx.after if ctx is not None else ():
                    await job()

    def _context(self, rid: jsonrpc.RequestId, method: str, params: dict[str, Any] | None) -> tuple[RequestContext, Any]:
        taken, params = era.split_meta(params)
        version = taken.get(era.PROTOCOL_KEY)
        if version is None:
            facts = self.facts
            if self.era is None and method != "initialize":
                self.era = era.LEGACY
            if method not in ("initialize", "server/discover"):
                self.settled.set()
        else:
            if version not in era.MODERN_VERSIONS:
                raise RPCError(
                    -32022 if version not in era.HANDSHAKE_VERSIONS else jsonrpc.INVALID_REQUEST,
                    f"unsupported protocol version {version!r}",
                    {"supported": list(era.MODERN_VERSIONS), "requested": version},
                )
            self.era = self.era or era.MODERN
            if method != "server/discover":
                self.settled.set()
            caps = taken.get(era.CLIENT_CAPS_KEY)
            level = taken.get(era.LOG_LEVEL_KEY)
            if level:
                self.log_opt_in = True
            facts = ClientFacts(
                era=era.MODERN,
                version=version,
                capabilities=caps if isinstance(caps, dict) else {},
                client_info=taken.get(era.CLIENT_INFO_KEY),
                log_level=level if isinstance(level, str) else None,
            )
        return RequestContext(self, rid, method, facts, taken.get("progressToken")), params

    async def _on_notification(self, method: str, params: Any) -> None:
        if method == "notifications/cancelled":
            self._in.cancel(params.get("requestId") if isinstance(params, dict) else None)
        elif method == "notifications/initialized":
            # The guard sent its own to each upstream after its handshake; this one says the
            # client has our initialize answer, so the servers' questions may now reach it.
            self.settled.set()
        elif method == "notifications/roots/list_changed":
            await self.hub.broadcast_upstream(method, params)
        elif method == "notifications/progress":
            pass  # progress on a request the guard sent to the client: nothing waits on it
        elif self.hub.method_allowed(method):
            await self.hub.broadcast_upstream(method, params)
        else:
            logger.info("dropped client notification %s: not a known MCP method and not allowlisted", method)

    def _on_response(self, message: jsonrpc.Message) -> None:
        if not self._out.answer(message):
            logger.debug("dropped an answer from the client to no request the guard sent")

    # -- requests toward the client -----------------------------------------------------------------

    def can(self, capability: str, facts: ClientFacts | None = None) -> bool:
        caps = (facts or self.facts).capabilities
        return isinstance(caps, dict) and caps.get(capability) is not None

    async def request_client(
        self,
        method: str,
        params: Any,
        related: jsonrpc.RequestId | None = None,
        timeout: float | None = None,
        origin: str | None = None,
    ) -> Any:
        """Ask the client (handshake era only) and return its result; RPCError on its error."""
        if self.closed:
            raise RPCError(jsonrpc.UPSTREAM_UNAVAILABLE, "the client has disconnected")
        gid, waiter = self._out.open()
        try:
            await self.send(jsonrpc.request(gid, method, params), related, origin)
            if timeout is None:
                await waiter.event.wait()
            else:
                with anyio.fail_after(timeout):
                    await waiter.event.wait()
        except BaseException:
            if self._out.take(gid) is not None and not self.closed:
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    await self.send_safely(
                        jsonrpc.notification("notifications/cancelled", {"requestId": gid, "reason": "no longer needed"}),
                        related,
                    )
            raise
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

"""One upstream MCP server as the guard's peer: ids, handshake, era, in-flight requests.

Lifecycle: ``run()`` is the owner task. It starts the transport, reports readiness, and reads
messages until the server goes away; then every waiting request fails with a clear error and
later ones fail at once. ``connect()`` does the handshake (:mod:`.handshake`) the first time a
client needs the server, with that client's capabilities, so servers that offer tools by client
capability (sampling, elicitation, roots) show the same tools through the guard as directly.

Ids: the guard mints its own request ids and progress tokens toward each upstream, so several
client sessions and the guard's own requests never collide.

Deadlines: every request waits at most ``request_timeout`` seconds for its answer. A progress
notification for it starts the wait afresh, and so does the end of any request the upstream
put to the client meanwhile (a person answering an elicitation is not the upstream hanging).
When the deadline passes the caller gets a clear error and the upstream a courtesy
``notifications/cancelled``. A line the upstream botched (not JSON, truncated, too deep, too
large) fails the request whose id can be read from it at once; otherwise it is dropped and the
deadline ends the wait.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.abc

from ..protocol import era, jsonrpc
from ..errors import RPCError, UpstreamError
from .handshake import Agreed, ClientFacts, agree
from .lines import Oversize
from .peer import Incoming, Outgoing, ProgressFn
from .transports import Transport

if TYPE_CHECKING:
    from .eras import BridgedCall
    from .session import Session

logger = logging.getLogger(__name__)

# A courtesy cancel toward a server that stopped reading must not hold a cancelled caller.
CANCEL_SEND_TIMEOUT_S = 1.0

# How long to wait for an exit status once a server's output has closed.
EXIT_SETTLE_S = 0.5
# How long an upstream may take to answer one request (progress restarts it); config
# ``requestTimeout`` changes it per guard or per server.
DEFAULT_REQUEST_TIMEOUT_S = 120.0


@dataclass
class Inflight:
    """A client request this upstream is serving; server-to-client requests go to the newest."""

    session: Session
    client_id: jsonrpc.RequestId | None
    bridge: BridgedCall | None = None


class _Handshake:
    """One handshake in progress; everyone who needs the server waits on the same one."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: RPCError | None = None


class UpstreamHandler(Protocol):
    async def on_upstream_request(self, upstream: Upstream, method: str, params: Any) -> Any: ...
    async def on_upstream_notification(self, upstream: Upstream, method: str, params: Any) -> None: ...


class Upstream:
    def __init__(
        self,
        name: str,
        transport: Transport,
        handler: UpstreamHandler,
        protocol: str = "auto",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.request_timeout = request_timeout
        self.transport = transport
        self.handler = handler
        self.protocol = protocol  # "auto", "legacy" or a 2026 version
        self.era: str | None = None  # set by connect(): era.LEGACY or era.MODERN
        self.version = ""
        self.server_info: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.instructions: str | None = None
        self.facts = ClientFacts()  # the facts the handshake was made with
        self.inflight: list[Inflight] = []
        self.log_level: str | None = None
        self.dead: str | None = None  # why it cannot be used, once it cannot
        self.shared = False  # serves several client sessions ("isolation": "shared")
        self._out = Outgoing()  # requests the guard sent this server (ids and progress tokens it minted)
        self._in = Incoming()  # requests this server sent the guard (sampling, elicitation, roots)
        self._handshake: _Handshake | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._listen_scope: anyio.CancelScope | None = None
        self.listened_uris: frozenset[str] = frozenset()

    @property
    def ready(self) -> bool:
        return self.era is not None and self.dead is None

    # -- owner task ---------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                try:
                    await self.transport.start(tg)
                except UpstreamError as exc:
                    self._fail_all(str(exc))
                    task_status.started()
                    return
                task_status.started()
                try:
                    await self._read_loop()
                    # The pipe closes a moment before the exit status can be read.
                    with anyio.move_on_after(EXIT_SETTLE_S):
                        while self.transport.exit_status() == "still running":
                            await anyio.sleep(0.01)
                finally:
                    self._fail_all(
                        f"upstream {self.name!r} stopped ({self.transport.exit_status()}); see its messages above"
                    )
                    tg.cancel_scope.cancel()
        finally:
            await self.transport.aclose()

    async def _read_loop(self) -> None:
        async for message in self.transport.messages():
            if isinstance(message, Oversize):
                self._on_oversize(message)
            elif isinstance(message, jsonrpc.ParseError):
                self._on_garbled(message)
            elif "method" in message:
                await self._on_message(message)
            else:
                self._on_response(message)

    async def _on_message(self, message: jsonrpc.Message) -> None:
        method = message["method"]
        if not isinstance(method, str):
            logger.warning("upstream %s sent a message with a non-string method; dropped", self.name)
        elif "id" not in message:
            await self._on_notification(method, message.get("params"))
        elif not jsonrpc.valid_id(message["id"]):
            logger.warning("upstream %s sent a %s request with an invalid id; dropped", self.name, method)
        else:
            assert self._tg is not None
            self._tg.start_soon(self._serve, message["id"], method, message.get("params"))

    def _on_garbled(self, exc: jsonrpc.ParseError) -> None:
        """A line that is not a message: fail the request it answers, if its id shows."""
        waiter = self._out.take(exc.id)
        if waiter is None:
            logger.warning("upstream %s sent a line that is not JSON-RPC (%s); dropped", self.name, exc)
            return
        logger.warning("upstream %s answered request %s with a line that is not JSON-RPC: %s", self.name, exc.id, exc)
        waiter.fail(RPCError(jsonrpc.INTERNAL_ERROR, f"upstream {self.name!r} sent a malformed answer: {exc}"))

    def _on_response(self, message: jsonrpc.Message) -> None:
        if not self._out.answer(message):
            logger.debug("upstream %s answered an unknown or cancelled request id", self.name)

    def _on_oversize(self, big: Oversize) -> None:
        rid = jsonrpc.sniff_id(big.head)
        waiter = self._out.take(rid)
        logger.warning("upstream %s sent a %d-byte message, over the limit; dropped", self.name, big.size)
        if waiter is not None:
            waiter.fail(RPCError(
                jsonrpc.MESSAGE_TOO_LARGE,
                f"the answer from {self.name!r} was {big.size} bytes, over mcp-guard's message size limit",
            ))

    async def _on_notification(self, method: str, params: Any) -> None:
        if method == "notifications/progress" and isinstance(params, dict):
            token = params.get("progressToken")
            waiter = self._out.get(token)
            sink = waiter.progress if waiter is not None else None
            if sink is not None:
                self._extend(token)  # type: ignore[arg-type]
                await sink(params)
            return
        if method == "notifications/cancelled" and isinstance(params, dict):
            self._in.cancel(params.get("requestId"))
            return
        await self.handler.on_upstream_notification(self, method, params)

    async def _serve(self, rid: jsonrpc.RequestId, method: str, params: Any) -> None:
        """Answer a request the upstream sent us (sampling, elicitation, roots, ping)."""
        with self._in.begin(rid) as scope:
            try:
                result = await self.handler.on_upstream_request(self, method, params)
                reply = jsonrpc.result(rid, result)
            except RPCError as exc:
                reply = {"jsonrpc": "2.0", "id": rid, "error": exc.to_error()}
            except Exception:
                logger.exception("answering %s from upstream %s failed", method, self.name)
                reply = jsonrpc.error(rid, jsonrpc.INTERNAL_ERROR, "mcp-guard failed to relay this request")
            finally:
                self._in.end(rid, scope)
                self._extend()  # the time the client took to answer is not the upstream's
        if scope.cancelled_caught:
            return  # the upstream withdrew it: no answer is owed
        try:
            await self.transport.send(reply)
        except UpstreamError:
            pass

    def _fail_all(self, reason: str) -> None:
        self.dead = reason
        self._out.fail_all(RPCError(jsonrpc.UPSTREAM_UNAVAILABLE, reason))

    def _extend(self, rid: int | None = None) -> None:
        """Restart the deadline of request ``rid``, or of every request when None."""
        one = self._out.get(rid) if rid is not None else None
        waiters = [one] if one is not None else [] if rid is not None else [w for _, w in self._out.items()]
        for waiter in waiters:
            waiter.restart(self.request_timeout)

    # -- requests toward the upstream -----------------------------------------------------------

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        facts: ClientFacts | None = None,
        progress: ProgressFn | None = None,
        deadline: bool = True,
        modern: bool = False,
    ) -> Any:
        """Send a request and wait for its result; raises :class:`RPCError` on an error answer.

        ``params`` must not carry envelope keys or a progress token: this adds the ones the
        upstream's era needs (``modern`` forces the 2026 envelope, for the handshake itself).
        Cancelling the caller cancels the request upstream too. Without ``deadline`` the wait
        is unbounded (a listen stream that is meant to stay open).
        """
        if self.dead is not None:
            raise RPCError(jsonrpc.UPSTREAM_UNAVAILABLE, self.dead)
        rid, waiter = self._out.open(progress, anyio.current_time() + self.request_timeout if deadline else math.inf)
        extra: dict[str, Any] = {}
        if self.era == era.MODERN or modern:
            extra.update((facts or self.facts).envelope())
        if progress is not None:
            extra["progressToken"] = rid
        if extra:
            params = era.with_meta(params, extra)
        try:
            await self.transport.send(jsonrpc.request(rid, method, params))
            # The upstream's clock is held while it waits on the client (sampling, elicitation).
            await waiter.wait(self.request_timeout, lambda: bool(len(self._in)))
        except UpstreamError as exc:
            raise RPCError(jsonrpc.UPSTREAM_UNAVAILABLE, self.dead or str(exc)) from exc
        except TimeoutError:
            await self._withdraw(rid, "mcp-guard's request deadline passed")
            raise RPCError(
                jsonrpc.UPSTREAM_TIMEOUT,
                f"upstream {self.name!r} did not answer {method} within {self.request_timeout:g} s "
                "(its requestTimeout); the request was cancelled",
            ) from None
        except BaseException:
            await self._withdraw(rid, "cancelled by the client")
            raise
        finally:
            self._out.take(rid)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def _withdraw(self, rid: int, reason: str) -> None:
        if self._out.take(rid) is not None and self.dead is None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_SEND_TIMEOUT_S):
                await self.notify("notifications/cancelled", {"requestId": rid, "reason": reason})

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        if self.dead is not None:
            return
        try:
            await self.transport.send(jsonrpc.notification(method, params))
        except UpstreamError:
            pass

    # -- handshake ------------------------------------------------------------------------------

    async def connect(self, facts: ClientFacts) -> None:
        """Handshake once, in the era the config asks for or, on ``auto``, the client's own first.

        The handshake runs in this upstream's own task: a caller that gives up (a client that
        cancels its probe) does not abort it, and every caller meanwhile waits for the same one
        rather than seeing a half-connected server.
        """
        if self.ready:
            return
        if self.dead is not None:
            raise RPCError(jsonrpc.UPSTREAM_UNAVAILABLE, self.dead)
        handshake = self._handshake
        if handshake is None:
            handshake = self._handshake = _Handshake()
            if self._tg is not None:
                self._tg.start_soon(self._shake_hands, facts, handshake)
            else:
                await self._shake_hands(facts, handshake)
        await handshake.done.wait()
        if handshake.error is not None:
            raise handshake.error

    async def _shake_hands(self, facts: ClientFacts, handshake: _Handshake) -> None:
        try:
            await self._try_eras(facts)
        except RPCError as exc:
            handshake.error = exc
            self._handshake = None  # the next client may try again
        except Exception:  # a malformed handshake answer must not take the upstream's task down
            logger.exception("handshake with upstream %s failed", self.name)
            text = f"upstream {self.name!r} answered the MCP handshake with a malformed result"
            handshake.error = RPCError(jsonrpc.UPSTREAM_UNAVAILABLE, text)
            self._handshake = None
        finally:
            handshake.done.set()

    async def _try_eras(self, facts: ClientFacts) -> None:
        agreed = await agree(self, facts)
        self._adopt(agreed)
        if agreed.era == era.LEGACY:
            await self.notify("notifications/initialized")
        self.facts = facts
        logger.info("upstream %s speaks %s", self.name, self.version)

    def _adopt(self, agreed: Agreed) -> None:
        # The era is set last: until then the server is not ready, and nobody may describe it.
        self.version = agreed.version
        self.server_info = agreed.server_info
        self.capabilities = agreed.capabilities
        self.instructions = agreed.instructions
        self.era = agreed.era

    def describe(self) -> str:
        return self.transport.describe()

    def listen(self, uris: frozenset[str] | None = None) -> None:
        """(Re)open the 2026 ``subscriptions/listen`` stream: list changes, and ``uris``' updates.

        Handshake-era clients expect these notifications at any time; a 2026-07-28 server sends
        them only on such a stream, so the guard holds one open per modern upstream.
        """
        if self.era != era.MODERN or self._tg is None:
            return
        if uris is not None:
            self.listened_uris = uris
        flags: dict[str, Any] = {}
        for kind, flag in (("tools", "toolsListChanged"), ("resources", "resourcesListChanged"), ("prompts", "promptsListChanged")):
            if (self.capabilities.get(kind) or {}).get("listChanged"):
                flags[flag] = True
        if self.listened_uris:
            flags["resourceSubscriptions"] = sorted(self.listened_uris)
        if self._listen_scope is not None:
            self._listen_scope.cancel()
            self._listen_scope = None
        if flags:
            self._listen_scope = anyio.CancelScope()
            self._tg.start_soon(self._hold_listen, flags, self._listen_scope)

    async def _hold_listen(self, flags: dict[str, Any], scope: anyio.CancelScope) -> None:
        with scope:
            try:
                await self.request("subscriptions/listen", {"notifications": flags}, deadline=False)
            except RPCError as exc:
                logger.info("upstream %s refused subscriptions/listen: %s", self.name, exc.message)

    async def set_log_level(self, level: str) -> None:
        """Pass a client's log level on: ``logging/setLevel`` before 2026, the envelope after."""
        if self.log_level == level:
            return
        self.log_level = level
        if self.era == era.LEGACY and "logging" in self.capabilities:
            try:
                await self.request("logging/setLevel", {"level": level})
            except RPCError as exc:
                logger.info("upstream %s refused logging/setLevel: %s", self.name, exc.message)

"""The hub of one client session: the client's methods, each to its handler, through the pipeline.

The upstream set (names, URIs, cursors, capabilities) is the :class:`~.router.Router`'s; what
upstreams send toward the client is :class:`~.toward.TowardClient`'s; whether a 2026 retry
resumes is the :class:`~.gate.Gate`'s; era bridging of mid-call input is in :mod:`.eras`; the
methods that reach several upstreams (lists, resources, completions, listen) are in :mod:`.fanout`.
Every method that carries data toward the model goes through :meth:`Hub.forward`, which runs
the pipeline; the era translation happens below it, so hooks see one shape in every era.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..protocol import era, jsonrpc
from ..errors import RPCError
from ..pipeline import INTERCEPTED, Call, NeedInput, Pipeline, Verdict
from ..policy.paths import host_of
from . import eras as bridge
from . import fanout
from .asker import Asker
from .egress import Egress
from .gate import INVALID_STATE, Admission, Gate, check_arguments
from .router import Router
from .state import Sealer
from .toward import DENIED, TowardClient
from .upstream import ClientFacts, Inflight, Upstream

if TYPE_CHECKING:
    from .session import RequestContext, Session

logger = logging.getLogger(__name__)


class Hub:
    def __init__(
        self,
        upstreams: Sequence[Upstream] = (),
        pipeline: Pipeline | None = None,
        allow_methods: Sequence[str] = (),
        server_name: str = "mcp-guard",
        *,
        sealer: Sealer | None = None,
        parked: dict[str, bridge.BridgedCall] | None = None,
    ) -> None:
        self.pipeline = pipeline or Pipeline()
        # Every message toward a client passes it (Session.send); unknown origin: the one upstream.
        self.egress = Egress(self.pipeline, lambda: "" if self.aggregated else self.single.name)
        self.allow_methods = tuple(allow_methods)
        self.server_name = server_name
        self.sessions: list[Session] = []
        # Shared by every hub of one guard: a 2026 retry may arrive in another exchange.
        self.parked: dict[str, bridge.BridgedCall] = {} if parked is None else parked
        self.sealer = sealer or Sealer()
        self.gate = Gate(self.sealer, self.parked)
        self.toward = TowardClient(self)
        self.router = Router()
        self.upstreams = self.router.upstreams  # the same dict: read-only views for callers
        self.uris = self.router.uris
        self._tg: anyio.abc.TaskGroup | None = None
        self._owned: list[Upstream] = []  # started and stopped by this hub (not the shared ones)
        # Set on a hub that serves many stateless exchanges: a new upstream of that name, so that
        # a bridged call gets a process (or HTTP session) of its own, whose questions are its own.
        self.spawn: Callable[[str], Upstream] | None = None
        for up in upstreams:
            self.add(up)

    def add(self, upstream: Upstream, *, owned: bool = True) -> None:
        self.router.add(upstream)
        if owned:
            upstream.handler = self.toward
            self._owned.append(upstream)

    @property
    def aggregated(self) -> bool:
        return self.router.aggregated

    @property
    def owned(self) -> tuple[Upstream, ...]:
        return tuple(self._owned)

    def per_call(self, up: Upstream) -> Upstream | None:
        """A fresh upstream for one bridged call, where ``up`` serves many exchanges (else None)."""
        if self.spawn is None or up not in self._owned:
            return None
        fresh = self.spawn(up.name)
        fresh.handler = self.toward
        fresh.protocol = "legacy"  # only handshake-era upstreams are bridged: no need to probe again
        return fresh

    @property
    def single(self) -> Upstream:
        return self.router.single

    def live(self) -> list[Upstream]:
        return self.router.live()

    async def connect(self, facts: ClientFacts) -> None:
        await self.router.connect(facts)

    def route_name(self, name: Any, kind: str) -> tuple[Upstream, str]:
        return self.router.route_name(name, kind)

    def route_uri(self, uri: str) -> list[Upstream]:
        return self.router.route_uri(uri)

    async def tool_definition(self, ctx: RequestContext, up: Upstream, name: str) -> dict[str, Any] | None:
        return await self.router.tool_definition(ctx.facts, up, name)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the upstreams' tasks and background calls until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for up in self._owned:
                await tg.start(up.run)
            task_status.started()
            await anyio.sleep_forever()  # bridged calls run here, even with no upstream of its own

    def start_background(self, fn: Callable[[], Awaitable[None]]) -> None:
        assert self._tg is not None
        self._tg.start_soon(fn)

    def method_allowed(self, method: str) -> bool:
        return any(fnmatch.fnmatchcase(method, pattern) for pattern in self.allow_methods)

    # -- the client's requests --------------------------------------------------------------------

    async def handle(self, ctx: RequestContext, params: dict[str, Any] | None) -> Any:
        method = ctx.method
        if method == "initialize":
            return await self._initialize(ctx, params or {})
        if method == "ping":
            return {}
        if method not in era.CLIENT_REQUESTS and not self.method_allowed(method):
            raise RPCError(
                jsonrpc.METHOD_NOT_FOUND,
                f"mcp-guard does not relay {method!r}: it is not an MCP method it inspects. "
                "An operator can allow it with allowMethods in the guard config.",
            )
        await self.connect(ctx.facts)
        if method == "server/discover":
            return self._discover()
        if method == "logging/setLevel":
            return await self._set_level(ctx, params or {})
        if method in fanout.LISTS:
            return await fanout.listing(self, ctx, method, params or {})
        if method == "subscriptions/listen":
            return await fanout.listen(self, ctx, params or {})
        if method in ("tools/call", "prompts/get"):
            params = dict(params or {})
            up, params["name"] = self.route_name(params.get("name"), "tool" if method == "tools/call" else "prompt")
            params.pop("task", None)  # task-augmented calls would return output outside this path
            result = await self.forward(ctx, up, method, params)
            if self.aggregated and method == "tools/call":
                self.uris.learn_links(up, result)
            return result
        if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            return await fanout.resource(self, ctx, method, params or {})
        if method == "completion/complete":
            return await fanout.complete(self, ctx, params or {})
        # An allowlisted method the guard does not know: relay as is to the one upstream.
        if self.aggregated:
            raise RPCError(jsonrpc.METHOD_NOT_FOUND, f"{method!r} cannot be routed with several upstreams")
        return await self.forward(ctx, self.single, method, params)

    async def _initialize(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        session = ctx.session
        requested = params.get("protocolVersion")
        version = requested if requested in era.HANDSHAKE_VERSIONS else era.LATEST_HANDSHAKE
        caps = params.get("capabilities")
        session.era = era.LEGACY
        session.facts = ClientFacts(
            era=era.LEGACY,
            version=version,
            capabilities=caps if isinstance(caps, dict) else {},
            client_info=params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else None,
        )
        # Settled once the client says `notifications/initialized` (or sends its first request): a
        # server's question must not reach the client before the answer to its initialize.
        await self.connect(session.facts)
        if not self.aggregated and self.single.era == era.LEGACY:
            # Not newer than what the upstream agreed to speak.
            up_version = self.single.version
            if up_version in era.HANDSHAKE_VERSIONS and era.HANDSHAKE_VERSIONS.index(up_version) < era.HANDSHAKE_VERSIONS.index(version):
                version = up_version
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": self.router.capabilities(),
            "serverInfo": self.router.server_info(self.server_name),
        }
        instructions = self.router.instructions()
        if instructions:
            result["instructions"] = instructions
        return result

    def _discover(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "supportedVersions": list(era.MODERN_VERSIONS),
            "capabilities": self.router.capabilities(),
            "resultType": "complete",
            "cacheScope": "private",
            "ttlMs": 0,
            "_meta": {era.SERVER_INFO_KEY: self.router.server_info(self.server_name)},
        }
        instructions = self.router.instructions()
        if instructions:
            result["instructions"] = instructions
        return result

    async def _set_level(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        level = params.get("level")
        if not isinstance(level, str):
            raise RPCError(jsonrpc.INVALID_PARAMS, "level must be a string")
        ctx.session.facts.log_level = level
        ctx.session.log_opt_in = True
        for up in self.live():
            await up.set_log_level(level)
        return {}

    # -- lists and routing ------------------------------------------------------------------------

    # -- forwarding through the pipeline ----------------------------------------------------------

    async def forward(self, ctx: RequestContext, up: Upstream, method: str, params: dict[str, Any] | None) -> Any:
        """Run one data-carrying request through the pipeline and on to the upstream."""
        ctx.origin = up.name
        params = dict(params or {})
        call = Call(method, up.name, params, session_id=ctx.session.key, user=ctx.user, groups=ctx.groups)
        if method not in INTERCEPTED or not self.pipeline.active:
            admission = self._admit(ctx, up, call)
            result = await self._execute(ctx, up, method, call.params, resume=admission.resume)
            if method == "tools/list":
                self.router.remember_tools(up, params, result)
            if ctx.modern and method in era.CACHEABLE:
                era.make_private(result)  # masked on its way out with this caller's vault
            return result
        call.started = time.monotonic()
        call.outcome = "error"
        try:
            return await self._guarded(ctx, up, method, params, call)
        finally:
            call.ended = time.monotonic()
            ctx.after.append(functools.partial(self.pipeline.run_finish, call))

    async def _guarded(self, ctx: RequestContext, up: Upstream, method: str, params: dict[str, Any], call: Call) -> Any:
        try:
            admission = self._admit(ctx, up, call)
        except RPCError as exc:
            call.outcome = "refused"
            call.error = exc.message
            raise
        if admission.preapproved:
            call.preapproved = True
        call.asker = Asker(self, ctx, call)
        if method == "tools/call":
            call.lookup_tool = lambda: self.tool_definition(ctx, up, call.name)
            call.roots = self.router.roots.get(up.name)
            call.host = host_of(up.transport)
        if admission.resume is None:
            try:
                await self.pipeline.run_request(call)
            except NeedInput as need:
                call.outcome = "asked"
                return self._ask_round(call, need, up)
            if call.verdict is not None:
                call.outcome = "denied"
                return self._refusal(ctx, method, call.verdict)
        try:
            result = await self._execute(ctx, up, method, call.params, resume=admission.resume)
        except RPCError as exc:
            call.error = exc.message
            raise
        if method == "tools/list":
            self.router.remember_tools(up, params, result)
        if ctx.modern and era.is_input_required(result) and not isinstance(result.get("requestState"), era.GuardState):
            # The upstream asks the client next. Its own state goes out sealed inside the guard's,
            # bound to this call and caller (the egress passes no other requestState unmasked);
            # after an approval, the retry must not ask the person again.
            result = dict(result)
            approved = bool(call.approved or call.preapproved)
            result["requestState"] = self.gate.seal(call, up.name, approved=approved, up=result.get("requestState"))
        call.result = result
        await self.pipeline.run_response(call)
        if call.verdict is not None:
            call.outcome = "withheld"
            return self._refusal(ctx, method, call.verdict)
        call.outcome = "completed"
        if ctx.modern and method in era.CACHEABLE:
            era.make_private(call.result)  # filtered by policy for this caller, masked with its vault
        return call.result

    def _admit(self, ctx: RequestContext, up: Upstream, call: Call) -> Admission:
        """Every request passes here, with or without hooks: the gate opens a 2026 retry's state."""
        check_arguments(call.method, call.params)
        if not (ctx.modern and call.method in era.INPUT_REQUIRED_METHODS):
            return Admission()
        return self.gate.admit(call, up.name, session_id=ctx.session.id, stateless=ctx.session.stateless)

    def _ask_round(self, call: Call, need: NeedInput, up: Upstream) -> dict[str, Any]:
        return {
            "resultType": "input_required",
            "inputRequests": {need.key: {"method": need.method, "params": need.params}},
            "requestState": self.gate.seal(call, up.name, up=call.params.get("requestState"), asking=True),
        }

    def _refusal(self, ctx: RequestContext, method: str, verdict: Verdict) -> Any:
        if method == "tools/call":
            result: dict[str, Any] = {"content": [{"type": "text", "text": f"mcp-guard: {verdict.reason}"}], "isError": True}
            return era.modernize_result(method, result) if ctx.modern else result
        raise RPCError(DENIED, f"mcp-guard: {verdict.reason}")

    async def _execute(
        self, ctx: RequestContext, up: Upstream, method: str, params: dict[str, Any] | None,
        resume: bridge.BridgedCall | None = None,
    ) -> Any:
        if not up.ready:
            await up.connect(ctx.facts)
        if ctx.modern and up.era != era.MODERN and method in era.INPUT_REQUIRED_METHODS:
            return await bridge.modern_over_legacy(self, ctx, up, method, dict(params or {}), resume)  # tracks itself
        if resume is not None:  # the gate saw a parked call, but this upstream no longer needs bridging
            raise RPCError(jsonrpc.INVALID_PARAMS, INVALID_STATE)
        with _serving(up, Inflight(ctx.session, ctx.id)):
            if ctx.modern:
                if up.era == era.MODERN:
                    return await up.request(method, params, facts=ctx.facts, progress=ctx.progress_sink())
                if ctx.facts.log_level:
                    await up.set_log_level(ctx.facts.log_level)
                result = await up.request(method, params, facts=ctx.facts, progress=ctx.progress_sink())
                return era.modernize_result(method, result)
            if up.era == era.MODERN and method in era.INPUT_REQUIRED_METHODS:
                return await bridge.legacy_over_modern(self, ctx, up, method, dict(params or {}))
            return await up.request(method, params, facts=ctx.facts, progress=ctx.progress_sink())

    # -- what upstreams send toward the client: see toward.py ----------------------------------------

    async def on_upstream_request(self, up: Upstream, method: str, params: Any) -> Any:
        return await self.toward.on_upstream_request(up, method, params)

    async def on_upstream_notification(self, up: Upstream, method: str, params: Any) -> None:
        await self.toward.on_upstream_notification(up, method, params)

    async def ask_client(
        self, session: Session, up: Upstream, method: str, params: Any, related: jsonrpc.RequestId | None,
        facts: ClientFacts,
    ) -> Any:
        return await self.toward.ask_client(session, up, method, params, related, facts)

    async def broadcast_upstream(self, method: str, params: Any) -> None:
        """A client's notification every upstream must hear (roots changed, allowlisted ones)."""
        for up in self.live():
            if method == "notifications/roots/list_changed" and up.era == era.MODERN:
                continue  # 2026-07-28 has no such notification
            await up.notify(method, params)


@contextlib.contextmanager
def _serving(up: Upstream, inflight: Inflight) -> Iterator[None]:
    """Mark a client call as in flight on ``up``, so what the upstream sends meanwhile finds it."""
    up.inflight.append(inflight)
    try:
        yield
    finally:
        up.inflight.remove(inflight)

"""Translation of mid-call input between the eras.

Handshake-era servers ask the client in the middle of a call (``elicitation/create``,
``sampling/createMessage``, ``roots/list``); 2026-07-28 servers return an input-required result
and the client retries the call with the answers.

* 2026 client, handshake upstream: :class:`BridgedCall` runs the upstream call in the hub's task
  group. A question from the upstream ends the client's current round with an input-required
  result whose ``requestState`` is an unguessable handle; the retry delivers the answers and
  waits for the next question or the result. A parked call that nobody resumes within
  ``PARK_TTL_S`` is cancelled.
* Handshake client, 2026 upstream: :func:`legacy_over_modern` asks the client each question
  mid-call and retries the upstream call until it completes, at most ``MAX_INPUT_ROUNDS`` times.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..protocol import era, jsonrpc
from ..errors import RPCError
from .upstream import Inflight, ProgressFn, Upstream

if TYPE_CHECKING:
    from .hub import Hub
    from .session import RequestContext

logger = logging.getLogger(__name__)

# A person answering a form may take minutes; after this the parked upstream call is dropped.
PARK_TTL_S = 600.0
# Calls of one user that may wait for that user's answers at once: each holds its upstream call
# (often a process started for it alone) for up to PARK_TTL_S, and the round that parked it is over.
MAX_PARKED_PER_USER = 16
# Retries of one call with answers before the guard gives up on a server that keeps asking.
MAX_INPUT_ROUNDS = 10
# The spec asks for a short pause before retrying a result that carried only requestState.
STATE_ONLY_BACKOFF_S = 0.1
STATE_PREFIX = "mcp-guard."


def binding(method: str, params: dict[str, Any], server: str) -> str:
    """What a retry must repeat to resume a parked call: server, method, target and arguments."""
    target = params.get("uri") if method == "resources/read" else params.get("name")
    body = json.dumps([server, method, target, params.get("arguments")], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class _Answer:
    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: Any = None


class BridgedCall:
    def __init__(
        self, hub: Hub, ctx: RequestContext, upstream: Upstream, method: str, params: dict[str, Any],
        dedicated: Upstream | None = None,
    ) -> None:
        self.hub = hub
        # An upstream started for this call alone (its questions can only be this call's), run
        # and stopped by run(); None when the upstream serves one session anyway.
        self._dedicated = dedicated
        self._facts = ctx.facts
        self.session_id = ctx.session.id
        self.session_key = ctx.session.key
        # A stateless exchange's state is dropped when it ends; what this call's later rounds
        # keep under its key is dropped when the call ends.
        self._owns_key = ctx.session.stateless and not ctx.session.keyed_by_caller
        self.user = ctx.user  # only this caller may resume it
        self.upstream = upstream
        self.method = method
        self.params = params
        self.binding = binding(method, params, upstream.name)
        # The instance's tag (relay/state.py) lets a load balancer send the retry back here.
        self.handle = era.GuardState(STATE_PREFIX + hub.sealer.tag + secrets.token_urlsafe(32))
        self.progress: ProgressFn | None = None  # the open round's sink
        self._inflight = Inflight(ctx.session, None, bridge=self)
        self._events_in, self._events_out = anyio.create_memory_object_stream[tuple[Any, ...]](math.inf)
        self._answers: dict[str, _Answer] = {}
        self._keys = 0
        self._scope = anyio.CancelScope()
        self._was_parked = False

    async def run(self) -> None:
        """The upstream call itself; runs in the hub's task group."""
        event: tuple[Any, ...] = ("error", RPCError(jsonrpc.INTERNAL_ERROR, "the call was cancelled"))
        with self._scope:
            try:
                async with anyio.create_task_group() as tg:
                    event = await self._call(tg)
                    tg.cancel_scope.cancel()  # a dedicated upstream stops with its call
            finally:
                if self._owns_key:
                    with anyio.CancelScope(shield=True):
                        await self.hub.pipeline.close_session(self.session_key)
        self._events_in.send_nowait(event)

    async def _call(self, tg: anyio.abc.TaskGroup) -> tuple[Any, ...]:
        # Errors are caught here, inside the task group, so they stay RPCErrors (not groups).
        try:
            up = await self._upstream(tg)
            up.inflight.append(self._inflight)
            try:
                return ("done", await up.request(self.method, self.params, progress=self._relay_progress))
            finally:
                up.inflight.remove(self._inflight)
        except RPCError as exc:
            return ("error", exc)

    async def _upstream(self, tg: anyio.abc.TaskGroup) -> Upstream:
        if self._dedicated is None:
            return self.upstream
        await tg.start(self._dedicated.run)
        await self._dedicated.connect(self._facts)
        return self._dedicated

    def cancel(self) -> None:
        self._scope.cancel()
        self.hub.parked.pop(self.handle, None)

    async def _relay_progress(self, params: dict[str, Any]) -> None:
        if self.progress is not None:
            await self.progress(params)

    async def ask(self, method: str, params: Any) -> Any:
        """A question from the upstream: surface it to the client, wait for the retry's answer."""
        self._keys += 1
        key = f"relay/{self._keys}"  # not "mcp-guard/...": those are the guard's own questions
        answer = _Answer()
        self._answers[key] = answer
        self._events_in.send_nowait(("ask", key, method, params))
        try:
            with anyio.fail_after(PARK_TTL_S):
                await answer.event.wait()
        except TimeoutError:
            self.cancel()
            raise RPCError(jsonrpc.INTERNAL_ERROR, "the client did not answer within the time limit") from None
        finally:
            self._answers.pop(key, None)
        if isinstance(answer.value, RPCError):
            raise answer.value
        return answer.value

    async def next_round(self, ctx: RequestContext) -> Any:
        """Wait for the upstream's next question or its result, and shape it for the client."""
        self.progress = ctx.progress_sink()
        try:
            event = await self._events_out.receive()
        except BaseException:
            self.cancel()  # a cancelled round cancels the upstream call
            raise
        finally:
            self.progress = None
        if event[0] == "done":
            self.hub.parked.pop(self.handle, None)
            return era.modernize_result(self.method, event[1])
        if event[0] == "error":
            self.hub.parked.pop(self.handle, None)
            raise event[1]
        asks = [event]
        while True:  # questions that arrived together go out in one round
            try:
                asks.append(self._events_out.receive_nowait())
            except anyio.WouldBlock:
                break
        requests = {}
        for ask in asks:
            if ask[0] != "ask":  # the call ended right after asking: deliver that next round
                self._events_in.send_nowait(ask)
                continue
            _, key, method, params = ask
            # An upstream's roots/list or ping carries no params; a 2026-07-28 input request must
            # still have an object there, or clients (the TS SDK's schema) reject the whole round.
            requests[key] = {"method": method, "params": params if isinstance(params, dict) else {}}
        if not self._was_parked:  # a resumed call asking again keeps its place
            waiting = sum(1 for other in self.hub.parked.values() if other.user == self.user)
            if waiting >= MAX_PARKED_PER_USER:
                self.cancel()
                raise RPCError(jsonrpc.INVALID_REQUEST, (
                    f"mcp-guard: {waiting} calls of yours already wait for your answers, the most that may wait at"
                    " once; answer them (retry with their requestState) or let them expire, then call again"
                ))
        self._was_parked = True
        self.hub.parked[self.handle] = self
        return {"resultType": "input_required", "inputRequests": requests, "requestState": self.handle}

    def deliver(self, responses: Any) -> None:
        if not isinstance(responses, dict):
            return
        for key, value in responses.items():
            answer = self._answers.get(key)
            if answer is not None and not answer.event.is_set():
                answer.value = value
                answer.event.set()


async def modern_over_legacy(
    hub: Hub, ctx: RequestContext, upstream: Upstream, method: str, params: dict[str, Any],
    resume: BridgedCall | None = None,
) -> Any:
    """A 2026 client's call to a handshake-era upstream: start it, or resume the parked one.

    ``resume`` was verified by the gate (parked here, same server, method, target, arguments)."""
    if resume is not None:
        hub.parked.pop(resume.handle, None)
        resume.deliver(params.get("inputResponses"))
        return await resume.next_round(ctx)
    if params.get("requestState") is not None or params.get("inputResponses") is not None:
        raise RPCError(jsonrpc.INVALID_PARAMS, "Invalid or expired requestState")
    call = BridgedCall(hub, ctx, upstream, method, params, dedicated=hub.per_call(upstream))
    hub.start_background(call.run)
    return await call.next_round(ctx)


async def legacy_over_modern(
    hub: Hub, ctx: RequestContext, upstream: Upstream, method: str, params: dict[str, Any]
) -> Any:
    current = params
    progress = ctx.progress_sink()
    for _ in range(MAX_INPUT_ROUNDS + 1):
        result = await upstream.request(method, current, facts=ctx.facts, progress=progress)
        if not era.is_input_required(result):
            return result
        requests = result.get("inputRequests") or {}
        answers: dict[str, Any] = {}
        for key, item in requests.items() if isinstance(requests, dict) else ():
            if not isinstance(item, dict) or not isinstance(item.get("method"), str):
                raise RPCError(jsonrpc.INTERNAL_ERROR, f"upstream {upstream.name!r} sent a malformed input request")
            answers[key] = await hub.ask_client(ctx.session, upstream, item["method"], item.get("params"), ctx.id, ctx.facts)
        if not requests:
            await anyio.sleep(STATE_ONLY_BACKOFF_S)
        current = dict(params)
        if answers:
            current["inputResponses"] = answers
        if result.get("requestState") is not None:
            current["requestState"] = result["requestState"]
    raise RPCError(jsonrpc.INTERNAL_ERROR, f"upstream {upstream.name!r} asked for input more than {MAX_INPUT_ROUNDS} times")

"""Asking the person at the client from inside the pipeline, in whichever era the client speaks.

Handshake-era clients get an ``elicitation/create`` in the middle of the call (with progress
notifications while the person reads); 2026-07-28 clients get :class:`NeedInput`, which the hub
turns into an input-required result, and the retry brings the answer back in ``call.answers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ..protocol import jsonrpc
from ..pipeline import Call, NeedInput

if TYPE_CHECKING:
    from .hub import Hub
    from .session import RequestContext


# How often a client waiting on a person hears that the call is still alive.
WAITING_PROGRESS_S = 5.0


class Asker:
    """Asks the person at the client, in whichever era the client speaks."""

    def __init__(self, hub: Hub, ctx: RequestContext, call: Call) -> None:
        self.hub = hub
        self.ctx = ctx
        self.call = call
        self._beats = 0
        caps = ctx.facts.capabilities.get("elicitation") if isinstance(ctx.facts.capabilities, dict) else None
        # `{}` means form mode; a client that declares only `url` cannot show a form.
        self.can_elicit = isinstance(caps, dict) and ("form" in caps or "url" not in caps)
        # URL mode needs 2025-11-25 and a mid-call request: handshake-era clients only.
        self.can_elicit_url = isinstance(caps, dict) and "url" in caps and not ctx.modern

    async def ask(self, key: str, method: str, params: dict[str, Any], timeout: float) -> Any:
        """Ask the guard's own question; only the guard's hooks call this, never for an upstream."""
        from ..masking.outbound import GuardQuestion  # here: the masking engine loads only with a policy

        ctx = self.ctx
        params = GuardQuestion(params)  # marked ours: the egress does not mask the preview again
        if ctx.modern:
            if key in self.call.answers:
                return self.call.answers.pop(key)  # the retry's answer, verified by the sealed state
            raise NeedInput(key, method, params)
        # fail_after outside the task group: the timeout surfaces as TimeoutError, not a group.
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as tg:
                if ctx.progress_token is not None:
                    tg.start_soon(self._keep_alive)
                answer = await ctx.session.request_client(method, params, related=ctx.id)
                tg.cancel_scope.cancel()
        return answer

    async def progress(self, message: str) -> None:
        ctx = self.ctx
        if ctx.progress_token is None:
            return
        self._beats += 1
        note = {"progressToken": ctx.progress_token, "progress": self._beats, "message": message}
        await ctx.session.send_safely(jsonrpc.notification("notifications/progress", note), ctx.id)

    async def _keep_alive(self) -> None:
        ctx, beat = self.ctx, 0
        while True:
            await anyio.sleep(WAITING_PROGRESS_S)
            beat += 1
            note = {"progressToken": ctx.progress_token, "progress": beat, "message": "mcp-guard: waiting for your approval"}
            await ctx.session.send_safely(jsonrpc.notification("notifications/progress", note), ctx.id)

"""The gate: the one place that decides whether a request enters the pipeline or resumes.

A 2026-07-28 client retries a call that needed input with the ``requestState`` the guard gave
it. Two kinds of state belong to the guard, both under the ``mcp-guard.`` prefix:

* a *sealed* state (``mcp-guard.s.…``), from the guard's own question to the person: it is
  opened (HMAC, expiry, single use, bound to server, method, target and arguments) and the call
  runs the whole pipeline again, now with the person's answer;
* a *handle* to a bridged call parked in this guard, while a handshake-era upstream waits for
  the client's answer: it resumes that call only if it is parked, for this server, with the
  same method, target and arguments. The pipeline ran on its first round.

Anything else under the prefix is a forgery or a stale state: refused with -32602, and the
caller's audit record says so. A state without the prefix is the upstream's business and the
call runs the whole pipeline as a new one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..protocol import jsonrpc
from ..errors import RPCError
from . import eras as bridge
from .state import Sealer

if TYPE_CHECKING:
    from ..pipeline import Call

__all__ = ["ARGUMENTS_NOT_OBJECT", "Admission", "Gate", "INVALID_STATE", "check_arguments"]

INVALID_STATE = "Invalid or expired requestState"
ARGUMENTS_NOT_OBJECT = "arguments must be an object"
_ARGUMENT_METHODS = ("tools/call", "prompts/get")
_ENVELOPE = ("requestState", "inputResponses")


@dataclass(frozen=True)
class Admission:
    """What the gate decided: ``resume`` names a parked bridged call, else the pipeline runs."""

    resume: bridge.BridgedCall | None = None
    preapproved: bool = False


def check_arguments(method: str, params: dict[str, Any]) -> None:
    """Refuse ``arguments`` that are present and not an object, before anything reads them.

    The pipeline sees arguments as a mapping (``Call.arguments`` reads anything else as ``{}``),
    so a list, string, number or null would be previewed, bound and audited as ``{}`` while the
    original went upstream. Raises RPCError(-32602)."""
    if method in _ARGUMENT_METHODS and "arguments" in params and not isinstance(params["arguments"], dict):
        raise RPCError(jsonrpc.INVALID_PARAMS, ARGUMENTS_NOT_OBJECT)


class Gate:
    def __init__(self, sealer: Sealer, parked: dict[str, bridge.BridgedCall]) -> None:
        self.sealer = sealer
        self.parked = parked

    def admit(self, call: Call, server: str, *, session_id: str, stateless: bool) -> Admission:
        """Open a retry's state into ``call`` (its answers, the upstream's own state).

        Raises RPCError(-32602) when the state claims to be the guard's and does not verify."""
        params = call.params
        state = params.get("requestState")
        if not isinstance(state, str) or not state.startswith(bridge.STATE_PREFIX):
            return Admission()
        clean = {k: v for k, v in params.items() if k not in _ENVELOPE}
        wanted = bridge.binding(call.method, clean, server)
        if self.sealer.owns(state):
            return self._sealed(call, state, wanted, clean, session_id, stateless)
        return Admission(resume=self._parked(state, wanted, session_id, stateless, call.user))

    def _parked(self, handle: str, wanted: str, session_id: str, stateless: bool, user: str) -> bridge.BridgedCall:
        parked = self.parked.get(handle)
        if parked is None or parked.binding != wanted or (parked.session_id != session_id and not stateless):
            raise RPCError(jsonrpc.INVALID_PARAMS, INVALID_STATE)
        if parked.user != user:  # another caller's call, however its handle was learned
            raise RPCError(jsonrpc.INVALID_PARAMS, INVALID_STATE)
        return parked

    def _sealed(
        self, call: Call, state: str, wanted: str, clean: dict[str, Any], session_id: str, stateless: bool
    ) -> Admission:
        opened = self.sealer.open(state, wanted)
        if opened.get("u") != call.user:
            # Sealed for another caller: its approval and answers were theirs, not this caller's.
            raise RPCError(jsonrpc.INVALID_PARAMS, INVALID_STATE)
        preapproved = bool(opened.get("approved"))
        inner = opened.get("up")
        if isinstance(inner, str) and inner.startswith(bridge.STATE_PREFIX) and not self.sealer.owns(inner):
            # An approved call whose handshake-era server asked the client next: resume it.
            call.params = {**clean, "inputResponses": call.params.get("inputResponses")}
            return Admission(resume=self._parked(inner, wanted, session_id, stateless, call.user), preapproved=preapproved)
        asked = opened.get("q")
        if isinstance(asked, (int, float)) and not isinstance(asked, bool):
            call.asked_at = float(asked)  # the key is this process's, so its monotonic clock applies
        responses = call.params.get("inputResponses")
        responses = responses if isinstance(responses, dict) else {}
        call.answers = {k: v for k, v in responses.items() if k.startswith("mcp-guard/")}
        theirs = {k: v for k, v in responses.items() if not k.startswith("mcp-guard/")}
        call.params = dict(clean)
        if theirs:
            call.params["inputResponses"] = theirs
        if inner is not None:
            call.params["requestState"] = inner
        return Admission(preapproved=preapproved)

    def seal(self, call: Call, server: str, *, approved: bool = False, up: Any = None, asking: bool = False) -> str:
        """A state for the guard's own question (or an approved call's next round) about ``call``.

        ``asking``: the state goes out with a question, and records when (for the time to answer)."""
        clean = {k: v for k, v in call.params.items() if k not in _ENVELOPE}
        fields: dict[str, Any] = {"up": up, "u": call.user}
        if approved:
            fields["approved"] = True
        if asking:
            fields["q"] = time.monotonic()
        return self.sealer.seal(bridge.binding(call.method, clean, server), **fields)

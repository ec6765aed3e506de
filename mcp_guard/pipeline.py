"""The interception pipeline: an ordered list of small hooks around every data-carrying call.

The relay builds one :class:`Call` for each ``tools/list``, ``tools/call``, ``resources/read``, ``prompts/list``,
``prompts/get`` from the client, and for each ``sampling/createMessage`` or
``elicitation/create`` an upstream sends toward the client. Hooks see it before it is
forwarded (``request``) and once the result is back (``response``). A hook may change
``call.params`` or ``call.result`` in place, or end the call with ``call.deny(reason)``.

The runner fails closed: a hook that raises denies the call, it is never forwarded on an error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

__all__ = ["Asker", "Call", "Hook", "NeedInput", "Pipeline", "Verdict", "INTERCEPTED"]

# The methods that pass the pipeline. Everything else is relayed without a Call.
INTERCEPTED = frozenset(
    {"tools/list", "tools/call", "resources/read", "prompts/list", "prompts/get", "sampling/createMessage", "elicitation/create"}
)


class NeedInput(Exception):
    """Raised by :meth:`Asker.ask` toward a 2026-07-28 client that has not answered yet.

    The relay turns it into an input-required result; the client's retry carries the answer
    in ``Call.answers`` and the pipeline runs again from the start. Hooks let it propagate.
    """

    def __init__(self, key: str, method: str, params: dict[str, Any]) -> None:
        super().__init__(key)
        self.key, self.method, self.params = key, method, params


class Asker(Protocol):
    """How a hook asks the person at the client (provided by the relay, era-aware)."""

    can_elicit: bool

    async def ask(self, key: str, method: str, params: dict[str, Any], timeout: float) -> Any:
        """The client's answer. Raises TimeoutError, RPCError, or NeedInput (2026 clients)."""
        ...

    async def progress(self, message: str) -> None:
        """Tell a client that asked for progress that the call is still alive."""
        ...


@dataclass(frozen=True)
class Verdict:
    """Why a call was stopped; ``reason`` is written for the model to read and act on."""

    action: str  # "deny" for now; approvals add more
    reason: str
    hook: str = ""


@dataclass
class Call:
    """One intercepted exchange, as the pipeline sees it.

    ``upstream`` is the configured server name; ``name`` is the tool or prompt name as the
    upstream knows it (not namespaced), or the resource URI for ``resources/read``.
    ``toward_client`` is True for requests an upstream sends to the client.
    """

    method: str
    upstream: str
    params: dict[str, Any]
    session_id: str = ""
    user: str = ""
    groups: frozenset[str] = frozenset()  # the authenticated caller's groups (serve --auth), for policy
    toward_client: bool = False
    result: Any = None
    verdict: Verdict | None = None
    # Answers a 2026-07-28 client gave to the guard's own questions, by key.
    answers: dict[str, Any] = field(default_factory=dict)
    asker: Asker | None = None
    # The upstream's definition of the tool being called (``None``: no such tool listed).
    lookup_tool: Callable[[], Awaitable[dict[str, Any] | None]] | None = None
    # The filesystem roots the client last gave this upstream (``None``: never asked, or unknown).
    roots: tuple[str, ...] | None = None
    # Where the upstream reads paths (policy/paths.Host: on this machine or not, its HOME); None: unknown.
    host: Any = None

    # What the hooks learn about the call, in pipeline order; the comment names the writer.
    risk_floor: str | None = None  # integrity: a tool that tries to instruct the model is at least this risky
    labels: frozenset[str] = frozenset()  # mask: labels of raw sensitive values the model wrote itself
    masked_arguments: dict[str, Any] | None = None  # mask: the arguments as the model wrote them (placeholders)
    mask_arguments: Callable[[], Any] | None = None  # mask: the arguments with raw values masked (policy "mask")
    # mask: each vault placeholder in the arguments -> (servers its value came from, put back toward this one)
    placeholders: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)
    risk: Any = None  # policy: the resolved risk (mcp_guard.risk.ResolvedRisk)
    decision: Any = None  # policy: the matching rule's decision (mcp_guard.policy.engine.Decision)
    policy_version: str = ""  # policy: the version of the policy that decided
    preapproved: bool = False  # gate: a sealed 2026 state says the person already approved this call
    asked_at: float | None = None  # gate: monotonic time the guard's question to a 2026 client went out
    approval_started: float | None = None  # metrics: when the approval wait began (monotonic)
    approval_request: str = ""  # approve: the queue request this call waited on
    preview: str = ""  # approve: the canonical preview (mcp_guard.approval.preview), built once per call
    preview_sha256: str = ""  # approve: hash of the preview the approver saw
    approved: str = ""  # approve: the scope approved (once, session, ttl...), empty when not approved
    approval_channel: str = ""  # approve: where the approval came from
    approver: str = ""  # approve: who approved
    grant: str = ""  # approve: the grant that let the call through
    client_could_not_ask: str = ""  # approve: why the client's own elicitation did not reach a person
    masked: dict[str, int] = field(default_factory=dict)  # mask: label -> values masked in the result
    result_tokens: int | None = None  # mask: tokens of the result, when the budget counted them
    audit_record: Any = None  # audit: the call.forwarded record
    outcome: str = "error"  # relay: completed, denied, withheld, asked, refused or error
    error: str = ""  # relay: the upstream's or the gate's error message
    started: float | None = None  # relay: monotonic time the call entered the guard
    ended: float | None = None  # relay: monotonic time it left
    # For operators' own hooks to share state; the guard's hooks use the fields above.
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        key = "uri" if self.method == "resources/read" else "name"
        value = self.params.get(key)
        return value if isinstance(value, str) else ""

    @property
    def arguments(self) -> dict[str, Any]:
        value = self.params.get("arguments")
        return value if isinstance(value, dict) else {}

    @property
    def shown_arguments(self) -> dict[str, Any]:
        """The arguments as the model wrote them: placeholders, never restored values."""
        return self.masked_arguments if self.masked_arguments is not None else self.arguments

    def deny(self, reason: str, hook: str = "") -> None:
        if self.verdict is None:
            self.verdict = Verdict("deny", reason, hook)


class Hook:
    """One step of the pipeline; override only the events you need."""

    async def request(self, call: Call) -> None:
        """Before the call is forwarded. Change ``call.params`` or ``call.deny(...)``."""

    async def response(self, call: Call) -> None:
        """After the result came back. Change ``call.result`` in place or replace it."""

    async def finish(self, call: Call) -> None:
        """The call is over: run, refused, failed or waiting for input (``call.outcome``)."""

    async def close_session(self, session_id: str) -> None:
        """A client session ended: drop what was kept for it."""


def _overrides(hook: Hook, name: str) -> bool:
    return getattr(type(hook), name) is not getattr(Hook, name)


class Pipeline:
    """The ordered hooks, and the fail-closed runner."""

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        self.hooks = tuple(hooks)
        # Precomputed so that a pipeline of pass-through hooks costs nothing per call.
        self._request_hooks = tuple(h for h in self.hooks if _overrides(h, "request"))
        self._response_hooks = tuple(h for h in self.hooks if _overrides(h, "response"))
        self._finish_hooks = tuple(h for h in self.hooks if _overrides(h, "finish"))

    @property
    def active(self) -> bool:
        return bool(self._request_hooks or self._response_hooks or self._finish_hooks)

    async def run_request(self, call: Call) -> None:
        for hook in self._request_hooks:
            try:
                await hook.request(call)
            except NeedInput:
                raise
            except Exception:  # never BaseException: cancellation must pass through
                logger.exception("hook %s failed on %s %s", type(hook).__name__, call.method, call.upstream)
                call.verdict = Verdict("deny", "mcp-guard could not check this call, so it was not run", type(hook).__name__)
            if call.verdict is not None:
                return

    async def run_finish(self, call: Call) -> None:
        for hook in self._finish_hooks:
            try:
                await hook.finish(call)
            except Exception:
                logger.exception("hook %s failed to finish %s %s", type(hook).__name__, call.method, call.upstream)

    async def close_session(self, session_id: str) -> None:
        for hook in self.hooks:
            try:
                await hook.close_session(session_id)
            except Exception:
                logger.exception("hook %s failed to close session %s", type(hook).__name__, session_id)

    async def run_response(self, call: Call) -> None:
        for hook in self._response_hooks:
            try:
                await hook.response(call)
            except Exception:
                logger.exception("hook %s failed on the result of %s %s", type(hook).__name__, call.method, call.upstream)
                call.verdict = Verdict("deny", "mcp-guard could not check this result, so it was withheld", type(hook).__name__)
            if call.verdict is not None:
                return

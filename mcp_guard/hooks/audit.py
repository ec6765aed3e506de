"""The audit hook: one record when a call is let through (spooled before it is forwarded, so a
crash cannot lose it) and one when the call is over, whatever became of it (written once the
answer is on its way to the client).

Records carry names, the resolved risk, the rule, the decision, the approver and grant, the
outcome, latency, token counts and keyed digests of the masked arguments and result, never
the values themselves. A record that cannot be written fails the call closed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import tokens
from ..audit import Audit, digest
from ..masking.outbound import THREAD_CHARS, in_worker, weight_over
from ..pipeline import Call, Hook


_as_json = json.JSONEncoder(ensure_ascii=False).encode  # what tokens are counted in; built once


class AuditHook(Hook):
    def __init__(self, audit: Audit) -> None:
        self.audit = audit

    def _base(self, call: Call) -> dict[str, Any]:
        risk = call.risk
        decision = call.decision
        body: dict[str, Any] = {
            "session": call.session_id,
            "user": call.user,
            "server": call.upstream,
            "method": call.method,
            "tool": call.name if call.method != "resources/read" else "",
        }
        if risk is not None:
            body["risk"] = risk.level
        if decision is not None:
            body["rule"] = decision.rule
            body["decision"] = decision.action
        if call.approved:
            body["approved_scope"] = call.approved
            body["approver"] = (call.approver or call.user)
            body["channel"] = (call.approval_channel or "elicitation")
        for key in ("approval_request", "preview_sha256", "client_could_not_ask"):
            if getattr(call, key):
                body[key] = getattr(call, key)
        if call.grant:
            body["grant"] = call.grant
        if call.labels:
            body["labels"] = sorted(call.labels)
        return body

    async def request(self, call: Call) -> None:
        if call.method != "tools/call" or call.toward_client:
            return
        body = self._base(call)
        body["arguments_digest"] = digest(self.audit.key, call.shown_arguments)
        call.audit_record = self.audit.record("call.forwarded", body)

    async def finish(self, call: Call) -> None:
        if call.method != "tools/call" or call.toward_client:
            return
        body = self._base(call)
        outcome = call.outcome
        body["outcome"] = outcome
        started = call.started
        if started is not None:
            body["latency_ms"] = round(((call.ended or time.monotonic()) - started) * 1000, 3)
        if call.verdict is not None:
            body["reason"] = call.verdict.reason
        if call.error:
            body["error"] = call.error
        if call.audit_record:
            body["forwarded_record"] = call.audit_record
        if call.masked:
            body["masked"] = call.masked
        if weight_over(call.result, THREAD_CHARS):  # a large result is hashed and counted off the event loop
            body.update(await in_worker(self._result_facts, call, outcome))
        else:
            body.update(self._result_facts(call, outcome))
        kind = {"denied": "call.denied", "withheld": "call.withheld", "asked": "call.asked", "refused": "call.refused"}.get(outcome, "call.finished")
        self.audit.record(kind, body)

    def _result_facts(self, call: Call, outcome: str) -> dict[str, Any]:
        """The result's digest and the token counts: what costs time in proportion to the result."""
        facts: dict[str, Any] = {}
        if call.result is not None and outcome == "completed":
            facts["result_digest"] = digest(self.audit.key, call.result)
        _token_counts(facts, call, outcome)
        return facts


def _token_counts(body: dict[str, Any], call: Call, outcome: str) -> None:
    """Tokens of the arguments and of what reached the model (counted off the call's path):
    exact with tiktoken where a token budget loaded it, else estimated (and marked so)."""
    arguments = call.shown_arguments
    counted = tokens.count(_as_json(arguments)) if arguments else (0, True)
    body["argument_tokens"] = counted[0]
    exact = counted[1]
    if call.result_tokens is not None:
        body["result_tokens"] = call.result_tokens  # the budget counted them already
    elif outcome == "completed" and isinstance(call.result, dict):
        parts = [b["text"] for b in call.result.get("content") or () if isinstance(b, dict) and isinstance(b.get("text"), str)]
        if call.result.get("structuredContent") is not None:
            parts.append(_as_json(call.result["structuredContent"]))
        result = tokens.count("\n".join(parts))
        body["result_tokens"] = result[0]
        exact = exact and result[1]
    if not exact:
        body["tokens_estimated"] = True

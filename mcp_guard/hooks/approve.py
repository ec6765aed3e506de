"""The approval hook: a call the policy marks ``approve`` waits for a person's yes.

``approvers: user`` asks the person at the client through elicitation: mid-call for
handshake-era clients, as an input-required round for 2026-07-28 clients (``call.asker``
hides the difference). No answer, a decline, a cancel, a timeout, or a client that cannot be
asked all mean the call is not run, with a message saying why and what to do.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..errors import RPCError
from ..grants import Grants, offered_scopes
from ..pipeline import Call, Hook

logger = logging.getLogger(__name__)

APPROVE_KEY = "mcp-guard/approve"
# Argument values longer than this are shortened in the preview a person reads.
PREVIEW_VALUE_CHARS = 200
PREVIEW_TOTAL_CHARS = 2000

SCOPE_TITLES = {"once": "Only this call", "session": "This tool, for the rest of this session"}


class ApprovalHook(Hook):
    def __init__(self, grants: Grants | None) -> None:
        self.grants = grants

    async def request(self, call: Call) -> None:
        decision = call.notes.get("decision")
        if decision is None or decision.action != "approve" or call.verdict is not None:
            return
        if call.notes.get("preapproved"):
            return
        if self.grants is not None:
            grant = self.grants.find(call.user, call.session_id, call.upstream, call.name)
            if grant is not None:
                call.notes["grant"] = grant.id
                return
        if decision.approvers == "reviewers":
            call.deny(
                f"{call.name} on {call.upstream} needs approval by a security reviewer (rule '{decision.rule}'), "
                "and this guard has no review queue configured. The call was not run.",
                "approve",
            )
            return
        if call.asker is None or not call.asker.can_elicit:
            call.deny(
                f"{call.name} on {call.upstream} needs your approval (rule '{decision.rule}': {decision.reason}), "
                "but this MCP client does not support elicitation, the way mcp-guard asks. "
                "The call was not run. Use a client with elicitation support, or change the policy.",
                "approve",
            )
            return
        scopes = offered_scopes(decision.scope)
        params = {"mode": "form", "message": preview(call, decision), "requestedSchema": schema(scopes)}
        try:
            answer = await call.asker.ask(APPROVE_KEY, "elicitation/create", params, decision.timeout)
        except TimeoutError:
            call.deny(f"no one approved {call.name} within {decision.timeout:.0f} s, so it was not run.", "approve")
            return
        except RPCError as exc:
            call.deny(f"asking for approval failed ({exc.message}), so {call.name} was not run.", "approve")
            return
        verdict = _read(answer, scopes)
        if verdict is None:
            action = answer.get("action") if isinstance(answer, dict) else None
            what = {"decline": "declined", "cancel": "cancelled"}.get(str(action), "did not approve")
            call.deny(f"the user {what} {call.name} on {call.upstream}; it was not run. Do not retry it unless the user asks.", "approve")
            return
        call.notes["approved"] = verdict
        if self.grants is not None and verdict != "once":
            grant = self.grants.add(
                user=call.user, session=call.session_id, server=call.upstream, tool=call.name,
                scope=verdict, approver=call.user, channel="elicitation",
            )
            if grant is not None:
                call.notes["grant"] = grant.id


def _read(answer: Any, scopes: list[str]) -> str | None:
    """The approved scope, or None when the answer is anything but an explicit yes."""
    if not isinstance(answer, dict) or answer.get("action") != "accept":
        return None
    content = answer.get("content")
    if not isinstance(content, dict) or content.get("approve") is not True:
        return None
    scope = content.get("scope", "once")
    return scope if scope in scopes else "once"


def schema(scopes: list[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "approve": {"type": "boolean", "title": "Approve this call", "default": False},
    }
    if len(scopes) > 1:
        properties["scope"] = {
            "type": "string",
            "title": "Approve for",
            "oneOf": [{"const": s, "title": SCOPE_TITLES.get(s, f"This tool for {s[4:]}")} for s in scopes],
            "default": "once",
        }
    return {"type": "object", "properties": properties, "required": ["approve"]}


def preview(call: Call, decision: Any) -> str:
    risk = call.notes.get("risk")
    lines = [
        f"mcp-guard: approve {call.name} on server {call.upstream}?",
        f"Risk: {risk.level if risk else 'unknown'}. Rule '{decision.rule}': {decision.reason}",
        "Arguments:",
    ]
    body = ""
    shown = call.notes.get("masked_arguments", call.arguments)  # placeholders, never restored values
    for key, value in shown.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) > PREVIEW_VALUE_CHARS:
            text = text[:PREVIEW_VALUE_CHARS] + f"… ({len(text)} characters)"
        body += f"  {key}: {text}\n"
    if len(body) > PREVIEW_TOTAL_CHARS:
        body = body[:PREVIEW_TOTAL_CHARS] + "  …\n"
    return "\n".join(lines) + "\n" + (body or "  (none)\n")

"""Slack's interactive callback: a reviewer clicks Approve or Deny in the channel.

Verified as Slack signs it: ``X-Slack-Signature: v0=HMAC-SHA256(signing secret,
"v0:{X-Slack-Request-Timestamp}:{raw body}")``, with the timestamp within five minutes (no
replays). The Slack user id maps to a reviewer name (``MCP_GUARD_SLACK_USERS="U123=alice,..."``),
and that name decides only while it holds a live reviewer token (``review token create``): the
role is the token's, and ``review token revoke`` ends the person's Slack decisions on the next
click. A click from an unmapped user, or one mapped to a name with no live token, decides
nothing. Every refusal is written to the audit trail.

    MCP_GUARD_SLACK_SIGNING_SECRET   the app's signing secret
    MCP_GUARD_SLACK_USERS            Slack user id = reviewer name, comma-separated
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import settings
from ..approval.escape import one_line
from ..approvals import Approvals, may_decide
from ..reviewers import Reviewers

# Slack's own advice: refuse requests whose timestamp is more than five minutes off.
MAX_SKEW_S = 300


def slack_escape(text: str) -> str:
    """``text`` with Slack's three reserved characters escaped: no mention, link or channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackCallback:
    def __init__(
        self, approvals: Approvals, reviewers: Reviewers, audit: Any, env: dict[str, str] | None = None
    ) -> None:
        env = dict(settings.current().environ if env is None else env)
        self.approvals = approvals
        self.reviewers = reviewers
        self.audit = audit
        self.secret = env.get("MCP_GUARD_SLACK_SIGNING_SECRET", "")
        pairs = (pair.split("=", 1) for pair in env.get("MCP_GUARD_SLACK_USERS", "").split(",") if "=" in pair)
        self.users = {user.strip(): name for user, name in pairs}

    def routes(self) -> list[Route]:
        return [Route("/slack/interactive", self.interactive, methods=["POST"])] if self.secret else []

    def _refuse(self, status: int, why: str, detail: dict[str, Any]) -> Response:
        if self.audit is not None:
            self.audit.record("review.refused", {"channel": "slack", "reason": why, **detail})
        return JSONResponse({"error": why}, status_code=status)

    async def interactive(self, req: HttpRequest) -> Response:
        body = await req.body()
        timestamp = req.headers.get("x-slack-request-timestamp", "")
        signature = req.headers.get("x-slack-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
            return self._refuse(401, "stale or missing timestamp", {"timestamp": timestamp[:20]})
        if not hmac.compare_digest(signature, slack_signature(self.secret, timestamp, body)):
            return self._refuse(401, "bad signature", {})
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
            action = payload["actions"][0]
            slack_user = payload["user"]["id"]
        except (KeyError, IndexError, ValueError, TypeError):
            return self._refuse(400, "not an interactive payload", {})
        mapped = self.users.get(str(slack_user))
        if mapped is None:
            return self._refuse(403, "unknown Slack user", {"slack_user": str(slack_user)[:40]})
        # Looked up on every click, so a revoked token stops the next one.
        who = self.reviewers.live(mapped)
        if who is None:
            detail = {"slack_user": str(slack_user)[:40], "reviewer": one_line(mapped)[:64]}
            return self._refuse(403, "no live reviewer token for this Slack user's name", detail)
        name, role = who
        request = self.approvals.get(str(action.get("value", "")))
        if request is None:
            return self._refuse(404, "unknown request", {"reviewer": name})
        refusal = may_decide(request, name, role)
        if refusal:
            return self._refuse(403, refusal, {"reviewer": name, "request": request.id})
        approve = action.get("action_id") == "approve"
        try:
            decided = self.approvals.decide(request.id, approve=approve, by=name, channel="slack", reason=f"via Slack ({slack_user})")
        except ValueError as exc:
            return self._refuse(409, str(exc), {"reviewer": name, "request": request.id})
        verb = "approved" if decided.state == "approved" else "denied" if decided.state == "denied" else "voted on"
        # Slack reads this text as mrkdwn: names from the call are escaped as in the message itself.
        said = slack_escape(f"{one_line(request.tool)} on {one_line(request.server)} was {verb} by {one_line(name)}.")
        return JSONResponse({"replace_original": True, "text": said})

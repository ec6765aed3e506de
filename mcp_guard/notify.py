"""Telling reviewers that a call waits: Slack messages (Block Kit, Web API) and signed webhooks.

Settings come from the environment, so no secret sits in a config file:

    MCP_GUARD_SLACK_BOT_TOKEN      xoxb-... (chat:write)
    MCP_GUARD_SLACK_CHANNEL        channel id to post to
    MCP_GUARD_SLACK_API_URL        default https://slack.com/api (tests point it at a local server)
    MCP_GUARD_WEBHOOK_URLS         comma-separated URLs that receive a JSON POST per request
    MCP_GUARD_WEBHOOK_SECRET       HMAC key: header X-MCP-Guard-Signature: sha256=<hex of the body>

A failed notification is logged, never fatal: the request stays in the queue, where the CLI and
the web page can decide it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from . import settings
from .approvals import Request

logger = logging.getLogger(__name__)

# Sending a notification must not hold a waiting call for long.
SEND_TIMEOUT_S = 10.0


def slack_blocks(request: Request) -> list[dict[str, Any]]:
    preview = request.preview if len(request.preview) < 2800 else request.preview[:2800] + "…"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{request.tool}* on *{request.server}* needs review\nRequested by *{request.user}* · risk *{request.risk}* · rule `{request.rule}` · request `{request.id}`"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{preview}```"}},
        {
            "type": "actions",
            "block_id": f"mcp-guard-{request.id}",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "style": "primary", "action_id": "approve", "value": request.id},
                {"type": "button", "text": {"type": "plain_text", "text": "Deny"}, "style": "danger", "action_id": "deny", "value": request.id},
            ],
        },
    ]


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(settings.current().environ if env is None else env)
        self.slack_token = env.get("MCP_GUARD_SLACK_BOT_TOKEN")
        self.slack_channel = env.get("MCP_GUARD_SLACK_CHANNEL")
        self.slack_api = env.get("MCP_GUARD_SLACK_API_URL", "https://slack.com/api").rstrip("/")
        self.webhooks = [u.strip() for u in env.get("MCP_GUARD_WEBHOOK_URLS", "").split(",") if u.strip()]
        self.webhook_secret = env.get("MCP_GUARD_WEBHOOK_SECRET", "")

    @property
    def enabled(self) -> bool:
        return bool((self.slack_token and self.slack_channel) or self.webhooks)

    async def request_opened(self, request: Request) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=SEND_TIMEOUT_S) as http:
            if self.slack_token and self.slack_channel:
                await self._slack(http, request)
            for url in self.webhooks:
                await self._webhook(http, url, request)

    async def _slack(self, http: Any, request: Request) -> None:
        body = {"channel": self.slack_channel, "text": f"{request.tool} on {request.server} needs review ({request.id})", "blocks": slack_blocks(request)}
        try:
            response = await http.post(f"{self.slack_api}/chat.postMessage", json=body, headers={"Authorization": f"Bearer {self.slack_token}"})
            answer = response.json()
            if not answer.get("ok"):
                logger.warning("Slack refused the message for request %s: %s", request.id, answer.get("error"))
        except Exception as exc:  # a chat outage must not break the queue
            logger.warning("could not post request %s to Slack: %s", request.id, exc)

    async def _webhook(self, http: Any, url: str, request: Request) -> None:
        body = json.dumps({"event": "approval.requested", "request": request.public()}, sort_keys=True).encode()
        signature = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        try:
            await http.post(url, content=body, headers={"Content-Type": "application/json", "X-MCP-Guard-Signature": f"sha256={signature}"})
        except Exception as exc:
            logger.warning("webhook %s failed for request %s: %s", url, request.id, exc)

"""Telling reviewers that a call waits: Slack messages (Block Kit, Web API), signed webhooks, and
Microsoft Teams cards (teams.py, configured there).

Settings come from the environment, so no secret sits in a config file:

    MCP_GUARD_SLACK_BOT_TOKEN      xoxb-... (chat:write)
    MCP_GUARD_SLACK_CHANNEL        channel id to post to
    MCP_GUARD_SLACK_API_URL        default https://slack.com/api (tests point it at a local server)
    MCP_GUARD_WEBHOOK_URLS         comma-separated URLs that receive a JSON POST per request
    MCP_GUARD_WEBHOOK_SECRET       the signing key, as Standard Webhooks gives it (whsec_ + base64);
                                   any other text is used as the raw key bytes

Slack: everything that comes from the call (tool, server, user, the preview) goes in
``plain_text`` objects with emoji off and Slack's three reserved characters escaped, so no
argument can open a link, a mention (``<!channel>``), bold text or a code block. Webhooks are
signed per the Standard Webhooks spec (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``): a receiver that checks the
timestamp and remembers ids refuses a replay. The ``standardwebhooks`` package verifies them.

A failed notification is logged, never fatal: the request stays in the queue, where the CLI and
the web page can decide it.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio

from . import settings
from .approval.escape import one_line
from .approval.preview import Preview, excerpt
from .approvals import Request
from .teams import TeamsChannel

if TYPE_CHECKING:  # the signer and Slack's escaping load when a notification is sent, not at start
    from standardwebhooks import Webhook

logger = logging.getLogger(__name__)

# Sending a notification must not hold a waiting call for long.
SEND_TIMEOUT_S = 10.0
# Slack caps a text object at 3,000 characters; the preview goes in up to this many sections,
# and a longer one as its head and tail with the digest (the page and `review show` have it all).
SLACK_TEXT_CHARS = 2900
SLACK_PREVIEW_SECTIONS = 4


def slack_text(text: str) -> dict[str, Any]:
    """A plain_text object for text from a call: one of Slack's reserved characters cannot survive
    in it, and emoji codes stay letters."""
    from .web.slack import slack_escape  # the web stack loads only for a guard that notifies

    return {"type": "plain_text", "text": slack_escape(text) or " ", "emoji": False}


def _slack_len(text: str) -> int:
    return len(text) + 4 * text.count("&") + 3 * (text.count("<") + text.count(">"))


def _chunks(text: str, size: int) -> list[str]:
    """``text`` in pieces that are at most ``size`` characters once escaped, cut at line ends
    where a line fits (an escaped character takes at most five)."""
    pieces, current = [], ""
    for line in text.splitlines(keepends=True):
        step = size // 5
        parts = [line] if _slack_len(line) <= size else [line[i : i + step] for i in range(0, len(line), step)]
        for part in parts:
            if current and _slack_len(current + part) > size:
                pieces.append(current)
                current = ""
            current += part
    return [*pieces, current] if current else pieces


def slack_blocks(request: Request) -> list[dict[str, Any]]:
    preview = Preview(request.preview)
    where = f"the review page, or `mcp-guard review show {request.id}`"
    shown = excerpt(preview, SLACK_TEXT_CHARS * SLACK_PREVIEW_SECTIONS - 200, where)
    summary = (
        f"{one_line(request.tool)} on {one_line(request.server)} needs review. Requested by {one_line(request.user)}"
        f" · risk {one_line(request.risk)} · rule {one_line(request.rule)} · request {request.id}"
    )
    return [
        {"type": "section", "text": slack_text(summary)},
        *({"type": "section", "text": slack_text(piece)} for piece in _chunks(shown, SLACK_TEXT_CHARS)),
        {
            "type": "actions",
            "block_id": f"mcp-guard-{request.id}",
            "elements": [
                {"type": "button", "text": slack_text("Approve"), "style": "primary", "action_id": "approve",
                 "value": request.id},
                {"type": "button", "text": slack_text("Deny"), "style": "danger", "action_id": "deny",
                 "value": request.id},
            ],
        },
    ]


def webhook_signer(secret: str) -> Webhook:
    """The Standard Webhooks signer for ``secret`` (whsec_ + base64, or raw text as key bytes)."""
    from standardwebhooks import Webhook

    return Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode())


def webhook_headers(
    signer: Webhook, body: str, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``: a fresh id, now, and the signature."""
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    at = at or datetime.now(tz=timezone.utc)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer.sign(msg_id, at, body),
    }


class Notifier:
    def __init__(self, env: dict[str, str] | None = None, audit: Any = None) -> None:
        env = dict(settings.current().environ if env is None else env)
        self.teams = TeamsChannel.from_env(env, audit)  # teams.py: Adaptive Cards to a channel
        self.slack_token = env.get("MCP_GUARD_SLACK_BOT_TOKEN")
        self.slack_channel = env.get("MCP_GUARD_SLACK_CHANNEL")
        self.slack_api = env.get("MCP_GUARD_SLACK_API_URL", "https://slack.com/api").rstrip("/")
        self.webhooks = [u.strip() for u in env.get("MCP_GUARD_WEBHOOK_URLS", "").split(",") if u.strip()]
        self.webhook_secret = env.get("MCP_GUARD_WEBHOOK_SECRET", "")

    @property
    def enabled(self) -> bool:
        return bool((self.slack_token and self.slack_channel) or self.webhooks or self.teams)

    async def request_opened(self, request: Request) -> None:
        import httpx

        # The channels side by side: a slow one does not use up another's time.
        async with httpx.AsyncClient(timeout=SEND_TIMEOUT_S) as http, anyio.create_task_group() as tg:
            if self.slack_token and self.slack_channel:
                tg.start_soon(self._slack, http, request)
            for url in self.webhooks:
                tg.start_soon(self._webhook, http, url, request)
            if self.teams is not None:
                tg.start_soon(self.teams.post, http, request)

    async def _slack(self, http: Any, request: Request) -> None:
        # The fallback text (notifications) holds nothing from the call: it is read as mrkdwn.
        text = f"mcp-guard: a call waits for review (request {request.id})"
        body = {"channel": self.slack_channel, "text": text, "blocks": slack_blocks(request)}
        try:
            response = await http.post(f"{self.slack_api}/chat.postMessage", json=body, headers={"Authorization": f"Bearer {self.slack_token}"})
            answer = response.json()
            if not answer.get("ok"):
                logger.warning("Slack refused the message for request %s: %s", request.id, answer.get("error"))
        except Exception as exc:  # a chat outage must not break the queue
            logger.warning("could not post request %s to Slack: %s", request.id, exc)

    async def _webhook(self, http: Any, url: str, request: Request) -> None:
        if not self.webhook_secret:
            logger.warning("webhook %s skipped for request %s: MCP_GUARD_WEBHOOK_SECRET is not set", url, request.id)
            return
        body = json.dumps({"type": "approval.requested", "event": "approval.requested", "request": request.public()}, sort_keys=True)
        headers = {"Content-Type": "application/json", **webhook_headers(webhook_signer(self.webhook_secret), body)}
        try:
            await http.post(url, content=body.encode(), headers=headers)
        except Exception as exc:
            logger.warning("webhook %s failed for request %s: %s", url, request.id, exc)

"""Microsoft Teams: each reviewer request posted to a channel as an Adaptive Card.

Settings come from the environment, so no secret sits in a config file:

    MCP_GUARD_TEAMS_WEBHOOK_URL       the channel's Workflows webhook URL ("When a Teams webhook
                                      request is received") or an Incoming Webhook URL
    MCP_GUARD_TEAMS_WEBHOOK_URL_FILE  or a file that holds it, readable by its owner only (0600)
    MCP_GUARD_REVIEW_URL              the review page's address as reviewers reach it; the card's
                                      buttons open it at the request (no buttons without it)

The URL carries its own signature (anyone who has it can post to the channel), so it is a secret:
it is never logged, audited or put in an error message. It must be https (plain http only to this
machine, for tests), and a redirect is a failure, never followed.

The card (Adaptive Card 1.4, which Teams renders) says who asked, the server, tool, risk and rule,
and shows the canonical masked preview (approval/preview.py) one monospace TextBlock per line.
Teams reads TextBlocks and fact values as a Markdown subset, so every character of call text that
Markdown, mentions (``<at>``), card date functions (``{{DATE()}}``) or autolinks would act on is
replaced by its full-width lookalike (``*`` by ``＊``, ``<`` by ``＜``, ``https:`` by ``https：``,
``evil.com`` by ``evil．com``): an argument can draw neither a link, a mention nor bold
"Pre-approved" text. The page and ``review show`` have the exact characters; the card says so.

Posting is async (httpx), each attempt bounded, retried a little on 429 and 5xx (``Retry-After``
honoured up to a cap), and the whole bounded. A failure is logged and audited
(``notify.failed``), and changes nothing else: the request stays in the queue, where the page, the
CLI and the other channels decide it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import anyio

from .approval.escape import one_line
from .approval.preview import Preview, excerpt
from .approvals import Request
from .errors import ConfigError

__all__ = ["TeamsChannel", "card", "inert", "message", "payload"]

logger = logging.getLogger(__name__)

CARD_VERSION = "1.4"
# Teams refuses a message over about 28 KB; the card is kept under this many bytes of JSON.
MAX_PAYLOAD_BYTES = 24_000
# The most of the preview a card starts with; a preview that would not fit is shown shorter.
PREVIEW_CHARS = 6_000
# A fact (user, server, tool, rule) longer than this is cut, with its length and where to read it.
FACT_CHARS = 300
# Three tries: a throttled or restarting Workflows endpoint gets two more chances, a dead one
# does not hold the request's notifications for long.
ATTEMPTS = 3
ATTEMPT_TIMEOUT_S = 5.0
# The whole post, retries included, ends by then: the reviewer request is in the queue already.
POST_DEADLINE_S = 12.0
# Teams asks throttled senders to wait (429 with Retry-After); longer waits than this are not kept.
MAX_RETRY_AFTER_S = 5.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# Call text characters that Teams' Markdown, mentions or card functions would act on, and the
# full-width forms shown instead (they draw alike and mean nothing to any of them).
_INERT = str.maketrans({
    "\\": "\uff3c", "`": "\uff40", "*": "\uff0a", "_": "\uff3f", "~": "\uff5e", "[": "\uff3b", "]": "\uff3d",
    "<": "\uff1c", ">": "\uff1e", "#": "\uff03", "|": "\uff5c", "&": "\uff06", "{": "\uff5b", "}": "\uff5d",
    "@": "\uff20",
})
# What autolinkers start from: a scheme's colon (https:, mailto:, javascript:), the dot before a
# top-level domain (evil.com, www.x, and report.py: .py is a country's), and an IPv4 address.
_AUTOLINK = re.compile(r"(?<=[A-Za-z]):(?=\S)|(?<=[A-Za-z0-9])\.(?=[A-Za-z])")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# What starts a list, a heading rule or a quote when it opens a line.
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+[.)])")
_WIDE = str.maketrans({"-": "\uff0d", "+": "\uff0b", "=": "\uff1d", ".": "\uff0e", ")": "\uff09", ":": "\uff1a"})

NOTE = (
    "Characters that Teams would read as formatting, mentions or links are shown as full-width lookalikes "
    "here. The review page shows the exact text."
)


def inert(text: str) -> str:
    """``text`` (already one escaped line) that no Teams Markdown, mention, card function or autolink acts on."""
    text = text.translate(_INERT)
    text = _IPV4.sub(lambda m: m.group().translate(_WIDE), text)
    text = _AUTOLINK.sub(lambda m: m.group().translate(_WIDE), text)
    return _LINE_START.sub(lambda m: m.group(1) + m.group(2).translate(_WIDE), text)


def _fact(title: str, value: str) -> dict[str, str]:
    shown = one_line(value)
    if len(shown) > FACT_CHARS:
        shown = shown[:FACT_CHARS] + f"... ({len(shown)} characters; the review page shows all)"
    return {"title": title, "value": inert(shown) or " "}


def _when(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "unknown"


def _line(text: str) -> dict[str, Any]:
    # One TextBlock per line: how Teams breaks lines inside one block is not part of the card schema.
    # The indent in no-break spaces: four plain ones would open a Markdown code block.
    body = text.lstrip(" ")
    shown = "\u00a0" * (len(text) - len(body)) + inert(body)
    return {"type": "TextBlock", "text": shown or " ", "fontType": "monospace", "size": "small", "wrap": True,
            "spacing": "none"}


def card(request: Request, review_url: str | None, preview_chars: int = PREVIEW_CHARS) -> dict[str, Any]:
    """The Adaptive Card for ``request``; buttons open ``review_url`` at it when one is configured."""
    where = f"the review page, or mcp-guard review show {request.id}"
    shown = excerpt(Preview(request.preview), preview_chars, where)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": "mcp-guard: a call waits for review", "size": "medium", "weight": "bolder",
         "wrap": True},
        {"type": "FactSet", "facts": [
            _fact("Requested by", request.user), _fact("Server", request.server), _fact("Tool", request.tool),
            _fact("Risk", request.risk), _fact("Rule", request.rule), _fact("Request", request.id),
            {"title": "Expires", "value": _when(request.expires)},
        ]},
        {"type": "TextBlock", "text": "What will be sent, as reviewers see it:", "weight": "bolder", "wrap": True,
         "spacing": "medium"},
        {"type": "Container", "style": "emphasis", "items": [_line(line) for line in shown.splitlines()]},
        {"type": "TextBlock", "text": NOTE, "isSubtle": True, "size": "small", "wrap": True},
    ]
    built: dict[str, Any] = {
        "type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION, "body": body,
        "fallbackText": f"mcp-guard: a call waits for review (request {request.id})",
    }
    if review_url:
        base = review_url.split("#", 1)[0]
        built["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open this request", "url": f"{base}#req-{quote(request.id, safe='')}"},
            {"type": "Action.OpenUrl", "title": "Open the review queue", "url": base},
        ]
    return built


def message(adaptive_card: dict[str, Any]) -> dict[str, Any]:
    """The envelope Workflows and Incoming Webhooks take: a message with one card attachment."""
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": adaptive_card}
        ],
    }


def payload(request: Request, review_url: str | None) -> bytes:
    """The JSON body for ``request``, under MAX_PAYLOAD_BYTES: a preview that would not fit is
    shown shorter (its head, tail and digest; the page has all of it)."""
    chars = PREVIEW_CHARS
    while True:
        body = json.dumps(message(card(request, review_url, chars)), ensure_ascii=False).encode("utf-8")
        if len(body) <= MAX_PAYLOAD_BYTES or chars <= 400:
            return body
        chars //= 2


def _checked_url(url: str, what: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise ConfigError(f"{what} is not a well-formed URL") from None
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return url
    raise ConfigError(f"{what} must be an https:// URL (plain http only to this machine)")


def _secret_file(path: str) -> str:
    """The URL in ``path``, a file only its owner may read: the URL is a credential."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"MCP_GUARD_TEAMS_WEBHOOK_URL_FILE: cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{path} holds the Teams webhook URL, a secret, but other accounts may read it "
                f"(mode {info.st_mode & 0o777:o}): chmod 600 {path}"
            )
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise ConfigError(f"{path} holds the Teams webhook URL but belongs to another account")
        return handle.read().strip()


class TeamsChannel:
    """Posts reviewer requests to one Teams channel; see the module docstring for the settings."""

    def __init__(self, url: str, review_url: str | None, audit: Any = None) -> None:
        self._url = _checked_url(url, "the Teams webhook URL")
        self.review_url = _checked_url(review_url, "MCP_GUARD_REVIEW_URL") if review_url else None
        self.audit = audit

    def __repr__(self) -> str:  # the URL is a credential: never in a repr, a log line or a traceback
        return "TeamsChannel(<webhook URL hidden>)"

    @classmethod
    def from_env(cls, env: dict[str, str], audit: Any = None) -> TeamsChannel | None:
        """The channel the environment configures, or None. Raises ConfigError for a setting that
        cannot be right: a guard whose reviewers would silently never hear of requests does not start."""
        inline = env.get("MCP_GUARD_TEAMS_WEBHOOK_URL", "").strip()
        path = env.get("MCP_GUARD_TEAMS_WEBHOOK_URL_FILE", "").strip()
        if inline and path:
            raise ConfigError("set MCP_GUARD_TEAMS_WEBHOOK_URL or MCP_GUARD_TEAMS_WEBHOOK_URL_FILE, not both")
        url = inline or (_secret_file(path) if path else "")
        if not url:
            return None
        return cls(url, env.get("MCP_GUARD_REVIEW_URL", "").strip() or None, audit)

    async def post(self, http: Any, request: Request) -> bool:
        """Post ``request``'s card; True once Teams took it. Never raises for a failed post."""
        try:
            body = payload(request, self.review_url)
        except Exception:  # a card that cannot be built is a failed post, not a failed call
            logger.exception("could not build the Teams card for request %s", request.id)
            self._failed(request, "the card could not be built", 0)
            return False
        outcome = "no attempt finished"
        attempts = 0
        with anyio.move_on_after(POST_DEADLINE_S):
            for attempts in range(1, ATTEMPTS + 1):
                delivered, outcome, wait = await self._attempt(http, body)
                if delivered:
                    return True
                if wait is None or attempts == ATTEMPTS:
                    break
                await anyio.sleep(wait)
        self._failed(request, outcome, attempts)
        return False

    async def _attempt(self, http: Any, body: bytes) -> tuple[bool, str, float | None]:
        """(delivered, what happened, seconds to wait before a retry or None for no retry)."""
        import httpx

        try:
            response = await http.post(
                self._url, content=body, headers={"Content-Type": "application/json"}, timeout=ATTEMPT_TIMEOUT_S,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:  # the class name only: some httpx messages quote the URL
            return False, type(exc).__name__, 1.0
        if 200 <= response.status_code < 300:
            return True, f"HTTP {response.status_code}", None
        if response.status_code == 429 or response.status_code >= 500:
            return False, f"HTTP {response.status_code}", _retry_after(response.headers.get("retry-after"))
        return False, f"HTTP {response.status_code}", None

    def _failed(self, request: Request, outcome: str, attempts: int) -> None:
        logger.warning("could not post request %s to Teams (%s after %d attempt(s))", request.id, outcome, attempts)
        if self.audit is None:
            return
        try:
            self.audit.record(
                "notify.failed", {"channel": "teams", "request": request.id, "reason": outcome, "attempts": attempts}
            )
        except Exception:  # the audit's own failure is its to report; this post changes nothing
            logger.exception("could not audit the failed Teams post for request %s", request.id)


def _retry_after(value: str | None) -> float:
    """Seconds to wait before the next try: Retry-After in seconds when given (capped), else one."""
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:  # an HTTP date: not worth parsing for a wait this short
        return 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S) if math.isfinite(seconds) else 1.0

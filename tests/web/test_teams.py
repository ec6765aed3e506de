"""Teams end to end: `serve` posts each reviewer request to a local stand-in for a Teams Workflows
webhook (Teams itself cannot be reached here), which keeps what arrived and answers as scripted.
What arrived must be the recorded message's shape, valid against the Adaptive Card schema and
inert; throttling is retried, a failing or hanging endpoint is audited and never holds, approves
or denies the call, and the webhook URL (a credential) shows up in no log and no audit record."""

from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp import Client
from tests.conftest import PY, background, free_port, probe
from tests.reviewing import review, reviewer_token
from tests.web.test_teams_cards import HOSTILE, MARKUP, RECORDED, REVIEW, call_texts, schema_errors

pytestmark = pytest.mark.anyio

POLICY = """version: 1
rules:
  - name: echo-is-reviewed
    match: {tool: echo}
    action: approve
    approvers: reviewers
  - name: env-is-read
    match: {tool: env}
    action: allow
"""
HOSTILE_TEXT = HOSTILE["text"] + " www.evil.example"  # no address: the result would come back masked


class TeamsStandIn:
    """Plays a Teams Workflows webhook on 127.0.0.1: keeps each POST, answers as scripted
    (``answers``: (status, headers) per post, then 202), or holds every post until the test ends."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]] | None = None, hold: bool = False) -> None:
        self.answers = list(answers or [])
        self.hold = hold
        self.posts: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        self.count = 0
        self.release = threading.Event()
        # The URL's signature, as Workflows puts one in its query: a credential, made per run.
        self.signature = secrets.token_urlsafe(24)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stand_in.count += 1
                stand_in.posts.put((self.path, dict(self.headers), body))
                if stand_in.hold:
                    stand_in.release.wait(60)
                status, headers = stand_in.answers.pop(0) if stand_in.answers else (202, {})
                try:
                    self.send_response(status)
                    for name, value in {**headers, "Content-Length": "0"}.items():
                        self.send_header(name, value)
                    self.end_headers()
                except OSError:
                    pass  # the guard gave up on this post first

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/workflows/0a1b/triggers/manual/paths/invoke?api-version=1&sig={self.signature}"

    def __enter__(self) -> TeamsStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    async def next_post(self) -> tuple[str, dict[str, str], bytes]:
        return await anyio.to_thread.run_sync(lambda: self.posts.get(timeout=30))


@asynccontextmanager
async def serving(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[tuple[Any, Path]]:
    """`serve` over the probe fixture, carol's calls to echo waiting for a reviewer; with its stderr."""
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logged = tmp_path / "guard.stderr"
    argv = [PY, "-m", "mcp_guard", "--log-level", "info", "serve", "--policy", str(policy), "--port", str(port),
            "--", *probe()]
    with logged.open("wb") as stderr:
        async with background(argv, f"{base}/healthz", env={"MCP_GUARD_USER": "carol", **env}, stderr=stderr):
            async with Client(f"{base}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                yield client, logged


def shape(value: Any) -> Any:
    """The structure of a message: keys, element types and value types, not the texts."""
    if isinstance(value, dict):
        return {k: (v if k in ("type", "contentType") else shape(v)) for k, v in value.items()}
    if isinstance(value, list):
        return sorted({json.dumps(shape(v), sort_keys=True) for v in value})
    return type(value).__name__


def card_of(body: bytes, like: str = "hostile_message.json") -> dict[str, Any]:
    """The card in a posted body, once the body has the recorded message's shape and the card
    passes the schema."""
    message = json.loads(body)
    assert shape(message) == shape(json.loads((RECORDED / like).read_text(encoding="utf-8")))
    card: dict[str, Any] = message["attachments"][0]["content"]
    assert schema_errors(card, "1.4") == []
    return card


def request_id(card: dict[str, Any]) -> str:
    facts = {f["title"]: f["value"] for e in card["body"] if e["type"] == "FactSet" for f in e["facts"]}
    return facts["Request"]


async def approve(home: Path, rid: str) -> None:
    done = await anyio.to_thread.run_sync(lambda: review(home, "approve", rid, "--as", "alice"))
    assert done.returncode == 0, done.stderr


def audit_export(home: Path) -> str:
    argv = [sys.executable, "-m", "mcp_guard", "audit", "export", "--home", str(home)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout


def records(audit: str, kind: str) -> Iterator[dict[str, Any]]:
    for line in audit.splitlines():
        entry = json.loads(line)
        if entry["kind"] == kind:
            yield entry["body"]


async def test_a_waiting_call_is_posted_to_teams_as_a_card_whose_button_opens_the_review_page_at_it(
    tmp_path: Path, guard_home: Path
) -> None:
    reviewer_token(guard_home, "alice")
    result: list[Any] = []
    with TeamsStandIn() as teams:
        env = {"MCP_GUARD_TEAMS_WEBHOOK_URL": teams.url, "MCP_GUARD_REVIEW_URL": REVIEW}
        async with serving(tmp_path, env) as (client, logged):
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        result.append(await client.call_tool("echo", {"message": HOSTILE_TEXT}))

                    tg.start_soon(call)
                    path, headers, body = await teams.next_post()
                    assert path.endswith(f"sig={teams.signature}") and headers["Content-Type"] == "application/json"
                    card = card_of(body)
                    rid = request_id(card)
                    assert [a["url"] for a in card["actions"]] == [f"{REVIEW}#req-{rid}", REVIEW]
                    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
                    assert facts["Requested by"] == "carol" and facts["Tool"] == "echo"
                    assert facts["Rule"] == "echo-is-reviewed" and facts["Server"]
                    texts = list(call_texts(card))
                    assert all(not MARKUP & set(t) for t in texts)
                    assert "\uff0a\uff0aPre-approved by security\uff0a\uff0a" in "\n".join(texts)
                    await approve(guard_home, rid)
                # An upstream cannot read the channel's URL from its environment to post cards itself.
                seen = await client.call_tool("env", {"name": "MCP_GUARD_TEAMS_WEBHOOK_URL"})
                assert not seen.is_error and teams.signature not in str(seen.content)
    assert not result[0].is_error and result[0].content[0].text == HOSTILE_TEXT
    assert teams.count == 1
    assert teams.signature not in logged.read_text(encoding="utf-8", errors="replace")
    assert teams.signature not in audit_export(guard_home)


async def test_a_throttled_post_is_retried_and_a_failing_one_is_audited_while_the_call_still_waits_for_review(
    tmp_path: Path, guard_home: Path
) -> None:
    reviewer_token(guard_home, "alice")
    now = {"Retry-After": "0"}
    teams = TeamsStandIn([(429, now), (202, {}), (500, now), (503, now), (500, now)])
    results: list[Any] = []
    with teams:
        async with serving(tmp_path, {"MCP_GUARD_TEAMS_WEBHOOK_URL": teams.url}) as (client, logged):
            with anyio.fail_after(90):
                for n, posts in ((1, 2), (2, 3)):
                    async with anyio.create_task_group() as tg:

                        async def call(n: int = n) -> None:
                            results.append(await client.call_tool("echo", {"message": f"call {n}"}))

                        tg.start_soon(call)
                        bodies = [(await teams.next_post())[2] for _ in range(posts)]
                        assert len(set(bodies)) == 1  # each retry sends the same card
                        card = card_of(bodies[0], like="no_buttons_message.json")  # no review page: no buttons
                        await approve(guard_home, request_id(card))
    # Both calls ran on the reviewer's word; only the request whose posts all failed is audited.
    assert [r.content[0].text for r in results] == ["call 1", "call 2"]
    audit = audit_export(guard_home)
    failed = list(records(audit, "notify.failed"))
    assert len(failed) == 1 and failed[0]["channel"] == "teams"
    assert failed[0]["reason"] == "HTTP 500" and failed[0]["attempts"] == 3
    assert failed[0]["request"] == request_id(card)
    assert teams.signature not in audit and teams.signature not in logged.read_text(encoding="utf-8", errors="replace")
    assert "could not post request" in logged.read_text(encoding="utf-8", errors="replace")


async def test_a_teams_endpoint_that_never_answers_does_not_hold_the_call(tmp_path: Path, guard_home: Path) -> None:
    """The card goes out beside the wait: the reviewer decides, and the call runs, while the first
    post is still unanswered (before, the call waited for the channel before it waited for anyone)."""
    reviewer_token(guard_home, "alice")
    result: list[Any] = []
    with TeamsStandIn(hold=True) as teams:
        async with serving(tmp_path, {"MCP_GUARD_TEAMS_WEBHOOK_URL": teams.url}) as (client, _):
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        result.append(await client.call_tool("echo", {"message": "held"}))

                    tg.start_soon(call)
                    card = card_of((await teams.next_post())[2], like="no_buttons_message.json")
                    await approve(guard_home, request_id(card))
            posts_when_answered = teams.count
    assert result[0].content[0].text == "held"
    assert posts_when_answered == 1  # no timeout, no retry: the call never waited on Teams


async def test_a_hanging_slack_does_not_hold_up_the_teams_card(tmp_path: Path, guard_home: Path) -> None:
    """The channels post side by side: the card arrives while Slack's post is still unanswered,
    before the guard has given up on Slack."""
    reviewer_token(guard_home, "alice")
    result: list[Any] = []
    with TeamsStandIn(hold=True) as slack, TeamsStandIn() as teams:
        env = {"MCP_GUARD_TEAMS_WEBHOOK_URL": teams.url, "MCP_GUARD_SLACK_BOT_TOKEN": "test-bot-token",
               "MCP_GUARD_SLACK_CHANNEL": "C0REVIEW", "MCP_GUARD_SLACK_API_URL": slack.url.split("/workflows")[0]}
        async with serving(tmp_path, env) as (client, logged):
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        result.append(await client.call_tool("echo", {"message": "both"}))

                    tg.start_soon(call)
                    assert (await slack.next_post())[0] == "/chat.postMessage"
                    card = card_of((await teams.next_post())[2], like="no_buttons_message.json")
                    assert "to Slack" not in logged.read_text(encoding="utf-8", errors="replace")
                    await approve(guard_home, request_id(card))
    assert result[0].content[0].text == "both"


def channel_audit(home: Path) -> Any:
    from mcp_guard.audit import Audit
    from mcp_guard.store import Store

    home.mkdir(parents=True, exist_ok=True)
    return Audit(Store(str(home / "guard.db")))


async def test_a_redirecting_endpoint_is_a_failure_and_the_redirect_is_never_followed(guard_home: Path) -> None:
    """A hostile or moved endpoint answering 307 to somewhere else gets nothing sent there."""
    import httpx

    from mcp_guard.teams import TeamsChannel
    from tests.web.test_slack_payloads import hostile_request

    with TeamsStandIn() as elsewhere:
        teams = TeamsStandIn([(307, {"Location": elsewhere.url})])
        with teams:
            audit = channel_audit(guard_home)
            channel = TeamsChannel(teams.url, None, audit)
            async with httpx.AsyncClient() as http:
                with anyio.fail_after(30):
                    assert await channel.post(http, hostile_request({"x": 1})) is False
        assert teams.count == 1 and elsewhere.count == 0  # a redirect is no reason to retry either
    failed = [r["body"] for r in audit.records() if r["kind"] == "notify.failed"]
    assert failed == [{"channel": "teams", "request": "0a1b2c3d", "reason": "HTTP 307", "attempts": 1}]


async def test_an_unreachable_endpoint_is_tried_three_times_and_audited_without_its_url(guard_home: Path) -> None:
    import httpx

    from mcp_guard.teams import TeamsChannel
    from tests.web.test_slack_payloads import hostile_request

    signature = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{free_port()}/workflows/x/invoke?sig={signature}"  # nothing listens there
    audit = channel_audit(guard_home)
    async with httpx.AsyncClient() as http:
        with anyio.fail_after(30):
            assert await TeamsChannel(url, None, audit).post(http, hostile_request({"x": 1})) is False
    failed = [r["body"] for r in audit.records() if r["kind"] == "notify.failed"]
    assert failed == [{"channel": "teams", "request": "0a1b2c3d", "reason": "ConnectError", "attempts": 3}]
    assert signature not in json.dumps(list(audit.records()))


def test_serve_does_not_start_when_the_file_holding_the_webhook_url_is_open_to_others(
    tmp_path: Path, guard_home: Path
) -> None:
    """Reviewers who would silently never hear of requests, or a credential others can read, are
    configuration errors: exit 2 and a message naming the file, never the URL."""
    signature = secrets.token_urlsafe(24)
    held = tmp_path / "teams-url"
    held.write_text(f"https://prod.example.test/workflows/x/invoke?sig={signature}\n")
    held.chmod(0o644)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(free_port()), "--", *probe()]
    env = {**os.environ, "MCP_GUARD_TEAMS_WEBHOOK_URL_FILE": str(held)}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert f"chmod 600 {held}" in done.stderr and signature not in done.stderr + done.stdout

"""Slack and webhooks: the message is sent (to a local stand-in for Slack's Web API, which cannot
be reached here) and the interactive callback is accepted only when signed as Slack signs it."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest

from mcp import Client
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from mcp_guard.web.slack import slack_signature
from tests.conftest import PY, background, free_port, node_server, probe
from tests.reviewing import review, reviewer_token

pytestmark = pytest.mark.anyio

SECRET = "test-signing-secret"  # a test value, not a credential
POLICY = """version: 1
rules:
  - name: writes-are-reviewed
    match: {tool: write_file}
    action: approve
    approvers: reviewers
"""


# A Standard Webhooks key, made at run time: whsec_ and base64 of the raw key bytes.
HOOK_SECRET = "whsec_" + base64.b64encode(b"test webhook key " * 2).decode()
# What a model might write to take over the Slack message: a mention, a disguised link, bold
# text that pretends to be the guard, a code block closed early, and content past 200 characters.
HOSTILE = (
    "via slack ``` <!channel> *Pre-approved by security* <https://evil.example/ok|Approve here> "
    + "x" * 220 + " | sh\nRisk: low :white_check_mark:"
)


def texts(blocks: Any) -> list[dict[str, Any]]:
    """Every text object in a Block Kit tree."""
    if isinstance(blocks, dict):
        found = [blocks] if blocks.get("type") in ("plain_text", "mrkdwn") else []
        return found + [t for v in blocks.values() for t in texts(v)]
    if isinstance(blocks, list):
        return [t for item in blocks for t in texts(item)]
    return []


def assert_inert(message: dict[str, Any]) -> None:
    """Nothing in the message can render as a mention, link, emoji, bold text or code block."""
    objects = texts(message["blocks"])
    assert objects and all(t["type"] == "plain_text" and t.get("emoji") is False for t in objects)
    assert all("<" not in t["text"] and ">" not in t["text"] for t in objects)
    assert "<" not in message["text"] and "channel" not in message["text"]
    whole = " ".join(t["text"] for t in objects)
    assert "&lt;!channel&gt;" in whole and "| sh" in whole and "\\nRisk: low" in whole


class Recorder(BaseHTTPRequestHandler):
    """Plays Slack's chat.postMessage and a webhook receiver: records what arrives."""

    received: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.received.append((self.path, dict(self.headers), body))
        reply = json.dumps({"ok": True, "ts": "1.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


def signed(payload: dict[str, Any], timestamp: int | None = None, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return body, {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_signature(secret, ts, body), "Content-Type": "application/x-www-form-urlencoded"}


def click(request_id: str, action: str, user: str) -> dict[str, Any]:
    return {"type": "block_actions", "user": {"id": user}, "actions": [{"action_id": action, "value": request_id}]}


async def test_a_pending_call_goes_to_slack_and_a_signed_click_approves_it(tmp_path: Path, guard_home: Path) -> None:
    Recorder.received = []
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{stand_in.server_address[1]}"
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    reviewer_token(guard_home, "alice")
    reviewer_token(guard_home, "carol")  # the requester, with a token of her own: still refused
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "MCP_GUARD_USER": "carol",
        "MCP_GUARD_SLACK_BOT_TOKEN": "test-bot-token", "MCP_GUARD_SLACK_CHANNEL": "C0REVIEW", "MCP_GUARD_SLACK_API_URL": api,
        "MCP_GUARD_SLACK_SIGNING_SECRET": SECRET, "MCP_GUARD_SLACK_USERS": "U0ALICE=alice,U0CAROL=carol",
        "MCP_GUARD_WEBHOOK_URLS": f"{api}/hook", "MCP_GUARD_WEBHOOK_SECRET": HOOK_SECRET,
    }
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", *node_server("server-filesystem", str(tmp_path))]
    target = tmp_path / "out.txt"
    result: list[Any] = []
    try:
        async with background(argv, f"{base}/healthz", env=env):
            with anyio.fail_after(60):
                async with Client(f"{base}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]

                    async def call() -> None:
                        result.append(await client.call_tool("write_file", {"path": str(target), "content": HOSTILE}))

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(call)
                        while len(Recorder.received) < 2:
                            await anyio.sleep(0.05)
                        by_path = {path: (headers, body) for path, headers, body in Recorder.received}
                        headers, body = by_path["/chat.postMessage"]
                        message = json.loads(body)
                        assert headers["Authorization"] == "Bearer test-bot-token" and message["channel"] == "C0REVIEW"
                        buttons = message["blocks"][-1]["elements"]
                        request_id = buttons[0]["value"]
                        assert [b["action_id"] for b in buttons] == ["approve", "deny"]
                        assert "write_file" in json.dumps(message) and "via slack" in json.dumps(message)
                        assert_inert(message)
                        hook_headers, hook_body = by_path["/hook"]
                        delivered = Webhook(HOOK_SECRET).verify(hook_body, hook_headers)  # the package's own verifier
                        assert delivered["request"]["id"] == request_id and "| sh" in delivered["request"]["preview"]
                        with pytest.raises(WebhookVerificationError):
                            Webhook(HOOK_SECRET).verify(hook_body + b" ", hook_headers)
                        async with httpx.AsyncClient() as http:
                            url = f"{base}/slack/interactive"
                            bad_body, bad = signed(click(request_id, "approve", "U0ALICE"), secret="wrong")
                            assert (await http.post(url, content=bad_body, headers=bad)).status_code == 401
                            old_body, old = signed(click(request_id, "approve", "U0ALICE"), timestamp=int(time.time()) - 3600)
                            assert (await http.post(url, content=old_body, headers=old)).status_code == 401
                            who_body, who = signed(click(request_id, "approve", "U0MALLORY"))
                            assert (await http.post(url, content=who_body, headers=who)).status_code == 403
                            own_body, own = signed(click(request_id, "approve", "U0CAROL"))
                            assert (await http.post(url, content=own_body, headers=own)).status_code == 403
                            ok_body, ok = signed(click(request_id, "approve", "U0ALICE"))
                            answer = await http.post(url, content=ok_body, headers=ok)
                            assert answer.status_code == 200 and "approved by alice" in answer.json()["text"]
    finally:
        stand_in.shutdown()
        stand_in.server_close()
    assert not result[0].is_error and target.read_text() == HOSTILE
    audit = subprocess.run([sys.executable, "-m", "mcp_guard", "audit", "export", "--home", str(guard_home)], capture_output=True, text=True).stdout
    refused = [json.loads(line)["body"]["reason"] for line in audit.splitlines() if '"review.refused"' in line]
    assert refused[:3] == ["bad signature", "stale or missing timestamp", "unknown Slack user"]
    assert "cannot decide it" in refused[3]
    finished = [json.loads(line)["body"] for line in audit.splitlines() if '"call.finished"' in line]
    assert finished[-1]["channel"] == "slack" and finished[-1]["approver"] == "alice"


REVIEWED_BY_SECOPS = """version: 1
defaults: {timeout: 120}
rules:
  - name: echo-is-reviewed
    match: {tool: echo}
    action: approve
    approvers: reviewers
    group: secops
"""


async def test_a_slack_click_decides_with_the_tokens_role_and_stops_the_moment_the_token_is_revoked(
    tmp_path: Path, guard_home: Path
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(REVIEWED_BY_SECOPS)
    reviewer_token(guard_home, "alice", role="secops")
    reviewer_token(guard_home, "dave", role="finance")  # a live token, but for another group
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"MCP_GUARD_USER": "carol", "MCP_GUARD_SLACK_SIGNING_SECRET": SECRET,
           "MCP_GUARD_SLACK_USERS": "U0ALICE=alice,U0DAVE=dave", "MCP_GUARD_SLACK_ROLE": "admin"}
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", *probe()]
    statuses: list[int] = []
    async with background(argv, f"{base}/healthz", env=env):
        with anyio.fail_after(60):
            async with Client(f"{base}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                ids: list[str] = []

                async def progress(done: float, total: float | None, message: str | None) -> None:
                    ids.extend(re.findall(r"request ([0-9a-f]{8})", message or ""))

                async def call() -> None:
                    await client.call_tool("echo", {"message": "x"}, progress_callback=progress)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    while not ids:
                        await anyio.sleep(0.05)
                    async with httpx.AsyncClient() as http:
                        url = f"{base}/slack/interactive"
                        # dave's token says finance: the old MCP_GUARD_SLACK_ROLE=admin gives him nothing.
                        body, headers = signed(click(ids[0], "approve", "U0DAVE"))
                        statuses.append((await http.post(url, content=body, headers=headers)).status_code)
                        assert review(guard_home, "token", "revoke", "alice").returncode == 0  # while serving
                        body, headers = signed(click(ids[0], "approve", "U0ALICE"))
                        statuses.append((await http.post(url, content=body, headers=headers)).status_code)
                    tg.cancel_scope.cancel()
    assert statuses == [403, 403], statuses
    audit = subprocess.run([sys.executable, "-m", "mcp_guard", "audit", "export", "--home", str(guard_home)],
                           capture_output=True, text=True).stdout
    refused = [json.loads(line)["body"]["reason"] for line in audit.splitlines() if '"review.refused"' in line]
    assert "may not decide" in refused[0] and refused[1] == "no live reviewer token for this Slack user's name"

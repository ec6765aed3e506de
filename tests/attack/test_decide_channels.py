"""Red team, who decides: the channels' own credentials. The guard's environment holds the secrets
that authenticate deciders (the Slack signing secret above all); an upstream server, which the model
drives (a shell tool, a code runner), must never be handed them, or the model signs its own
approval click."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest

from mcp import Client
from mcp_guard.web.slack import slack_signature
from tests.conftest import PY, background, connect, free_port, guard, probe

pytestmark = pytest.mark.anyio

REVIEWED_ECHO = """version: 1
defaults: {timeout: 120}
rules:
  - name: echo-is-reviewed
    match: {tool: echo}
    action: approve
    approvers: reviewers
"""


def text_of(result: Any) -> str:
    return json.dumps(result.model_dump(mode="json"))


@pytest.mark.parametrize(
    "name", ["MCP_GUARD_SLACK_SIGNING_SECRET", "MCP_GUARD_WEBHOOK_SECRET", "MCP_GUARD_SLACK_BOT_TOKEN"]
)
async def test_a_deciders_channel_secret_in_the_guards_environment_never_reaches_an_upstream(name: str) -> None:
    canary = secrets.token_hex(16)  # shaped like a Slack signing secret; made at run time
    with anyio.fail_after(30):
        async with connect(guard(*probe()), env={name: canary}) as client:
            seen: Any = await client.call_tool("env", {"name": name})
    handed_on = canary in text_of(seen)  # a bool, so a failure never prints the canary
    assert not handed_on, f"{name} was handed to the upstream"


async def test_a_model_cannot_sign_its_own_slack_approval_with_a_secret_read_through_an_upstream(
    tmp_path: Path, guard_home: Path
) -> None:
    signing = secrets.token_hex(16)
    policy = tmp_path / "p.yaml"
    policy.write_text(REVIEWED_ECHO)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "MCP_GUARD_USER": "carol",
        "MCP_GUARD_SLACK_SIGNING_SECRET": signing,
        "MCP_GUARD_SLACK_USERS": "U0ALICE=alice",
    }
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", *probe()]
    async with background(argv, f"{base}/healthz", env=env):
        with anyio.fail_after(60):
            async with Client(f"{base}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                read: Any = await client.call_tool("env", {"name": "MCP_GUARD_SLACK_SIGNING_SECRET"})  # an allowed tool
                leaked = signing if signing in text_of(read) else ""
                ids: list[str] = []
                first: list[Any] = []

                async def progress(done: float, total: float | None, message: str | None) -> None:
                    # what the agent's own client is told while the call waits: the request id
                    ids.extend(re.findall(r"request ([0-9a-f]{8})", message or ""))

                async def call() -> None:
                    first.append(
                        await client.call_tool("echo", {"message": "approved by myself"}, progress_callback=progress)
                    )

                forged_status = 0
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    while not ids:
                        await anyio.sleep(0.05)
                    if leaked:
                        payload = {
                            "type": "block_actions",
                            "user": {"id": "U0ALICE"},
                            "actions": [{"action_id": "approve", "value": ids[0]}],
                        }
                        body = urlencode({"payload": json.dumps(payload)}).encode()
                        ts = str(int(time.time()))
                        headers = {
                            "X-Slack-Request-Timestamp": ts,
                            "X-Slack-Signature": slack_signature(leaked, ts, body),
                            "Content-Type": "application/x-www-form-urlencoded",
                        }
                        async with httpx.AsyncClient() as http:
                            answer = await http.post(f"{base}/slack/interactive", content=body, headers=headers)
                            forged_status = answer.status_code
                    if forged_status != 200:
                        tg.cancel_scope.cancel()
    assert forged_status != 200, "the model's forged Slack click approved its own request"
    assert not first or first[0].is_error, "the self-signed call ran"
    assert not bool(leaked), "the model read the Slack signing secret through an upstream tool"


def slack_click(secret: str, rid: str, user: str) -> tuple[bytes, dict[str, str]]:
    payload = {"type": "block_actions", "user": {"id": user}, "actions": [{"action_id": "approve", "value": rid}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
    return body, {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def test_slack_clicks_from_the_requester_under_other_spellings_or_a_revoked_reviewer_decide_nothing(
    tmp_path: Path, guard_home: Path
) -> None:
    from tests.reviewing import review

    signing = secrets.token_hex(16)
    policy = tmp_path / "p.yaml"
    policy.write_text(REVIEWED_ECHO)
    assert review(guard_home, "token", "create", "alice", "--role", "secops").returncode == 0
    assert review(guard_home, "token", "revoke", "alice").returncode == 0  # alice has left the team
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    users = "U0C1=Carol,U0C2=\uff43arol,U0C3=carol ,U0ALICE=alice,U0NOBODY=nobody"
    env = {"MCP_GUARD_USER": "carol", "MCP_GUARD_SLACK_SIGNING_SECRET": signing, "MCP_GUARD_SLACK_USERS": users}
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", *probe()]
    statuses: dict[str, int] = {}
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
                        for user in ("U0C1", "U0C2", "U0C3", "U0NOBODY", "U0ALICE"):
                            body, headers = slack_click(signing, ids[0], user)
                            answer = await http.post(f"{base}/slack/interactive", content=body, headers=headers)
                            statuses[user] = answer.status_code
                    tg.cancel_scope.cancel()
    assert all(code != 200 for code in statuses.values()), f"a Slack click decided: {statuses}"


REVIEWED_BY_SECOPS = """version: 1
defaults: {timeout: 120}
groups: {secops: [alice, bob]}
rules:
  - name: echo-is-reviewed
    match: {tool: echo}
    action: approve
    approvers: reviewers
    group: secops
"""


async def test_a_slack_user_outside_the_rules_group_decides_nothing(tmp_path: Path, guard_home: Path) -> None:
    signing = secrets.token_hex(16)
    policy = tmp_path / "p.yaml"
    policy.write_text(REVIEWED_BY_SECOPS)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"MCP_GUARD_USER": "carol", "MCP_GUARD_SLACK_SIGNING_SECRET": signing, "MCP_GUARD_SLACK_USERS": "U0M=mallory"}
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", *probe()]
    status = 0
    async with background(argv, f"{base}/healthz", env=env):
        with anyio.fail_after(60):
            url: Any = f"{base}/mcp"
            async with Client(url, mode="legacy", cache=None) as client:
                ids: list[str] = []

                async def progress(done: float, total: float | None, message: str | None) -> None:
                    ids.extend(re.findall(r"request ([0-9a-f]{8})", message or ""))

                async def call() -> None:
                    await client.call_tool("echo", {"message": "x"}, progress_callback=progress)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    while not ids:
                        await anyio.sleep(0.05)
                    body, headers = slack_click(signing, ids[0], "U0M")
                    async with httpx.AsyncClient() as http:
                        answer = await http.post(f"{base}/slack/interactive", content=body, headers=headers)
                        status = answer.status_code
                    tg.cancel_scope.cancel()
    assert status != 200, "mallory, mapped in Slack but not in the rule's group, decided"

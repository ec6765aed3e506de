"""Red team, grants (issue 14 items 1, 2): what was approved is exactly what runs, no more.

Real guard processes around fixtures/attack_approve_server.py (which records every call it ran), a raw
client that answers the guard's questions, the real review CLI with reviewer tokens, and the SDK client
in the 2026-07-28 era for the retry path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

import mcp_types as types
from tests.attack.approve_common import executed_args, open_asked, stop
from tests.conftest import FIXTURES, PY, connect
from tests.reviewing import review, reviewer_token

pytestmark = pytest.mark.anyio

SESSION = (
    "version: 1\n"
    "defaults: {action: allow, min_human_ms: 0, timeout: 30, scope: session}\n"
    "rules:\n"
    "  - name: send-dev\n"
    "    match: {tool: send, args: {\"$.env\": dev}}\n"
    "    action: approve\n"
    "    approvers: user\n"
    "    channels: [elicitation]\n"
    "    scope: session\n"
    "  - name: send-prod-reviewed\n"
    "    match: {tool: send, args: {\"$.env\": prod}}\n"
    "    action: approve\n"
    "    approvers: reviewers\n"
    "    quorum: 2\n"
    "    timeout: 3\n"
    "    wait: 1\n"
)
APPROVE_SESSION = {"action": "accept", "content": {"approve": True, "scope": "session"}}
DECLINE = {"action": "accept", "content": {"approve": False}}


async def close(process: Any) -> None:
    with anyio.fail_after(30):
        await process.stdin.aclose()
        await process.wait()


async def test_a_session_grant_ends_with_its_session(tmp_path: Path, guard_home: Path) -> None:
    process, client, seen = await open_asked(tmp_path, policy=SESSION, answer=APPROVE_SESSION)
    with anyio.fail_after(30):
        assert "result" in await client.call_raw(1, '{"env":"dev","n":1}')
        assert "result" in await client.call_raw(2, '{"env":"dev","n":2}')
    assert len(client.questions) == 1, "the session grant covered the second call"
    await close(process)
    # A later, unrelated client that declines everything must not run on the first one's grant.
    process, client, seen = await open_asked(tmp_path, policy=SESSION, answer=DECLINE)
    try:
        with anyio.fail_after(30):
            await client.call_raw(1, '{"env":"dev","n":3}')
    finally:
        await stop(process)
    assert [a["n"] for a in executed_args(seen)] == [1, 2], "a grant outlived its session"


async def test_a_users_session_grant_never_satisfies_a_reviewers_rule(tmp_path: Path, guard_home: Path) -> None:
    process, client, seen = await open_asked(tmp_path, policy=SESSION, answer=APPROVE_SESSION)
    try:
        with anyio.fail_after(40):
            assert "result" in await client.call_raw(1, '{"env":"dev","n":1}')
            reply = await client.call_raw(2, '{"env":"prod","n":2}')
    finally:
        await stop(process)
    assert [a["n"] for a in executed_args(seen)] == [1], "the user's grant ran a call that needs two reviewers"
    assert reply.get("result", {}).get("isError") or "error" in reply


ONCE_REVIEWED = (
    "version: 1\n"
    "defaults: {action: allow, timeout: 60}\n"
    "groups: {secops: [alice]}\n"
    "rules:\n"
    "  - name: send-reviewed\n"
    "    match: {tool: send}\n"
    "    action: approve\n"
    "    approvers: reviewers\n"
    "    group: secops\n"
    "    scope: once\n"
)


async def pending(home: Path, count: int) -> list[str]:
    while True:
        items = json.loads(review(home, "list", "--json").stdout or "[]")
        if len(items) >= count:
            return [str(item["id"]) for item in items]
        await anyio.sleep(0.1)


async def test_one_once_approval_runs_one_of_two_identical_calls_in_flight(tmp_path: Path, guard_home: Path) -> None:
    token = reviewer_token(guard_home, "alice")
    process, client, seen = await open_asked(tmp_path, policy=ONCE_REVIEWED)
    replies: dict[int, Any] = {}
    try:
        with anyio.fail_after(60):
            async def call(rid: int) -> None:
                line = '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"send",' \
                       '"arguments":{"cmd":"deploy"}}}' % rid
                await client.send_line(line.encode())

            await call(1)
            await call(2)
            ids = await pending(guard_home, 1)
            # Approve what is listed once; whatever else is waiting must not ride on it.
            assert review(guard_home, "approve", ids[0], token=token).returncode == 0
            while len(replies) < 2:
                message = await client.receive()
                if message.get("id") in (1, 2) and "method" not in message:
                    replies[message["id"]] = message
                    if len(replies) == 1:
                        # the other call is still waiting; deny whatever is left so it ends
                        for rid in await pending_or_none(guard_home):
                            review(guard_home, "deny", rid, "--reason", "only one", token=token)
    finally:
        await stop(process)
    assert len(executed_args(seen)) == 1, "one `once` approval ran two calls"


async def pending_or_none(home: Path) -> list[str]:
    items = json.loads(review(home, "list", "--json").stdout or "[]")
    return [str(item["id"]) for item in items]


class SlowPerson:
    def __init__(self, delay: float, approve: bool, action: str = "accept") -> None:
        self.delay, self.approve, self.action, self.asked = delay, approve, action, 0

    async def __call__(self, ctx: Any, params: Any) -> types.ElicitResult:
        self.asked += 1
        await anyio.sleep(self.delay)  # a person reading the question, not a timing assertion
        if self.action != "accept":
            return types.ElicitResult(action=self.action)  # type: ignore[arg-type]
        return types.ElicitResult(action="accept", content={"approve": self.approve})


def era_policy(tmp_path: Path, timeout: float) -> str:
    path = tmp_path / "era.yaml"
    path.write_text("version: 1\ndefaults: {action: allow}\nrules:\n  - name: send-needs-you\n"
                    "    match: {tool: send}\n    action: approve\n    approvers: user\n"
                    f"    channels: [elicitation, cli]\n    timeout: {timeout}\n    wait: 2\n")
    return str(path)


def era_guard(policy: str) -> list[str]:
    return [PY, "-m", "mcp_guard", "run", "--policy", policy, "--", PY, str(FIXTURES / "attack_approve_server.py")]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_an_approval_after_the_policy_timeout_is_refused(tmp_path: Path, mode: str) -> None:
    seen = tmp_path / "seen.jsonl"
    person = SlowPerson(delay=2.5, approve=True)
    with anyio.fail_after(60):
        async with connect(era_guard(era_policy(tmp_path, timeout=1)), mode, env={"ATTACK_SEEN": str(seen)},
                           elicitation_callback=person) as client:
            result = await client.call_tool("send", {"cmd": "late"})
    assert person.asked >= 1
    assert executed_args(seen) == [], f"an answer after the 1 s timeout ran the call ({mode})"
    assert result.is_error


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("action", ["decline", "refuse"])
async def test_a_persons_considered_decline_is_a_decline(tmp_path: Path, mode: str, action: str) -> None:
    seen = tmp_path / "seen.jsonl"
    person = SlowPerson(delay=0.8, approve=False, action="decline" if action == "decline" else "accept")
    with anyio.fail_after(60):
        async with connect(era_guard(era_policy(tmp_path, timeout=30)), mode, env={"ATTACK_SEEN": str(seen)},
                           elicitation_callback=person) as client:
            result = await client.call_tool("send", {"cmd": "declined"})
    assert executed_args(seen) == []
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error
    assert "waiting for approval" not in text and "call again" not in text, (
        f"a person's decline after 0.8 s was taken for an automatic one ({mode}): {text}")


async def test_a_session_grant_does_not_reach_another_live_session(tmp_path: Path, guard_home: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, approver, seen_a = await open_asked(tmp_path / "a", policy=SESSION, answer=APPROVE_SESSION)
    second, decliner, seen_b = await open_asked(tmp_path / "b", policy=SESSION, answer=DECLINE)
    try:
        with anyio.fail_after(40):
            assert "result" in await approver.call_raw(1, '{"env":"dev","n":1}')
            await decliner.call_raw(1, '{"env":"dev","n":2}')
    finally:
        await stop(first)
        await stop(second)
    assert executed_args(seen_b) == [], "another client's live session ran on the first one's grant"
    assert len(decliner.questions) == 1


LATE_CLI = (
    "version: 1\n"
    "defaults: {action: allow, min_human_ms: 0}\n"
    "rules:\n"
    "  - name: send-needs-you\n"
    "    match: {tool: send}\n"
    "    action: approve\n"
    "    approvers: user\n"
    "    channels: [cli]\n"
    "    timeout: 2\n"
    "    wait: 1\n"
)


async def test_a_terminal_approval_after_the_policy_timeout_does_not_run_the_retry(
        tmp_path: Path, guard_home: Path) -> None:
    import getpass

    me = getpass.getuser()
    token = reviewer_token(guard_home, me, role="admin")
    process, client, seen = await open_asked(tmp_path, policy=LATE_CLI, env={"MCP_GUARD_USER": me})
    try:
        with anyio.fail_after(60):
            assert (await client.call_raw(1, '{"cmd":"late"}'))["result"]["isError"]
            items = json.loads(review(guard_home, "list", "--json").stdout or "[]")
            rid = str(items[0]["id"]) if items else ""
            await anyio.sleep(2.5)  # let the rule's 2 s timeout pass: the approval below comes late
            if rid:
                review(guard_home, "approve", rid, token=token)
            await client.call_raw(2, '{"cmd":"late"}')
    finally:
        await stop(process)
    assert executed_args(seen) == [], "an approval given after the policy timeout ran the retried call"

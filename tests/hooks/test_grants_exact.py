"""Grants exactly as approved: bound to the session, the rule and the approver kind, used once
when approved once, timed on a clock that cannot be stepped back; and a decline that is a
decline in both eras. Real server-filesystem behind a real guard process, real clients."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import mcp_types as types
from mcp_guard.grants import Grants
from mcp_guard.store import Store
from tests.conftest import ERAS, connect, guard, missing, node_server
from tests.reviewing import review

pytestmark = pytest.mark.anyio

SESSION_RULE = """version: 1
defaults: {{min_human_ms: {min_human_ms}, timeout: {timeout}, wait: {wait}}}
rules:
  - name: user-writes
    match: {{tool: write_file}}
    action: approve
    scope: session
"""


def session_policy(tmp_path: Path, min_human_ms: float = 0, timeout: float = 30, wait: float = 1) -> str:
    path = tmp_path / "session.yaml"
    path.write_text(SESSION_RULE.format(min_human_ms=min_human_ms, timeout=timeout, wait=wait))
    return str(path)


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_guard", *args, "--home", str(home)], capture_output=True, text=True, timeout=30)


def live_grants(home: Path) -> list[dict[str, Any]]:
    listed = cli(home, "grants", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout or "[]")


def audit_bodies(home: Path, kind: str) -> list[dict[str, Any]]:
    out = cli(home, "audit", "export").stdout
    return [json.loads(line)["body"] for line in out.splitlines() if json.loads(line)["kind"] == kind]


class Person:
    """Answers an approval question like a person: after ``think`` seconds of reading."""

    def __init__(self, action: str = "accept", scope: str | None = None, think: float = 0.0) -> None:
        self.action, self.scope, self.think = action, scope, think
        self.questions = 0

    async def __call__(self, ctx: Any, params: Any) -> types.ElicitResult:
        self.questions += 1
        if self.think:
            await anyio.sleep(self.think)  # reading time, so the answer is a person's, not the client's
        if self.action != "accept":
            return types.ElicitResult(action=self.action)  # type: ignore[arg-type]
        content: dict[str, Any] = {"approve": True}
        if self.scope:
            content["scope"] = self.scope
        return types.ElicitResult(action="accept", content=content)


def text(result: Any) -> str:
    return result.content[0].text  # type: ignore[no-any-return]


# -- session grants end with their session ----------------------------------------------------


@pytest.mark.parametrize("mode", ERAS)
async def test_a_session_grant_ends_when_its_client_disconnects(tmp_path: Path, guard_home: Path, mode: str) -> None:
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=session_policy(tmp_path))
    person = Person(scope="session")
    with anyio.fail_after(40):
        async with connect(argv, mode, elicitation_callback=person) as client:
            first = await client.call_tool("write_file", {"path": str(tmp_path / "a.txt"), "content": "a"})
            second = await client.call_tool("write_file", {"path": str(tmp_path / "b.txt"), "content": "b"})
            during = live_grants(guard_home)
    assert not first.is_error and not second.is_error
    assert person.questions == 1  # the second write ran on the session grant
    assert len(during) == 1 and during[0]["scope"] == "session"
    assert live_grants(guard_home) == []  # the session is over: so is its grant
    assert during[0]["rule"] == "user-writes" and during[0]["kind"] == "user"  # what made it is kept with it


async def test_session_grants_of_a_guard_that_was_killed_are_ended_when_the_next_guard_starts(
    tmp_path: Path, guard_home: Path
) -> None:
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=session_policy(tmp_path))
    with anyio.fail_after(60):
        try:
            async with connect(argv, elicitation_callback=Person(scope="session")) as client:
                await client.call_tool("write_file", {"path": str(tmp_path / "a.txt"), "content": "a"})
                [grant] = live_grants(guard_home)
                os.kill(grant["owner_pid"], signal.SIGKILL)  # the guard crashes: nothing ends its sessions
        except Exception:
            pass  # the client loses its server mid-session; that is the point
        assert [g["id"] for g in live_grants(guard_home)] == [grant["id"]]  # left behind by the crash
        async with connect(argv) as client:  # the next guard starts on the same home
            await client.list_tools()
    assert live_grants(guard_home) == []


# -- a user's grant never satisfies a reviewers rule ---------------------------------------------

TWO_RULES = """version: 1
defaults: {min_human_ms: 0, timeout: 2}
groups: {secops: [alice, bob, carol]}
rules:
  - name: user-writes
    match: {tool: write_file, args: {"$.path": "*/mine/*"}}
    action: approve
    scope: session
  - name: reviewed-writes
    match: {tool: write_file, args: {"$.path": "*/shared/*"}}
    action: approve
    approvers: reviewers
    group: secops
    quorum: 2
"""


async def test_the_users_own_session_grant_never_satisfies_a_rule_that_needs_two_reviewers(
    tmp_path: Path, guard_home: Path
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "shared").mkdir()
    policy = tmp_path / "two.yaml"
    policy.write_text(TWO_RULES)
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=str(policy))
    with anyio.fail_after(40):
        async with connect(argv, env={"MCP_GUARD_USER": "carol"}, elicitation_callback=Person(scope="session")) as client:
            mine = await client.call_tool("write_file", {"path": str(tmp_path / "mine" / "a.txt"), "content": "a"})
            shared = await client.call_tool("write_file", {"path": str(tmp_path / "shared" / "b.txt"), "content": "b"})
    assert not mine.is_error
    assert shared.is_error and "no reviewer decided" in text(shared)
    assert not (tmp_path / "shared" / "b.txt").exists()


# -- once is one execution -----------------------------------------------------------------------

ONCE_RULE = """version: 1
defaults: {wait: 30, timeout: 60}
rules:
  - match: {tool: write_file}
    action: approve
"""


async def pending(home: Path, count: int) -> list[dict[str, Any]]:
    """The pending requests, once the guard has opened them (polled; bounded by the caller)."""
    while True:
        items = json.loads(cli(home, "review", "list", "--json").stdout or "[]")
        if len(items) >= count:
            return items
        await anyio.sleep(0.05)


async def test_one_approval_for_once_runs_one_of_two_identical_calls_in_flight(tmp_path: Path, guard_home: Path) -> None:
    policy = tmp_path / "once.yaml"
    policy.write_text(ONCE_RULE)
    args = {"path": str(tmp_path / "out.txt"), "content": "once"}
    results: list[Any] = []
    waiting = [anyio.Event(), anyio.Event()]
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=str(policy))
    with anyio.fail_after(60):
        async with connect(argv) as client:  # no elicitation: the terminal decides

            async def call(n: int) -> None:
                async def note(progress: float, total: float | None, message: str | None) -> None:
                    waiting[n].set()  # the guard says this call waits for the approval

                results.append(await client.call_tool("write_file", args, progress_callback=note))

            async with anyio.create_task_group() as tg:
                for n in (0, 1):
                    tg.start_soon(call, n)
                    await waiting[n].wait()
                [request] = await pending(guard_home, 1)  # the identical calls wait on one request
                approved = review(guard_home, "approve", request["id"], "--as", getpass.getuser())  # the requester's own token
                assert approved.returncode == 0, approved.stderr
    ran = [r for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    assert len(ran) == 1 and len(refused) == 1
    assert "not run a second time" in text(refused[0])
    completed = [b for b in audit_bodies(guard_home, "call.finished") if b.get("outcome") == "completed"]
    assert len(completed) == 1


# -- TTLs cannot be stretched by the wall clock -------------------------------------------------


def test_a_ttl_grant_ends_on_the_monotonic_clock_even_when_the_wall_clock_is_stepped_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "guard.db")
    grants = Grants(store)
    made = grants.add(
        user="u", session="s-1", server="files", tool="write_file", scope="ttl:1m", approver="u", channel="elicitation",
        kind="user", rule="r", policy_version="v1",
    )
    assert made is not None
    wanted = {"kind": "user", "rule": "r", "policy_version": "v1"}
    assert grants.find("u", "s-1", "files", "write_file", **wanted) is not None
    real_time, real_monotonic = __import__("time").time, __import__("time").monotonic
    # Two minutes pass in this process, and meanwhile the wall clock is stepped back an hour.
    monkeypatch.setattr("time.monotonic", lambda: real_monotonic() + 120)
    monkeypatch.setattr("time.time", lambda: real_time() + 120 - 3600)
    assert grants.find("u", "s-1", "files", "write_file", **wanted) is None
    # Another process sharing the store has only the wall clock: a grant made "in the future"
    # shows the clock went back, and is not trusted either.
    assert Grants(store).find("u", "s-1", "files", "write_file", **wanted) is None


TTL_RULE = """version: 1
defaults: {min_human_ms: 0, timeout: 30}
rules:
  - name: user-writes
    match: {tool: write_file}
    action: approve
    scope: ttl:2s
"""


def libfaketime() -> str:
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not found:
        missing("libfaketime", "apt-get install faketime")
    return str(found[0])


async def test_a_ttl_grant_ends_on_time_when_the_running_guards_wall_clock_is_stepped_back_an_hour(
    tmp_path: Path, guard_home: Path
) -> None:
    # The guard runs under libfaketime: its wall clock is moved by writing this file, while its
    # monotonic clock stays the machine's (as when NTP or an attacker steps the clock).
    clock = tmp_path / "clock"
    clock.write_text("+0\n")
    env = {
        "LD_PRELOAD": libfaketime(), "FAKETIME_TIMESTAMP_FILE": str(clock), "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    rules = tmp_path / "ttl.yaml"
    rules.write_text(TTL_RULE)
    person = Person(scope="ttl:2s")
    write = {"path": str(tmp_path / "out.txt"), "content": "x"}
    with anyio.fail_after(60):
        async with connect(guard(*node_server("server-filesystem", str(tmp_path)), policy=str(rules)), env=env,
                           elicitation_callback=person) as client:
            assert not (await client.call_tool("write_file", write)).is_error
            granted = time.monotonic()
            assert not (await client.call_tool("write_file", write)).is_error
            assert person.questions == 1  # the grant holds within its two seconds
            clock.write_text("-1h\n")
            await anyio.sleep(max(0.0, 2.5 - (time.monotonic() - granted)))  # the grant's life passes, on the real clock
            assert not (await client.call_tool("write_file", write)).is_error
    assert person.questions == 2, "a wall clock stepped back an hour kept a two-second grant alive"
    times = [b["ts"] for b in (json.loads(line) for line in cli(guard_home, "audit", "export").stdout.splitlines())
             if b["kind"] == "call.finished"]
    assert times[-1] < times[0] - 3000  # the step did reach the guard: its last record is dated an hour back


# -- a decline is a decline; a late answer is refused (both eras) ------------------------------


@pytest.mark.parametrize("mode", ERAS)
async def test_a_persons_decline_after_reading_is_taken_as_a_decline_in_both_eras(tmp_path: Path, guard_home: Path, mode: str) -> None:
    target = tmp_path / "out.txt"
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=session_policy(tmp_path, min_human_ms=200))
    person = Person(action="decline", think=0.4)
    with anyio.fail_after(40):
        async with connect(argv, mode, elicitation_callback=person) as client:
            result = await client.call_tool("write_file", {"path": str(target), "content": "no"})
    assert result.is_error and "the user declined" in text(result), text(result)
    assert json.loads(cli(guard_home, "review", "list", "--json").stdout or "[]") == []  # never asked elsewhere
    assert not target.exists()


@pytest.mark.parametrize("mode", ERAS)
async def test_an_approval_that_arrives_after_the_policy_timeout_is_refused_in_both_eras(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    target = tmp_path / "out.txt"
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=session_policy(tmp_path, timeout=1, wait=0))
    with anyio.fail_after(40):
        async with connect(argv, mode, elicitation_callback=Person(think=1.5)) as client:
            result = await client.call_tool("write_file", {"path": str(target), "content": "late"})
    assert result.is_error and "not run" in text(result)
    assert not target.exists()

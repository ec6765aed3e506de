"""Red team, who decides: grants. A session grant one client's person gave never covers another
client (another stdio guard on the same home, another HTTP session, another 2026 exchange), and a
`once` decision runs exactly one call, even with identical calls in flight together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp import Client
from tests.conftest import PY, background, connect, free_port, guard, probe
from tests.hooks.test_approval import Person
from tests.hooks.test_review_queue import first_pending
from tests.reviewing import review

pytestmark = pytest.mark.anyio

USER_SESSION = """version: 1
defaults: {min_human_ms: 0, timeout: 60}
rules:
  - match: {tool: echo}
    action: approve
    scope: session
"""

REVIEWED_ONCE = """version: 1
defaults: {timeout: 60}
rules:
  - name: echo-is-reviewed
    match: {tool: echo}
    action: approve
    approvers: reviewers
"""


def runs(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["arguments"].get("message", "") for line in log.read_text().splitlines()]


def write_policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_session_grant_in_one_stdio_guard_does_not_cover_another_guard_on_the_same_home(
    tmp_path: Path, guard_home: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    log = tmp_path / "probe.log"
    monkeypatch.setenv("PROBE_LOG", str(log))
    argv = guard(*probe(), policy=write_policy(tmp_path, USER_SESSION))
    yes, no = Person(scope="session"), Person(approve=False)
    with anyio.fail_after(60):
        async with connect(argv, mode, env={"PROBE_LOG": str(log)}, elicitation_callback=yes) as first:
            assert not (await first.call_tool("echo", {"message": "granted"})).is_error
            async with connect(argv, mode, env={"PROBE_LOG": str(log)}, elicitation_callback=no) as second:
                other: Any = await second.call_tool("echo", {"message": "granted"})
    assert other.is_error and runs(log) == ["granted"], "another client ran on this client's session grant"
    assert len(no.questions) == 1


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_session_grant_from_one_http_client_does_not_cover_another_http_client(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    log = tmp_path / "probe.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [
        PY,
        "-m",
        "mcp_guard",
        "serve",
        "--policy",
        write_policy(tmp_path, USER_SESSION),
        "--port",
        str(port),
        "--",
        *probe(),
    ]
    yes, no = Person(scope="session"), Person(approve=False)
    async with background(argv, f"{base}/healthz", env={"PROBE_LOG": str(log)}):
        with anyio.fail_after(60):
            url: Any = f"{base}/mcp"
            async with Client(url, mode=mode, cache=None, elicitation_callback=yes) as first:
                assert not (await first.call_tool("echo", {"message": "granted"})).is_error
                async with Client(url, mode=mode, cache=None, elicitation_callback=no) as second:
                    other: Any = await second.call_tool("echo", {"message": "granted"})
    assert other.is_error and runs(log) == ["granted"], "another client ran on this client's session grant"


async def test_one_reviewer_approval_of_a_once_call_runs_one_of_two_identical_calls_in_flight(
    tmp_path: Path, guard_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "probe.log"
    monkeypatch.setenv("PROBE_LOG", str(log))
    argv = guard(*probe(), policy=write_policy(tmp_path, REVIEWED_ONCE))
    results: list[Any] = []
    with anyio.fail_after(90):
        async with connect(argv, env={"MCP_GUARD_USER": "carol", "PROBE_LOG": str(log)}) as client:

            async def call() -> None:
                results.append(await client.call_tool("echo", {"message": "once"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                tg.start_soon(call)
                while True:
                    pending = json.loads(review(guard_home, "list", "--json").stdout or "[]")
                    if len(pending) >= 1:
                        break
                    await anyio.sleep(0.05)
                await anyio.sleep(0)  # both calls are in the guard: the second either joined or opened its own
                rid = await first_pending(guard_home)
                assert review(guard_home, "approve", rid, "--as", "alice").returncode == 0
                while len(results) < 1:
                    await anyio.sleep(0.05)
                for item in json.loads(review(guard_home, "list", "--json").stdout or "[]"):
                    review(guard_home, "deny", str(item["id"]), "--as", "bob", "--reason", "one was approved")
    assert runs(log).count("once") == 1, f"one `once` approval ran {runs(log).count('once')} calls"


USER_ONCE_OR_TTL = """version: 1
defaults: {{min_human_ms: 0, timeout: 60}}
rules:
  - match: {{tool: echo}}
    action: approve
    scope: {scope}
"""


@pytest.mark.parametrize(
    ("allowed", "answered"),
    [
        ("once", "session"),
        ("once", "ttl:10m"),
        ("ttl:1m", "ttl:1000h"),
        ("ttl:1m", "session"),
        ("once", "SESSION"),
        ("once", " session"),
    ],
)
async def test_an_answer_cannot_widen_the_scope_past_what_the_policy_allows(
    tmp_path: Path, guard_home: Path, allowed: str, answered: str
) -> None:
    log = tmp_path / "probe.log"
    argv = guard(*probe(), policy=write_policy(tmp_path, USER_ONCE_OR_TTL.format(scope=allowed)))
    wide = Person(scope=answered)
    with anyio.fail_after(60):
        async with connect(argv, "legacy", env={"PROBE_LOG": str(log)}, elicitation_callback=wide) as client:
            first: Any = await client.call_tool("echo", {"message": "one"})
            if not first.is_error:
                wide.approve = False
                await client.call_tool("echo", {"message": "one"})
    if allowed == "once":
        assert runs(log).count("one") <= 1, f"a {answered!r} answer widened a once-only rule"
    else:
        import subprocess
        import sys

        listed = subprocess.run(
            [sys.executable, "-m", "mcp_guard", "grants", "list", "--json", "--all", "--home", str(guard_home)],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        grants = json.loads(listed or "[]")
        assert all(g.get("scope") != "session" for g in grants), grants
        assert all(float(g["expires"]) - float(g["created"]) <= 61 for g in grants), grants


USER_THEN_REVIEWERS = """version: 1
defaults: {min_human_ms: 0, timeout: 20}
groups: {secops: [alice, bob]}
rules:
  - name: prod-needs-reviewers
    match: {tool: echo, args: {"$.message": "prod*"}}
    action: approve
    approvers: reviewers
    group: secops
    quorum: 2
  - name: echo-asks-the-user
    match: {tool: echo}
    action: approve
    approvers: user
    scope: session
"""


async def test_a_users_session_grant_never_satisfies_a_rule_that_needs_reviewers(
    tmp_path: Path, guard_home: Path
) -> None:
    log = tmp_path / "probe.log"
    argv = guard(*probe(), policy=write_policy(tmp_path, USER_THEN_REVIEWERS))
    yes = Person(scope="session")
    with anyio.fail_after(60):
        async with connect(
            argv, "legacy", env={"PROBE_LOG": str(log), "MCP_GUARD_USER": "carol"}, elicitation_callback=yes
        ) as client:
            assert not (await client.call_tool("echo", {"message": "harmless"})).is_error  # the user grants the session
            result: list[Any] = []

            async def call() -> None:
                result.append(await client.call_tool("echo", {"message": "prod: drop table"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                while not result:
                    pending = json.loads(review(guard_home, "list", "--json").stdout or "[]")
                    if pending:
                        assert not pending[0].get("page_url"), "a reviewers request has a user's page link"
                        review(guard_home, "deny", str(pending[0]["id"]), "--as", "bob", "--reason", "no")
                        break
                    await anyio.sleep(0.05)
    assert "prod: drop table" not in runs(log), "the user's own session grant ran a call that needs two reviewers"

"""The reviewer queue: calls suspended for security reviewers, decided from another process,
never by the requester, with a quorum of distinct people; and many waiting at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_guard.approvals import Approvals
from mcp_guard.store import Store
from tests.conftest import connect, guard, node_server, probe
from tests.reviewing import review

pytestmark = pytest.mark.anyio

REVIEWED = """version: 1
defaults: {{timeout: {timeout}}}
groups: {{secops: [alice, bob, carol]}}
rules:
  - name: writes-are-reviewed
    match: {{tool: {tool}}}
    action: approve
    approvers: reviewers
    group: secops
    quorum: {quorum}
"""


def policy(tmp_path: Path, tool: str = "write_file", quorum: int = 1, timeout: float = 60) -> str:
    path = tmp_path / "reviewed.yaml"
    path.write_text(REVIEWED.format(tool=tool, quorum=quorum, timeout=timeout))
    return str(path)




async def first_pending(home: Path) -> str:
    while True:
        items = json.loads(review(home, "list", "--json").stdout or "[]")
        if items:
            return str(items[0]["id"])
        await anyio.sleep(0.05)


async def run_reviewed_write(tmp_path: Path, home: Path, decide: Any, **policy_args: Any) -> Any:
    target = tmp_path / "out.txt"
    result: list[Any] = []
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path, **policy_args))
    with anyio.fail_after(60):
        async with connect(argv, env={"MCP_GUARD_USER": "carol"}) as client:

            async def call() -> None:
                result.append(await client.call_tool("write_file", {"path": str(target), "content": "reviewed"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await decide(await first_pending(home))
    return result[0], target


async def test_a_reviewers_approval_from_another_process_lets_the_waiting_call_run(tmp_path: Path, guard_home: Path) -> None:
    async def approve(rid: str) -> None:
        done = review(guard_home, "approve", rid, "--as", "alice")
        assert done.returncode == 0, done.stderr

    result, target = await run_reviewed_write(tmp_path, guard_home, approve)
    assert not result.is_error and target.read_text() == "reviewed"


async def test_a_reviewers_denial_reaches_the_model_with_the_reason(tmp_path: Path, guard_home: Path) -> None:
    async def deny(rid: str) -> None:
        assert review(guard_home, "deny", rid, "--as", "bob", "--reason", "not during the freeze").returncode == 0

    result, target = await run_reviewed_write(tmp_path, guard_home, deny)
    assert result.is_error and "not during the freeze" in result.content[0].text and "bob" in result.content[0].text
    assert not target.exists()


async def test_the_requester_cannot_approve_their_own_request(tmp_path: Path, guard_home: Path) -> None:
    async def self_approve_then_deny(rid: str) -> None:
        refused = review(guard_home, "approve", rid, "--as", "carol")
        assert refused.returncode == 1 and "cannot decide it" in refused.stderr
        outsider = review(guard_home, "approve", rid, "--as", "mallory")
        assert outsider.returncode == 1 and "not among the reviewers" in outsider.stderr
        assert review(guard_home, "deny", rid, "--as", "alice", "--reason", "self-approval attempt").returncode == 0

    result, target = await run_reviewed_write(tmp_path, guard_home, self_approve_then_deny)
    assert result.is_error and not target.exists()


async def test_a_quorum_counts_distinct_reviewers(tmp_path: Path, guard_home: Path) -> None:
    async def votes(rid: str) -> None:
        assert review(guard_home, "approve", rid, "--as", "alice").returncode == 0
        again = review(guard_home, "approve", rid, "--as", "alice")  # refused: it would count for nothing
        assert again.returncode == 1 and f"you already approved request {rid}" in again.stderr, again.stderr
        assert json.loads(review(guard_home, "show", rid, "--json").stdout)["state"] == "pending"
        assert review(guard_home, "approve", rid, "--as", "bob").returncode == 0

    result, target = await run_reviewed_write(tmp_path, guard_home, votes, quorum=2)
    assert not result.is_error and target.read_text() == "reviewed"


async def test_no_decision_in_time_means_not_run(tmp_path: Path, guard_home: Path) -> None:
    target = tmp_path / "out.txt"
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path, timeout=1))
    with anyio.fail_after(30):
        async with connect(argv, env={"MCP_GUARD_USER": "carol"}) as client:
            result = await client.call_tool("write_file", {"path": str(target), "content": "late"})
    assert result.is_error and "no reviewer decided" in result.content[0].text  # type: ignore[union-attr]
    assert not target.exists()


async def test_two_hundred_waiting_calls_are_each_decided_correctly(tmp_path: Path, guard_home: Path) -> None:
    log = tmp_path / "probe.jsonl"
    log.touch()
    argv = guard(*probe(), policy=policy(tmp_path, tool="echo", timeout=120))
    results: dict[int, Any] = {}
    with anyio.fail_after(120):
        async with connect(argv, env={"MCP_GUARD_USER": "carol", "PROBE_LOG": str(log)}) as client:

            async def call(i: int) -> None:
                results[i] = await client.call_tool("echo", {"message": f"m{i}"})

            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(call, i)
                approvals = Approvals(Store(guard_home / "guard.db"))
                decided: set[str] = set()
                while len(decided) < 200:
                    for request in approvals.pending():
                        number = int(request.preview.split('message = "m')[1].split('"')[0])
                        approvals.decide(request.id, approve=number % 2 == 0, by="alice", channel="cli", reason="odd")
                        decided.add(request.id)
                    await anyio.sleep(0.05)
    assert len(results) == 200
    ran = sorted(int(json.loads(line)["arguments"]["message"][1:]) for line in log.read_text().splitlines())
    assert ran == list(range(0, 200, 2))
    for i, result in results.items():
        assert result.is_error is (i % 2 == 1)


async def test_a_request_whose_caller_is_gone_is_marked_so_and_kept(tmp_path: Path, guard_home: Path) -> None:
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path))
    with anyio.fail_after(60):
        async with connect(argv, env={"MCP_GUARD_USER": "carol"}) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "write_file", {"path": str(tmp_path / "x.txt"), "content": "x"})
                rid = await first_pending(guard_home)
                tg.cancel_scope.cancel()  # the client gives up; then the whole session closes
    shown: dict[str, Any] = {}
    with anyio.fail_after(20):
        while shown.get("state") != "cancelled":
            shown = json.loads(review(guard_home, "show", rid, "--json").stdout)
            await anyio.sleep(0.05)
    assert shown["reason"] and not (tmp_path / "x.txt").exists()
    assert review(guard_home, "approve", rid, "--as", "alice").returncode == 1  # nothing left to decide


async def test_a_client_with_url_elicitation_is_offered_the_review_pages_link(tmp_path: Path, guard_home: Path) -> None:
    offered: list[str] = []

    async def on_elicit(ctx: Any, params: Any) -> Any:
        import mcp_types as types

        offered.append(str(getattr(params, "url", "")))
        return types.ElicitResult(action="accept")

    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path))
    env = {"MCP_GUARD_USER": "carol", "MCP_GUARD_REVIEW_URL": "http://127.0.0.1:8765/review"}
    with anyio.fail_after(60):
        async with connect(argv, env=env, elicitation_callback=on_elicit) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "write_file", {"path": str(tmp_path / "x.txt"), "content": "x"})
                rid = await first_pending(guard_home)
                while not offered:
                    await anyio.sleep(0.05)
                assert review(guard_home, "approve", rid, "--as", "alice").returncode == 0
    assert offered == [f"http://127.0.0.1:8765/review#req-{rid}"]
    assert (tmp_path / "x.txt").read_text() == "x"

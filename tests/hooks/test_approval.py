"""Approval by the user, end to end: real servers, real clients of both eras, real files."""

from __future__ import annotations

import json
import subprocess
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import mcp_types as types
from mcp.shared.exceptions import MCPError
from tests.conftest import ERAS, ROOT, connect, everything, guard, node_server, python_server

pytestmark = pytest.mark.anyio

DEFAULT = str(ROOT / "policies" / "default.yaml")


def default_with(tmp_path: Path, **defaults: Any) -> str:
    """The shipped default policy with some defaults changed (e.g. min_human_ms for instant test answers)."""
    import yaml

    data = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    data["defaults"].update(defaults)
    path = tmp_path / "default-variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


class Person:
    """An elicitation handler that answers like a person would, and counts the questions."""

    def __init__(self, action: str = "accept", approve: bool = True, scope: str | None = None) -> None:
        self.action, self.approve, self.scope = action, approve, scope
        self.questions: list[str] = []
        self.hold: anyio.Event | None = None  # set: wait for it before answering

    async def __call__(self, ctx: Any, params: Any) -> types.ElicitResult:
        self.questions.append(params.message)
        if self.hold is not None:
            await self.hold.wait()
        if self.action != "accept":
            return types.ElicitResult(action=self.action)  # type: ignore[arg-type]
        content: dict[str, Any] = {"approve": self.approve}
        if self.scope:
            content["scope"] = self.scope
        return types.ElicitResult(action="accept", content=content)


def write_call(root: Path) -> tuple[str, dict[str, str]]:
    return "write_file", {"path": str(root / "out.txt"), "content": "approved content"}


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize(("answer", "written"), [("approve", True), ("refuse", False), ("decline", False), ("cancel", False)])
async def test_filesystem_write_runs_only_when_the_user_approves(tmp_path: Path, mode: str, answer: str, written: bool) -> None:
    person = Person(action="accept" if answer in ("approve", "refuse") else answer, approve=answer == "approve")
    # This test's person answers at once; a decline that fast would otherwise be taken for an
    # automatic one (see the out-of-band tests).
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=default_with(tmp_path, min_human_ms=0))
    with anyio.fail_after(30):
        async with connect(argv, mode, elicitation_callback=person) as client:
            result = await client.call_tool(*write_call(tmp_path))
    assert (tmp_path / "out.txt").exists() is written
    assert result.is_error is not written
    assert len(person.questions) == 1
    question = person.questions[0]
    assert "write_file" in question and "Risk: high" in question and "high-risk-needs-your-approval" in question
    assert "approved content" in question
    if not written:
        assert "not run" in result.content[0].text  # type: ignore[union-attr]


async def test_no_answer_within_the_policy_timeout_means_not_written(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules:\n  - match: {tool: write_file}\n    action: approve\n    timeout: 1\n")
    person = Person()
    person.hold = anyio.Event()  # never set: the person walked away
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=str(policy))
    with anyio.fail_after(30):
        async with connect(argv, "legacy", elicitation_callback=person) as client:
            result = await client.call_tool(*write_call(tmp_path))
    assert result.is_error
    assert "within 1 s" in result.content[0].text  # type: ignore[union-attr]
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("mode", ERAS)
async def test_a_client_without_elicitation_is_told_how_to_get_approval(tmp_path: Path, mode: str) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\ndefaults: {channels: [elicitation]}\nrules:\n  - match: {risk: high}\n    action: approve\n")
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=str(policy))
    with anyio.fail_after(30):
        async with connect(argv, mode) as client:
            result = await client.call_tool(*write_call(tmp_path))
    assert result.is_error
    assert "does not support elicitation" in result.content[0].text  # type: ignore[union-attr]
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("answer", ["approve", "decline"])
async def test_git_branch_on_a_2026_server_waits_for_a_2025_client(tmp_path: Path, answer: str) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules:\n  - match: {tool: git_create_branch}\n    action: approve\n")
    person = Person(action="accept" if answer == "approve" else "decline")
    argv = guard(*python_server("mcp-server-git", "--repository", str(repo)), policy=str(policy), options=["--protocol", "2026-07-28"])
    policy.write_text(policy.read_text() + "defaults: {min_human_ms: 0}\n")
    with anyio.fail_after(30):
        async with connect(argv, "legacy", elicitation_callback=person) as client:
            result = await client.call_tool("git_create_branch", {"repo_path": str(repo), "branch_name": "feature"})
    branches = subprocess.run(["git", "-C", str(repo), "branch", "--list", "feature"], capture_output=True, text=True).stdout
    assert ("feature" in branches) is (answer == "approve")
    assert result.is_error is (answer != "approve")


@pytest.mark.parametrize("answer", ["approve", "decline"])
async def test_server_everything_call_waits_for_a_2026_client(tmp_path: Path, answer: str) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\ndefaults: {min_human_ms: 0}\nrules:\n  - match: {tool: get-sum}\n    action: approve\n")
    person = Person(action="accept" if answer == "approve" else "decline")
    with anyio.fail_after(30):
        async with connect(guard(*everything(), policy=str(policy)), "2026-07-28", elicitation_callback=person) as client:
            result = await client.call_tool("get-sum", {"a": 2, "b": 3})
    assert len(person.questions) == 1
    assert result.is_error is (answer != "approve")
    if answer == "approve":
        assert "5" in result.content[0].text  # type: ignore[union-attr]


async def test_denied_tools_are_hidden_tagged_ones_show_their_risk_and_a_call_by_name_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    log.touch()
    argv = guard(sys.executable, str(ROOT / "examples" / "risky_server.py"), policy=DEFAULT)
    with anyio.fail_after(30):
        async with connect(argv, "legacy", env={"PROBE_LOG": str(log), "PYTHONPATH": str(ROOT)}) as client:
            tools = {t.name: (t.meta or {}) for t in (await client.list_tools()).tools}
            refused = await client.call_tool("wire_money", {"iban": "DE00", "amount": 1})
            low = await client.call_tool("lookup", {"term": "guard"})
    assert "wire_money" not in tools
    assert {name: meta["mcp-guard/risk"] for name, meta in tools.items()} == {
        "lookup": "low", "note": "medium", "send_email": "high", "untagged": "medium"
    }
    assert tools["send_email"]["mcp-guard/reason"] == "sends mail in your name"
    assert refused.is_error and "critical-is-denied" in refused.content[0].text  # type: ignore[union-attr]
    assert not low.is_error
    assert [json.loads(line)["tool"] for line in log.read_text().splitlines()] == ["lookup"]


async def test_a_once_approval_is_asked_again_for_every_call(tmp_path: Path) -> None:
    person = Person()
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=DEFAULT)
    with anyio.fail_after(30):
        async with connect(argv, "legacy", elicitation_callback=person) as client:
            name, args = write_call(tmp_path)
            await client.call_tool(name, args)
            await client.call_tool(name, args)
            await client.call_tool(name, {**args, "content": "other"})
    assert len(person.questions) == 3


async def test_a_2026_approval_cannot_be_replayed_or_moved_to_other_arguments(tmp_path: Path) -> None:
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=DEFAULT)
    name, args = write_call(tmp_path)
    yes = {"mcp-guard/approve": types.ElicitResult(action="accept", content={"approve": True})}
    with anyio.fail_after(30):
        async with connect(argv, "2026-07-28", elicitation_callback=Person()) as client:
            session = client.session
            asked = await session.call_tool(name, args, allow_input_required=True)
            assert isinstance(asked, types.InputRequiredResult)
            state = asked.request_state
            with pytest.raises(MCPError, match="Invalid or expired requestState"):
                await session.call_tool(name, {**args, "path": str(tmp_path / "elsewhere.txt")}, input_responses=yes, request_state=state)
            # The approval stays bound to the call it was given for: that one runs, once.
            done = await session.call_tool(name, args, input_responses=yes, request_state=state)
            assert not done.is_error
            with pytest.raises(MCPError, match="Invalid or expired requestState"):
                await session.call_tool(name, args, input_responses=yes, request_state=state)
            again = await session.call_tool(name, args, allow_input_required=True)
            assert isinstance(again, types.InputRequiredResult)
    assert not (tmp_path / "elsewhere.txt").exists()
    assert (tmp_path / "out.txt").read_text() == "approved content"


async def test_a_session_grant_is_listed_revocable_and_then_asked_again(tmp_path: Path, guard_home: Path) -> None:
    person = Person(scope="session")
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=DEFAULT)
    cli = [sys.executable, "-m", "mcp_guard", "grants"]
    with anyio.fail_after(30):
        async with connect(argv, "legacy", elicitation_callback=person) as client:
            name, args = write_call(tmp_path)
            await client.call_tool(name, args)
            await client.call_tool(name, {**args, "content": "second"})
            assert len(person.questions) == 1
            listed = json.loads(subprocess.run([*cli, "list", "--json"], capture_output=True, text=True, check=True).stdout)
            assert [(g["tool"], g["scope"]) for g in listed] == [("write_file", "session")]
            subprocess.run([*cli, "revoke", listed[0]["id"]], check=True, capture_output=True)
            await client.call_tool(name, {**args, "content": "third"})
            assert len(person.questions) == 2
    assert (tmp_path / "out.txt").read_text() == "third"


async def test_a_waiting_call_sends_progress_to_a_client_that_asked_for_it(tmp_path: Path) -> None:
    person = Person()
    person.hold = anyio.Event()
    progress: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)
        person.hold.set()  # the person answers once the client showed it is waiting  # type: ignore[union-attr]

    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=DEFAULT)
    with anyio.fail_after(30):
        async with connect(argv, "legacy", elicitation_callback=person) as client:
            result = await client.call_tool(*write_call(tmp_path), progress_callback=on_progress)
    assert not result.is_error
    assert progress and "waiting for your approval" in str(progress[0])


async def test_a_changed_policy_is_reloaded_and_a_broken_one_keeps_the_last_good(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules: []\n")
    argv = guard(sys.executable, str(ROOT / "examples" / "risky_server.py"), policy=str(policy))

    async def note_denied(client: Any) -> bool:
        result = await client.call_tool("note", {"text": "hi"})
        return bool(result.is_error)

    with anyio.fail_after(30):
        async with connect(argv, "legacy", env={"PYTHONPATH": str(ROOT)}) as client:
            assert not await note_denied(client)
            policy.write_text("version: 1\nrules:\n  - name: no-notes\n    match: {tool: note}\n    action: deny\n")
            while not await note_denied(client):
                await anyio.sleep(0.1)  # the guard looks at the file at most once a second
            policy.write_text("version: 1\nrules:\n  - match: {tool: note}\n    action: maybe\n")
            for _ in range(15):  # well past the reload interval: still the last good policy
                assert await note_denied(client)
                await anyio.sleep(0.1)


def test_a_missing_or_broken_policy_stops_the_guard_from_starting(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrules:\n  - action: sometimes\n")
    for path, message in ((tmp_path / "missing.yaml", "cannot read the policy"), (broken, "rules[0].action")):
        done = subprocess.run(
            [sys.executable, "-m", "mcp_guard", "run", "--policy", str(path), "--", "true"],
            capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 2
        assert message in done.stderr and str(path) in done.stderr


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("upstream_era", ERAS)
async def test_an_approved_call_whose_server_asks_too_asks_the_guard_question_once(tmp_path: Path, mode: str, upstream_era: str) -> None:
    """The guard's approval and the server's own elicitation, one after the other, in every era pair."""
    from tests.conftest import probe

    log = tmp_path / "probe.jsonl"
    log.touch()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules:\n  - match: {tool: confirm}\n    action: approve\n")
    person = Person()
    argv = guard(*probe(), policy=str(policy), options=["--protocol", upstream_era])
    with anyio.fail_after(30):
        async with connect(argv, mode, elicitation_callback=person, env={"PROBE_LOG": str(log)}) as client:
            result = await client.call_tool("confirm", {"action": "deploy"})
    assert result.content[0].text == "accept: approve=True"  # type: ignore[union-attr]
    assert [q.splitlines()[0] for q in person.questions] == ["mcp-guard: approve confirm on server probe_server?", "Allow action: deploy?"]
    assert [json.loads(line)["tool"] for line in log.read_text().splitlines()] == ["confirm"]


async def test_the_question_for_a_poisoned_tool_says_its_description_instructs_the_model(tmp_path: Path) -> None:
    from tests.test_integrity import CHANGING

    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow, channels: [elicitation], min_human_ms: 0}\nrules:\n"
                      "  - name: high-needs-you\n    match: {risk: high}\n    action: approve\n"
                      "    reason: This tool can change or delete things.\n")
    person = Person(action="decline")
    with anyio.fail_after(30):
        async with connect(guard(*CHANGING, policy=str(policy), options=["--name", "glossary"]), "legacy",
                           env={"VARIANT": "poisoned"}, elicitation_callback=person) as client:
            await client.list_tools()
            result = await client.call_tool("lookup", {"term": "x"})
    assert result.is_error and len(person.questions) == 1
    why = next(line for line in person.questions[0].splitlines() if line.startswith("Why: "))
    assert "description carries instructions to the model" in why and "high-needs-you" in why


async def test_a_policy_replaced_by_a_copy_that_keeps_size_and_timestamps_is_reloaded(tmp_path: Path) -> None:
    """cp -p, rsync -a and tar keep a file's mtime: a tightened policy copied so must still apply."""
    policy = tmp_path / "p.yaml"
    allow = "version: 1\nrules:\n  - name: ok-notes\n    match: {tool: note}\n    action: allow\n"
    deny = allow.replace("ok-notes", "no-notes").replace("allow\n", "deny\n ")
    assert len(deny) == len(allow)
    policy.write_text(allow)
    argv = guard(sys.executable, str(ROOT / "examples" / "risky_server.py"), policy=str(policy))
    with anyio.fail_after(30):
        async with connect(argv, "legacy", env={"PYTHONPATH": str(ROOT)}) as client:
            assert not (await client.call_tool("note", {"text": "hi"})).is_error
            before = policy.stat()
            copy = tmp_path / "copy.yaml"
            copy.write_text(deny)
            os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
            os.replace(copy, policy)  # a new file of the same size and mtime, as `cp -p` leaves it
            while not (await client.call_tool("note", {"text": "hi"})).is_error:
                await anyio.sleep(0.1)  # the guard looks at the file at most once a second

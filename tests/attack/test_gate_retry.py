"""Red team, promise 3 (one gate): a 2026-07-28 retry resumes a call only with the guard's own sealed state,
once, for the same tool and arguments, and only on a real yes; a grant never carries between callers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError
from tests.conftest import PY, ROOT, accept_elicitation, background, connect, free_port, guard

pytestmark = pytest.mark.anyio

DEFAULT = str(ROOT / "policies" / "default.yaml")
KEY = "mcp-guard/approve"
ARGS = {"to": "ops@example.com", "body": "hi"}


def _risky(log: Path) -> tuple[list[str], dict[str, str]]:
    # The shipped policy, except that a decline is taken as the person's even when it comes back at
    # once (min_human_ms would otherwise send a fast decline to the out-of-band channels, by design).
    policy = log.parent / "default-no-min.yaml"
    policy.write_text(Path(DEFAULT).read_text().replace("  scope: session\n", "  scope: session\n  min_human_ms: 0\n"))
    assert "min_human_ms: 0" in policy.read_text()
    argv = guard(sys.executable, str(ROOT / "examples" / "risky_server.py"), policy=str(policy))
    return argv, {"PROBE_LOG": str(log), "PYTHONPATH": str(ROOT)}


def _ran(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.strip()]


def _yes(content: dict[str, Any] | None = None, action: str = "accept") -> dict[str, Any]:
    return {KEY: types.ElicitResult(action=action, content=content if content is not None else {"approve": True})}  # type: ignore[arg-type]


async def _ask(client: Client, tool: str = "send_email", args: dict[str, Any] | None = None) -> str:
    first = await client.session.call_tool(tool, args or ARGS, allow_input_required=True)
    assert isinstance(first, types.InputRequiredResult), first
    assert first.request_state and first.request_state.startswith("mcp-guard.")
    return first.request_state


async def _retry(client: Client, state: str, responses: dict[str, Any], tool: str = "send_email",
                 args: dict[str, Any] | None = None) -> Any:
    return await client.session.call_tool(tool, args or ARGS, input_responses=responses, request_state=state,
                                          allow_input_required=True)


async def test_a_sealed_state_used_once_is_refused_when_replayed_and_the_tool_runs_once(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    log.touch()
    argv, env = _risky(log)
    with anyio.fail_after(30):
        async with connect(argv, "2026-07-28", env=env, elicitation_callback=accept_elicitation) as client:
            state = await _ask(client)
            done = await _retry(client, state, _yes())
            assert isinstance(done, types.CallToolResult) and not done.is_error, done
            with pytest.raises(MCPError) as refused:
                await _retry(client, state, _yes())
            assert refused.value.error.code == -32602
    assert len(_ran(log)) == 1


@pytest.mark.parametrize(("tool", "args"), [
    ("send_email", {"to": "attacker@example.net", "body": "hi"}),
    ("send_email", {**ARGS, "cc": "attacker@example.net"}),
    ("wire_money", {"iban": "DE00", "amount": 1}),
], ids=["other-arguments", "extra-argument", "other-tool"])
async def test_a_sealed_state_moved_to_another_call_is_refused_and_nothing_runs(
    tmp_path: Path, tool: str, args: dict[str, Any]
) -> None:
    log = tmp_path / "calls.jsonl"
    log.touch()
    argv, env = _risky(log)
    with anyio.fail_after(30):
        async with connect(argv, "2026-07-28", env=env, elicitation_callback=accept_elicitation) as client:
            state = await _ask(client)
            with pytest.raises(MCPError) as refused:
                await _retry(client, state, _yes(), tool=tool, args=args)
            assert refused.value.error.code == -32602
    assert _ran(log) == []


@pytest.mark.parametrize("content,action", [
    ({"approve": "false"}, "accept"),
    ({"approve": "yes"}, "accept"),
    ({"approve": ["true"]}, "accept"),
    ({"approve": 1}, "accept"),
    ({"approve": True}, "decline"),
    ({"approve": True}, "cancel"),
    ({}, "accept"),
], ids=["string-false", "string-yes", "list", "one", "decline-with-yes", "cancel-with-yes", "empty"])
async def test_an_answer_that_is_not_a_plain_yes_never_runs_the_tool(
    tmp_path: Path, content: dict[str, Any], action: str
) -> None:
    log = tmp_path / "calls.jsonl"
    log.touch()
    argv, env = _risky(log)
    with anyio.fail_after(30):
        async with connect(argv, "2026-07-28", env=env, elicitation_callback=accept_elicitation) as client:
            state = await _ask(client)
            try:
                outcome = await _retry(client, state, _yes(content, action))
            except MCPError:
                outcome = None
            assert not isinstance(outcome, types.CallToolResult) or outcome.is_error, outcome
    assert _ran(log) == []


async def test_a_session_grant_from_one_2026_caller_never_lets_another_run_the_tool_unasked(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    log.touch()
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    argv = [PY, "-m", "mcp_guard", "serve", "--port", str(port), "--policy", DEFAULT, "--",
            sys.executable, str(ROOT / "examples" / "risky_server.py")]
    env = {"PROBE_LOG": str(log), "PYTHONPATH": str(ROOT)}
    async with background(argv, f"http://127.0.0.1:{port}/healthz", env=env):
        with anyio.fail_after(30):
            async with Client(url, mode="2026-07-28", cache=None, elicitation_callback=accept_elicitation) as a:
                state = await _ask(a)
                done = await _retry(a, state, _yes({"approve": True, "scope": "session"}))
                assert isinstance(done, types.CallToolResult) and not done.is_error, done
            async with Client(url, mode="2026-07-28", cache=None, elicitation_callback=accept_elicitation) as b:
                second = await b.session.call_tool("send_email", ARGS, allow_input_required=True)
                assert isinstance(second, types.InputRequiredResult), "the other caller ran it on the first's grant"
    assert len(_ran(log)) == 1


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_a_plain_decline_on_a_2026_retry_is_answered_as_declined_not_parked_for_a_reviewer(
    tmp_path: Path, action: str
) -> None:
    log = tmp_path / "calls.jsonl"
    log.touch()
    argv, env = _risky(log)
    with anyio.fail_after(30):  # a bound on a hang, not a timing claim: the answer needs no waiting
        async with connect(argv, "2026-07-28", env=env, elicitation_callback=accept_elicitation) as client:
            state = await _ask(client)
            outcome = await _retry(client, state, {KEY: types.ElicitResult(action=action)})  # type: ignore[arg-type]
            assert isinstance(outcome, types.CallToolResult) and outcome.is_error, outcome
            said = json.dumps(outcome.model_dump(mode="json"))
            # The user said no: the call must not be filed for someone else to approve later.
            assert "review approve" not in said, said
    assert _ran(log) == []

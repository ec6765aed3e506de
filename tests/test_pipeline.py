"""The interception pipeline: hooks added by config see every call, and fail closed."""

from __future__ import annotations

import json

import anyio
import pytest

from mcp_guard.pipeline import Call, Hook, Pipeline
from tests.conftest import ERAS, FIXTURES, PY, connect, probe

pytestmark = pytest.mark.anyio


def config_with_hooks(tmp_path, hooks: list[str]) -> str:
    path = tmp_path / "guard.json"
    path.write_text(json.dumps({"mcpServers": {"probe": {"command": probe()[0], "args": probe()[1:]}}, "mcpGuard": {"hooks": hooks}}))
    return str(path)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_configured_hook_denies_a_call_and_the_upstream_never_sees_it(tmp_path, mode: str) -> None:
    log = tmp_path / "probe.jsonl"
    log.touch()
    env = {"PROBE_LOG": str(log), "PYTHONPATH": str(FIXTURES), "PROBE_WORD": "a secret value"}
    cfg = config_with_hooks(tmp_path, ["sample_hooks:DenyEcho"])
    with anyio.fail_after(30):
        async with connect([PY, "-m", "mcp_guard", "run", "--no-policy", "--config", cfg], mode, env=env) as client:
            denied = await client.call_tool("echo", {"message": "hi"})
            assert denied.is_error
            assert "blocked by the test policy" in denied.content[0].text  # type: ignore[union-attr]
            masked = await client.call_tool("env", {"name": "PROBE_WORD"})
    # Only the allowed call reached the server; the guard's environment reached it too.
    assert [json.loads(line)["tool"] for line in log.read_text().splitlines()] == ["env"]
    assert masked.content[0].text == "a [redacted] value"  # type: ignore[union-attr]


async def test_a_hook_that_raises_blocks_the_call(tmp_path) -> None:
    log = tmp_path / "probe.jsonl"
    log.touch()
    cfg = config_with_hooks(tmp_path, ["sample_hooks:Broken"])
    with anyio.fail_after(30):
        async with connect([PY, "-m", "mcp_guard", "run", "--no-policy", "--config", cfg], env={"PROBE_LOG": str(log), "PYTHONPATH": str(FIXTURES)}) as client:
            result = await client.call_tool("echo", {"message": "hi"})
    assert result.is_error
    assert "could not check this call" in result.content[0].text  # type: ignore[union-attr]
    assert log.read_text() == ""


class Recorder(Hook):
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def request(self, call: Call) -> None:
        self.seen.append(f"req:{call.method}:{call.name}")

    async def response(self, call: Call) -> None:
        self.seen.append(f"resp:{call.method}")


class Stopper(Hook):
    async def request(self, call: Call) -> None:
        call.deny("stop")


async def test_hooks_run_in_order_and_a_denial_stops_the_chain() -> None:
    first, last = Recorder(), Recorder()
    pipeline = Pipeline([first, Stopper(), last])
    call = Call("tools/call", "up", {"name": "t"})
    await pipeline.run_request(call)
    assert first.seen == ["req:tools/call:t"]
    assert last.seen == []
    assert call.verdict is not None and call.verdict.reason == "stop"


def test_a_pipeline_of_pass_through_hooks_is_inactive() -> None:
    assert not Pipeline([Hook(), Hook()]).active
    assert Pipeline([Recorder()]).active


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{", "not valid JSON"),
        ('{"mcpServers": {}}', "no enabled server"),
        ('{"mcpServers": {"a": {"args": []}}}', "mcpServers.a: Value error, give either command"),
        ('{"mcpServers": {"a__b": {"command": "x"}}}', "must not contain '__'"),
        ('{"mcpServers": {"a": {"command": "x"}}, "mcpGuard": {"alowMethods": []}}', "mcpGuard.alowMethods: Extra inputs"),
        ('{"mcpServers": {"a": {"url": "ftp://x"}}}', "url must start with http"),
    ],
    ids=["bad-json", "no-servers", "no-command", "bad-name", "typo", "bad-url"],
)
def test_bad_configs_are_refused_with_the_file_and_field(tmp_path, body: str, message: str) -> None:
    import subprocess
    import sys

    path = tmp_path / "bad.json"
    path.write_text(body)
    done = subprocess.run([sys.executable, "-m", "mcp_guard", "run", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert str(path) in done.stderr
    assert message in done.stderr

"""The client matrix: real MCP clients from npm and PyPI, no model, each through the guard.

Every client lists tools, calls one, sees the canary in the result only as placeholders, and has
a denied call refused (the file is never written), over `run` (stdio) and `serve` (HTTP) where
the client speaks both. Where a client answers elicitation, the approval question reaches it:
accept lets the call run, decline refuses it. The README's table of clients is what these show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.clients.common import Scene, client_env, node, node_bin, scene, served
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio

TS_CLIENT = ROOT / "tests" / "clients" / "ts_client.mjs"
LIMIT = 90  # seconds for one client run: Node clients start slowly on a busy 2-core machine


async def run_json(argv: list[str], env: dict[str, str], ok: bool = True, every: bool = False) -> Any:
    """Run a client to its end and parse its last JSON line (``every``: all of them, in order);
    ``ok=False`` expects it to exit non-zero, reporting a failure."""
    with anyio.fail_after(LIMIT):
        done = await anyio.run_process(argv, env=env, check=False)
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    assert (done.returncode == 0) is ok, f"{argv[:3]} exited {done.returncode}: {err[-1500:]}"
    lines = [line for line in (out + "\n" + err).splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines] if every else json.loads(lines[-1])


def assert_masked(s: Scene, text: str) -> None:
    assert not s.leaked(text), "the canary reached the client unmasked"
    assert "<EMAIL_1>" in text and "<SECRET_1>" in text, text


# --- MCP Inspector CLI (npm @modelcontextprotocol/inspector --cli) -----------------------------------


def inspector(target: list[str], era: str, *method: str) -> list[str]:
    return [node_bin("mcp-inspector"), "--cli", *target, *method, "--protocol-era", era, "--format", "json"]


@pytest.mark.parametrize("era", ["legacy", "modern"])
@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_inspector_cli_lists_calls_sees_masking_and_cannot_write(tmp_path: Path, front: str, era: str) -> None:
    s = scene(tmp_path)
    env = client_env(tmp_path / "home")

    async def drive(target: list[str]) -> None:
        listed = await run_json(inspector(target, era, "--method", "tools/list"), env)
        names = {tool["name"] for tool in listed["result"]["tools"]}
        assert "read_text_file" in names
        assert "write_file" not in names  # denied outright, so hidden
        read = await run_json(inspector(target, era, "--method", "tools/call", "--tool-name", "read_text_file",
                                        "--tool-arg", f"path={s.note}"), env)
        assert_masked(s, json.dumps(read))
        write = await run_json(inspector(target, era, "--method", "tools/call", "--tool-name", "write_file",
                                         "--tool-arg", f"path={s.written}", "content=x"), env, ok=False)
        assert "error" in write, write

    if front == "stdio":
        await drive(s.run())
    else:
        async with served(s) as url:
            await drive([url])
    assert not s.written.exists()


# --- The official TypeScript SDK's Client (npm @modelcontextprotocol/sdk) ----------------------------


def ts_plan(s: Scene, server: dict[str, Any], elicit: str | None = None, mkdir: bool = False) -> str:
    calls: list[dict[str, Any]] = [
        {"name": "read_text_file", "arguments": {"path": s.note}},
        {"name": "write_file", "arguments": {"path": str(s.written), "content": "x"}},
    ]
    if mkdir:
        calls = [{"name": "create_directory", "arguments": {"path": str(s.made)}}]
    return json.dumps({"server": server, "elicit": elicit, "calls": calls})


def stdio_server(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    return {"command": argv[0], "args": argv[1:], "env": env}


@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_typescript_sdk_client_lists_calls_sees_masking_and_a_refused_write(tmp_path: Path, front: str) -> None:
    s = scene(tmp_path)
    env = client_env(tmp_path / "home")
    if front == "stdio":
        out = await run_json([node(), str(TS_CLIENT), ts_plan(s, stdio_server(s.run(), env))], env)
    else:
        async with served(s) as url:
            out = await run_json([node(), str(TS_CLIENT), ts_plan(s, {"url": url})], env)
    assert "read_text_file" in out["tools"] and "write_file" not in out["tools"]
    read, write = out["results"]
    assert not read["isError"]
    assert_masked(s, read["text"])
    # The TS client calls by name without checking the list: the guard itself refuses.
    assert write["isError"] and "not run" in write["text"]
    assert not s.written.exists()
    assert out["protocol"] == "2025-11-25"


@pytest.mark.parametrize("front", ["stdio", "http"])
@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_typescript_sdk_client_gets_the_approval_question_and_its_answer_decides(
    tmp_path: Path, front: str, answer: str
) -> None:
    s = scene(tmp_path)
    env = client_env(tmp_path / "home")
    if front == "stdio":
        out = await run_json([node(), str(TS_CLIENT), ts_plan(s, stdio_server(s.run(), env), answer, mkdir=True)], env)
    else:
        async with served(s) as url:
            out = await run_json([node(), str(TS_CLIENT), ts_plan(s, {"url": url}, answer, mkdir=True)], env)
    [question] = out["questions"]
    assert "create_directory" in question and "matrix-ask-before-mkdir" in question
    [made] = out["results"]
    assert s.made.is_dir() is (answer == "accept")
    assert made["isError"] is (answer != "accept")


# --- FastMCP's Client (PyPI fastmcp) -----------------------------------------------------------------


def fastmcp_target(s: Scene, env: dict[str, str]) -> Any:
    from fastmcp.client.transports import StdioTransport

    argv = s.run()
    return StdioTransport(command=argv[0], args=argv[1:], env=env)


class Answer:
    """FastMCP's elicitation handler: accept with every boolean field ticked, or decline; counts questions."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.questions: list[str] = []

    async def __call__(self, message: str, response_type: Any, params: Any, ctx: Any) -> Any:
        import mcp_types as types

        self.questions.append(message)
        if self.action != "accept":
            return types.ElicitResult(action=self.action)  # type: ignore[arg-type]
        props = (params.requested_schema or {}).get("properties", {})
        return {key: True for key, schema in props.items() if schema.get("type") == "boolean"}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_fastmcp_client_lists_calls_sees_masking_and_a_refused_write(
    tmp_path: Path, front: str, mode: str
) -> None:
    from fastmcp import Client

    s = scene(tmp_path)
    env = client_env(tmp_path / "home")

    async def drive(target: Any) -> None:
        async with Client(target, mode=mode) as client:
            names = {tool.name for tool in await client.list_tools()}
            read = await client.call_tool("read_text_file", {"path": s.note}, raise_on_error=False)
            write = await client.call_tool("write_file", {"path": str(s.written), "content": "x"}, raise_on_error=False)
            assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        assert "read_text_file" in names and "write_file" not in names
        assert not read.is_error
        assert_masked(s, json.dumps([c.model_dump(mode="json") for c in read.content]))
        assert write.is_error and "not run" in write.content[0].text  # type: ignore[union-attr]

    with anyio.fail_after(LIMIT):
        if front == "stdio":
            await drive(fastmcp_target(s, env))
        else:
            async with served(s) as url:
                await drive(url)
    assert not s.written.exists()


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("front", ["stdio", "http"])
@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_fastmcp_client_gets_the_approval_question_and_its_answer_decides(
    tmp_path: Path, front: str, mode: str, answer: str
) -> None:
    from fastmcp import Client

    s = scene(tmp_path)
    person = Answer(answer)

    async def drive(target: Any) -> Any:
        async with Client(target, mode=mode, elicitation_handler=person) as client:
            return await client.call_tool("create_directory", {"path": str(s.made)}, raise_on_error=False)

    with anyio.fail_after(LIMIT):
        if front == "stdio":
            result = await drive(fastmcp_target(s, client_env(tmp_path / "home")))
        else:
            async with served(s) as url:
                result = await drive(url)
    [question] = person.questions
    assert "create_directory" in question and "matrix-ask-before-mkdir" in question
    assert s.made.is_dir() is (answer == "accept")
    assert result.is_error is (answer != "accept")


# --- mcp-remote (npm): a stdio client's bridge to the guard's HTTP front -----------------------------


async def test_mcp_remote_bridges_a_stdio_client_to_serve_with_masking_denial_and_approval(tmp_path: Path) -> None:
    s = scene(tmp_path)
    # mcp-remote keeps OAuth state under ~/.mcp-auth: a throwaway HOME keeps it out of the user's.
    env = client_env(tmp_path / "home")
    async with served(s) as url:
        bridge = stdio_server([node_bin("mcp-remote"), url, "--transport", "http-only"], env)
        plan = json.loads(ts_plan(s, bridge, "accept"))
        plan["calls"].append({"name": "create_directory", "arguments": {"path": str(s.made)}})
        out = await run_json([node(), str(TS_CLIENT), json.dumps(plan)], env)
    assert "read_text_file" in out["tools"] and "write_file" not in out["tools"]
    read, write, made = out["results"]
    assert_masked(s, read["text"])
    assert write["isError"] and "not run" in write["text"]
    assert not s.written.exists()
    # mcp-remote relays the guard's elicitation to the client behind it.
    assert len(out["questions"]) == 1 and not made["isError"] and s.made.is_dir()


@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_mcp_remote_relays_the_approval_question_to_the_client_behind_it(tmp_path: Path, answer: str) -> None:
    s = scene(tmp_path)
    env = client_env(tmp_path / "home")
    async with served(s) as url:
        bridge = stdio_server([node_bin("mcp-remote"), url, "--transport", "http-only"], env)
        out = await run_json([node(), str(TS_CLIENT), ts_plan(s, bridge, answer, mkdir=True)], env)
    [question] = out["questions"]
    assert "create_directory" in question
    [made] = out["results"]
    assert s.made.is_dir() is (answer == "accept")
    assert made["isError"] is (answer != "accept")


# --- A client that cannot be asked: the approval goes out of band -----------------------------------


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_inspector_cli_without_elicitation_is_decided_out_of_band_and_the_retry_follows_the_decision(
    tmp_path: Path, guard_home: Path, decision: str
) -> None:
    import getpass
    import re

    from tests.reviewing import review

    s = scene(tmp_path)
    # Answer "waiting" at once rather than after the default wait, so the client gets the message.
    s.policy.write_text(s.policy.read_text().replace("min_human_ms: 0}", "min_human_ms: 0, wait: 0}"))
    env = client_env(tmp_path / "home")
    async with served(s) as url:
        mkdir = inspector([url], "legacy", "--method", "tools/call", "--tool-name", "create_directory",
                          "--tool-arg", f"path={s.made}")
        first = await run_json(mkdir, env, ok=False, every=True)
        text = json.dumps(first)
        found = re.search(r"waiting for the user's approval \(request ([0-9a-f]+)\)", text)
        assert found, text
        assert not s.made.exists()
        # The rule's approver is the user: the OS user who runs the guard, with their own reviewer token.
        decided = review(guard_home, decision, found.group(1), "--as", getpass.getuser())
        assert decided.returncode == 0, decided.stderr
        retry = await run_json(mkdir, env, ok=decision == "approve", every=True)
    assert s.made.is_dir() is (decision == "approve")
    if decision == "deny":
        said = json.dumps(retry)
        assert "not run" in said and "waiting for the user" not in said, retry

"""Callers of `mcp-guard serve` cannot reach each other: processes, capabilities, server-to-client
requests, notifications and vaults are per client session (issue: a relay that cannot leak)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import mcp_types as types
from mcp import Client
from tests.conftest import FIXTURES, PY, background, free_port

pytestmark = pytest.mark.anyio


def tenant() -> list[str]:
    return [PY, str(FIXTURES / "tenant_server.py")]


def serve(port: int, *extra: str) -> list[str]:
    return [PY, "-m", "mcp_guard", "serve", "--port", str(port), *extra]


def served_with_config(port: int, config: Path) -> list[str]:
    return serve(port, "--no-policy", "--config", str(config))


def text(result: Any) -> str:
    return result.content[0].text  # type: ignore[no-any-return]


def canary_key() -> str:
    return "AKIA" + "TENANTCANARY" + "7Q2X"  # built here, so no raw key sits in the source


class Recorder:
    """A client's callbacks, recording what reached this client and nothing else."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[str] = []
        self.logs: list[Any] = []
        self.got_log = anyio.Event()

    async def elicit(self, ctx: Any, params: Any) -> types.ElicitResult:
        self.asked.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": self.answer})

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params.data)
        self.got_log.set()


def client(url: str, recorder: Recorder | None = None, *, elicit: bool = True) -> Client:
    kwargs: dict[str, Any] = {}
    if recorder is not None:
        kwargs["logging_callback"] = recorder.log
        if elicit:
            kwargs["elicitation_callback"] = recorder.elicit
    return Client(url, mode="legacy", cache=None, **kwargs)  # type: ignore[arg-type]


async def test_each_http_session_gets_its_own_upstream_process_with_its_own_capabilities() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    async with background(serve(port, "--no-policy", "--", *tenant()), f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(30):
            async with client(url, Recorder("a"), elicit=False) as plain, client(url, Recorder("b")) as asking:
                first = json.loads(text(await plain.call_tool("whoami", {})))
                second = json.loads(text(await asking.call_tool("whoami", {})))
                assert first["pid"] != second["pid"]
                assert "elicitation" not in first["capabilities"]
                assert "elicitation" in second["capabilities"]
                # The second client is offered what its own capabilities allow, not the first's.
                assert "ask_user" in {t.name for t in (await asking.list_tools()).tools}
                assert "ask_user" not in {t.name for t in (await plain.list_tools()).tools}
                # State kept by one session's server is not the other's.
                await plain.call_tool("remember", {"text": "mine"})
                assert text(await asking.call_tool("recall", {})) == ""


async def test_an_elicitation_during_one_callers_call_reaches_only_that_caller(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    release, ask_now = tmp_path / "release", tmp_path / "ask-now"
    alice, bob = Recorder("from-alice"), Recorder("from-bob")
    answers: list[str] = []
    answered = anyio.Event()

    async def alice_asks(a: Client) -> None:
        answers.append(text(await a.call_tool("ask_user", {"question": "for alice only", "after": str(ask_now)})))
        answered.set()

    async with background(serve(port, "--no-policy", "--", *tenant()), f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(30):
            async with client(url, alice) as a, client(url, bob) as b:
                await b.set_logging_level("info")
                async with anyio.create_task_group() as tg:
                    tg.start_soon(alice_asks, a)
                    await a.call_tool("whoami", {})  # Alice's question is in flight before Bob's call
                    tg.start_soon(b.call_tool, "hold", {"path": str(release)})
                    await bob.got_log.wait()  # Bob's call is the newest in flight now
                    ask_now.write_text("go")
                    await answered.wait()
                    release.write_text("go")
    assert alice.asked == ["for alice only"]
    assert bob.asked == []
    assert json.loads(answers[0])["content"] == {"answer": "from-alice"}


async def test_a_log_notification_reaches_only_the_session_whose_server_sent_it() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    alice, bob = Recorder("a"), Recorder("b")
    secret = canary_key()
    async with background(serve(port, "--no-policy", "--", *tenant()), f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(30):
            async with client(url, alice) as a, client(url, bob) as b:
                await a.set_logging_level("info")
                await b.set_logging_level("info")
                await a.call_tool("shout", {"text": f"alice's {secret}"})
                await alice.got_log.wait()
                await b.call_tool("shout", {"text": "bob's line"})
                await bob.got_log.wait()
    assert all("bob" not in str(line) for line in alice.logs)
    assert all(secret not in str(line) and "alice" not in str(line) for line in bob.logs)


def allow_all(tmp_path: Path) -> Path:
    policy = tmp_path / "allow.yaml"
    policy.write_text("version: 1\nrules:\n  - match: {tool: '*'}\n    action: allow\n", encoding="utf-8")
    return policy


async def test_a_placeholder_from_one_http_session_is_never_rehydrated_in_another(tmp_path: Path, guard_home: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    secret = canary_key()
    argv = serve(port, "--policy", str(allow_all(tmp_path)), "--", *tenant())
    async with background(argv, f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(30):
            async with client(url) as a, client(url) as b:
                await a.call_tool("remember", {"text": secret})
                placeholder = text(await a.call_tool("recall", {}))
                assert placeholder.startswith("<SECRET_")
                await b.call_tool("remember", {"text": placeholder})
                assert text(await b.call_tool("memory_size", {})) == str(len(placeholder))
                await a.call_tool("remember", {"text": placeholder})  # toward its origin, in its own session
                assert text(await a.call_tool("memory_size", {})) == str(len(secret))


async def test_a_stateless_2026_caller_gets_no_rehydration_across_exchanges(tmp_path: Path, guard_home: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    secret = canary_key()
    argv = serve(port, "--policy", str(allow_all(tmp_path)), "--", *tenant())
    async with background(argv, f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(30):
            async with Client(url, mode="2026-07-28", cache=None) as a, Client(url, mode="2026-07-28", cache=None) as b:
                placeholder = text(await a.call_tool("say", {"text": secret}))
                assert placeholder.startswith("<SECRET_")
                # Another caller (or the same one: nothing tells them apart) sends it back.
                for caller in (b, a):
                    assert text(await caller.call_tool("size_of", {"text": placeholder})) == str(len(placeholder))


async def test_each_bridged_call_of_a_stateless_2026_caller_gets_a_process_of_its_own() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    async with background(serve(port, "--no-policy", "--", *tenant()), f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(30):
            async with Client(url, mode="2026-07-28", cache=None) as a:
                first = json.loads(text(await a.call_tool("whoami", {})))["pid"]
                second = json.loads(text(await a.call_tool("whoami", {})))["pid"]
    assert first != second
    assert not Path(f"/proc/{first}").exists() or Path(f"/proc/{first}/status").read_text().find("zombie") >= 0


async def test_a_shared_server_refuses_a_request_it_cannot_tie_to_one_call(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    release = tmp_path / "release"
    config = tmp_path / "servers.json"
    command = tenant()
    entry = {"command": command[0], "args": command[1:], "isolation": "shared"}
    config.write_text(json.dumps({"mcpServers": {"tenant": entry}}), encoding="utf-8")
    alice, bob = Recorder("from-alice"), Recorder("from-bob")
    async with background(served_with_config(port, config), f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(30):
            async with client(url, alice) as a, client(url, bob) as b, anyio.create_task_group() as tg:
                pids = {json.loads(text(await c.call_tool("whoami", {})))["pid"] for c in (a, b)}
                assert len(pids) == 1  # one process, as the operator asked
                tg.start_soon(b.call_tool, "hold", {"path": str(release)})
                await a.call_tool("whoami", {})  # Bob's hold is in flight on the server by now
                answer = text(await a.call_tool("ask_user", {"question": "whose?"}))
                release.write_text("go")
    assert alice.asked == [] and bob.asked == []
    assert "cannot tie" in json.dumps(json.loads(answer))


async def test_an_idle_http_session_is_closed_and_its_upstream_process_stopped(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    config = tmp_path / "servers.json"
    command = tenant()
    config.write_text(
        json.dumps({"mcpServers": {"tenant": {"command": command[0], "args": command[1:]}}, "mcpGuard": {"sessionIdleTimeout": 0.5}}),
        encoding="utf-8",
    )
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with background(served_with_config(port, config), f"http://127.0.0.1:{port}/healthz"):
        async with httpx.AsyncClient(timeout=10) as http:
            opened = await http.post(url, json=init, headers=headers)
            sid = opened.headers["mcp-session-id"]
            answered = await http.post(url, json=call, headers={"Accept": "application/json", "mcp-session-id": sid})
            pid = json.loads(answered.json()["result"]["content"][0]["text"])["pid"]
            with anyio.fail_after(20):
                while Path(f"/proc/{pid}").exists():
                    await anyio.sleep(0.05)
                gone = await http.post(url, json=call, headers={"Accept": "application/json", "mcp-session-id": sid})
    assert gone.status_code == 404

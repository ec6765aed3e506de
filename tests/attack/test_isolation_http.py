"""Red team, promise 1 (isolation under `mcp-guard serve`): what a server sends that is not tied to one
call (a log line or a question raised after the call that caused it was answered) must never reach
another caller merely because that caller had a call in flight; shared processes keep callers'
vaults and answers apart."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp import Client
from tests.conftest import FIXTURES, PY, background, free_port
from tests.relay.test_isolation import Recorder, canary_key, text

pytestmark = pytest.mark.anyio


def atk_tenant() -> list[str]:
    return [PY, str(FIXTURES / "attack_tenant.py")]


def tenant() -> list[str]:
    return [PY, str(FIXTURES / "tenant_server.py")]


def allow_all(tmp_path: Path) -> Path:
    policy = tmp_path / "allow.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n", encoding="utf-8")
    return policy


@asynccontextmanager
async def served(tmp_path: Path, command: list[str], shared: bool) -> AsyncIterator[str]:
    port = free_port()
    config = tmp_path / "servers.json"
    entry: dict[str, Any] = {"command": command[0], "args": command[1:]}
    if shared:
        entry["isolation"] = "shared"
    config.write_text(json.dumps({"mcpServers": {"tenant": entry}}), encoding="utf-8")
    argv = [PY, "-m", "mcp_guard", "serve", "--port", str(port), "--policy", str(allow_all(tmp_path)),
            "--config", str(config)]
    async with background(argv, f"http://127.0.0.1:{port}/healthz"):
        yield f"http://127.0.0.1:{port}/mcp"


def client(url: str, recorder: Recorder, mode: str) -> Client:
    return Client(url, mode=mode, cache=None, logging_callback=recorder.log,  # type: ignore[arg-type]
                  elicitation_callback=recorder.elicit)


async def _appears(path: Path) -> None:
    while not path.exists():
        await anyio.sleep(0.02)


async def _same_process(a: Client, b: Client) -> bool:
    pids = {json.loads(text(await c.call_tool("whoami", {})))["pid"] for c in (a, b)}
    return len(pids) == 1


CASES = [("legacy", True), ("2026-07-28", False), ("2026-07-28", True)]
IDS = ["shared-handshake", "stateless-2026", "shared-2026"]


@pytest.mark.parametrize(("mode", "shared"), CASES, ids=IDS)
async def test_a_log_sent_after_alices_call_never_reaches_bobs_call_in_flight(
    tmp_path: Path, mode: str, shared: bool
) -> None:
    alice, bob = Recorder("from-alice"), Recorder("from-bob")
    secret = canary_key()
    go, done, started = tmp_path / "go", tmp_path / "done", tmp_path / "started"
    async with served(tmp_path, atk_tenant(), shared) as url:
        with anyio.fail_after(40):
            async with client(url, alice, mode) as a, client(url, bob, mode) as b:
                if mode == "legacy":
                    await a.set_logging_level("info")
                    await b.set_logging_level("info")
                # Stateless 2026 callers get a process per bridged call: isolated by construction.
                assert await _same_process(a, b) or (mode != "legacy" and not shared)
                async with anyio.create_task_group() as tg:
                    # Bob's call stays in flight until Alice's background log line has been sent.
                    tg.start_soon(b.call_tool, "hold", {"path": str(done), "started": str(started), "tag": "bob"})
                    await _appears(started)
                    await a.call_tool("late_shout", {"text": f"alice's {secret}", "after": str(go), "done": str(done)})
                    go.write_text("go")
    assert all(secret not in str(line) for line in bob.logs), "Alice's log line reached Bob"


@pytest.mark.parametrize(("mode", "shared"), CASES, ids=IDS)
async def test_a_question_raised_after_alices_call_is_never_put_to_bob(tmp_path: Path, mode: str, shared: bool) -> None:
    alice, bob = Recorder("from-alice"), Recorder("from-bob")
    question = f"alice's question {secrets.token_hex(4)}"
    go, done, started = tmp_path / "go", tmp_path / "done", tmp_path / "started"
    async with served(tmp_path, atk_tenant(), shared) as url:
        with anyio.fail_after(40):
            async with client(url, alice, mode) as a, client(url, bob, mode) as b:
                # Stateless 2026 callers get a process per bridged call: isolated by construction.
                same = await _same_process(a, b)
                assert same or (mode != "legacy" and not shared)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(b.call_tool, "hold", {"path": str(done), "started": str(started), "tag": "bob"})
                    await _appears(started)
                    await a.call_tool("late_ask", {"question": question, "after": str(go), "done": str(done)})
                    go.write_text("go")
                    if not same:  # Alice's process ended with her call: no job of hers is left to ask
                        done.write_text("")
    assert question not in bob.asked, "Alice's server asked Bob"
    assert "from-bob" not in done.read_text(), "Bob's answer reached the server as Alice's"


async def test_a_placeholder_from_one_caller_is_never_rehydrated_for_another_on_a_shared_server(tmp_path: Path) -> None:
    secret = canary_key()
    async with served(tmp_path, tenant(), shared=True) as url:
        with anyio.fail_after(30):
            async with client(url, Recorder("a"), "legacy") as a, client(url, Recorder("b"), "legacy") as b:
                await a.call_tool("remember", {"text": secret})
                placeholder = text(await a.call_tool("recall", {}))
                assert placeholder.startswith("<SECRET_")
                await a.call_tool("remember", {"text": "reset"})
                await b.call_tool("remember", {"text": placeholder})
                assert text(await b.call_tool("memory_size", {})) == str(len(placeholder))


@pytest.mark.parametrize(("mode", "shared"), CASES, ids=IDS)
async def test_two_callers_using_the_same_request_id_on_one_process_each_get_their_own_answer(
    tmp_path: Path, mode: str, shared: bool
) -> None:
    release = tmp_path / "release"
    got: dict[str, str] = {}
    async with served(tmp_path, atk_tenant(), shared=shared) as url:
        with anyio.fail_after(30):
            async with client(url, Recorder("a"), mode) as a, client(url, Recorder("b"), mode) as b:

                async def hold(c: Client, tag: str, started: Path) -> None:
                    got[tag] = text(await c.call_tool("hold", {"path": str(release), "tag": tag, "started": str(started)}))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(hold, a, "alice", tmp_path / "a-started")
                    tg.start_soon(hold, b, "bob", tmp_path / "b-started")
                    await _appears(tmp_path / "a-started")
                    await _appears(tmp_path / "b-started")
                    release.write_text("go")
    assert got == {"alice": "released alice", "bob": "released bob"}


async def test_a_2026_caller_can_call_a_tool_on_a_shared_server(tmp_path: Path) -> None:
    async with served(tmp_path, atk_tenant(), shared=True) as url:
        with anyio.fail_after(30):
            async with Client(url, mode="2026-07-28", cache=None) as a:
                assert "pid" in json.loads(text(await a.call_tool("whoami", {})))


@pytest.mark.parametrize(("mode", "shared"), CASES, ids=IDS)
async def test_progress_from_one_process_reaches_only_the_caller_whose_call_it_reports(
    tmp_path: Path, mode: str, shared: bool
) -> None:
    release = tmp_path / "release"
    seen: dict[str, list[str]] = {"alice": [], "bob": []}
    async with served(tmp_path, atk_tenant(), shared=shared) as url:
        with anyio.fail_after(30):
            async with client(url, Recorder("a"), mode) as a, client(url, Recorder("b"), mode) as b:

                async def run(c: Client, tag: str) -> None:
                    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                        seen[tag].append(str(message))
                    started = tmp_path / f"{tag}-started"
                    await c.call_tool("progress", {"text": f"{tag}'s progress", "path": str(release),
                                                   "started": str(started)}, progress_callback=on_progress)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(run, a, "alice")
                    tg.start_soon(run, b, "bob")
                    await _appears(tmp_path / "alice-started")
                    await _appears(tmp_path / "bob-started")
                    release.write_text("go")
    assert all("bob" not in m for m in seen["alice"]) and all("alice" not in m for m in seen["bob"]), seen
    assert seen["alice"] and seen["bob"], f"progress is relayed, each to its own caller: {seen}"


async def test_a_log_sent_outside_any_call_reaches_its_own_session_masked(tmp_path: Path) -> None:
    alice = Recorder("a")
    secret = canary_key()
    go, done = tmp_path / "go", tmp_path / "done"
    async with served(tmp_path, atk_tenant(), shared=False) as url:
        with anyio.fail_after(30):
            async with client(url, alice, "legacy") as a:
                await a.set_logging_level("info")
                await a.call_tool("late_shout", {"text": f"late {secret}", "after": str(go), "done": str(done)})
                go.write_text("go")
                await alice.got_log.wait()
    assert all(secret not in str(line) for line in alice.logs), "a log line outside a call reached the client raw"

"""An instance behind HAProxy dies (SIGKILL) while a call runs on it.

Its client gets an error, not a hang; the call is not run again anywhere (the upstream logs
every execution); the other instance serves new sessions; the shared audit still verifies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_guard.audit import digest, load_key
from mcp_guard.protocol import era
from tests.instances.gateway import open_gateway, text_of
from tests.instances.test_balanced import ALLOW, REVIEWED, policy, where

pytestmark = pytest.mark.anyio


async def test_an_instance_killed_mid_call_fails_that_call_runs_nothing_twice_and_the_other_serves_on(
    tmp_path: Path, postgres_url: str
) -> None:
    release = tmp_path / "release"  # the held call would finish once this exists
    outcome: list[Any] = []
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(60):
            async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                holder = await where(client)
                survivor = "b" if holder == "a" else "a"

                async def call() -> None:
                    try:
                        outcome.append(await client.call_tool("run_once", {"tag": "in-flight", "hold": str(release)}))
                    except Exception as exc:  # the transport's error is an answer too, a hang is not
                        outcome.append(exc)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    while not gateway.runs():
                        await anyio.sleep(0.02)
                    dead_pid = gateway.instances[holder].kill()
                # The session died with its instance: HAProxy sends its next request to the other,
                # which does not know it (404, "Mcp-Session-Id"), or, before its health check has
                # seen the death, to the dead one (503); either way the client hears so at once.
                with pytest.raises(MCPError, match="Mcp-Session-Id|error response"):
                    await client.call_tool("where", {})
            release.touch()  # a replay of the call anywhere would now run to the end and be logged
            async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                assert await where(client) == survivor
                assert text_of(await client.call_tool("run_once", {"tag": "after"})) == "ran after"
        assert len(outcome) == 1
        assert isinstance(outcome[0], Exception) or outcome[0].is_error, outcome[0]
        assert gateway.runs() == [{"tag": "in-flight", "instance": holder}, {"tag": "after", "instance": survivor}]
        verified = gateway.cli(survivor, "audit", "verify")
        assert verified.returncode == 0, verified.stderr
        # The dead instance's machine, once it is back (a restart folds what it spooled), verifies too.
        verified = gateway.cli(holder, "audit", "verify")
        assert verified.returncode == 0, verified.stderr
        records = [json.loads(line) for line in gateway.cli(survivor, "audit", "export").stdout.splitlines()]
    key = load_key(gateway.instances[holder].home)
    held = digest(key, {"tag": "in-flight", "hold": str(release)})
    forwarded = [r for r in records if r["kind"] == "call.forwarded" and r["body"].get("arguments_digest") == held]
    assert len(forwarded) == 1, "the call that reached the upstream is in the chain, once"
    closed = {r["body"]["spool"]: r["body"]["by"] for r in records if r["kind"] == "audit.spool_closed"}
    assert [by for name, by in closed.items() if f"-{dead_pid}-" in name] == ["recovery"]


async def test_a_review_request_of_a_killed_instance_is_cancelled_and_cannot_be_approved_into_a_run(
    tmp_path: Path, postgres_url: str
) -> None:
    """Its caller is gone with the instance: the other instance (on this host) marks the request
    cancelled, so a reviewer's late approval runs nothing and grants nothing."""
    outcome: list[Any] = []
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, REVIEWED)) as gateway:
        alice = gateway.cli("a", "review", "token", "create", "alice", "--role", "secops").stdout.strip()
        auth = {"Authorization": f"Bearer {alice}"}
        with anyio.fail_after(60):
            async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                holder = await where(client)
                survivor = gateway.instances["b" if holder == "a" else "a"]

                async def call() -> None:
                    try:
                        outcome.append(await client.call_tool("run_once", {"tag": "never-approved"}))
                    except Exception as exc:
                        outcome.append(exc)

                async with anyio.create_task_group() as tg, httpx.AsyncClient(base_url=survivor.base) as http:
                    tg.start_soon(call)
                    while not (pending := (await http.get("/api/review/pending", headers=auth)).json()):
                        await anyio.sleep(0.05)
                    gateway.instances[holder].kill()
                    rid = pending[0]["id"]
                    while (await http.get("/api/review/pending", headers=auth)).json():
                        await anyio.sleep(0.05)
                    late = await http.post(f"/api/review/{rid}/approve", headers=auth, json={})
            async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                # The same call again, on the survivor: no grant came of the late approval.
                async with anyio.create_task_group() as tg, httpx.AsyncClient(base_url=survivor.base) as http:
                    tg.start_soon(client.call_tool, "run_once", {"tag": "never-approved"})
                    while not (again := (await http.get("/api/review/pending", headers=auth)).json()):
                        await anyio.sleep(0.05)
                    assert again[0]["id"] != rid
                    denied = await http.post(f"/api/review/{again[0]['id']}/deny", headers=auth, json={})
                    assert denied.status_code == 200, denied.text
        shown = json.loads(gateway.cli(survivor.name, "review", "show", rid, "--json").stdout)
    assert late.status_code == 409, late.text
    assert shown["state"] == "cancelled"
    assert len(outcome) == 1 and (isinstance(outcome[0], Exception) or outcome[0].is_error)
    assert gateway.runs() == []


async def test_a_2026_call_whose_instance_dies_before_any_answer_byte_is_not_replayed_on_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    """A JSON-only 2026 request gets no answer byte until the call ends, so to HAProxy the killed
    instance sent an empty response: a balancer that retried that (``retry-on empty-response``,
    part of ``all-retryable-errors``) would run the call again on the other instance."""
    release = tmp_path / "release"
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "run_once", "arguments": {"tag": "json-only", "hold": str(release)},
                       "_meta": {era.PROTOCOL_KEY: "2026-07-28"}}}
    headers = {"Accept": "application/json", "Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
               "Mcp-Name": "run_once"}
    answers: list[httpx.Response] = []
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(60):
            async with httpx.AsyncClient(timeout=60) as http:

                async def post() -> None:
                    answers.append(await http.post(gateway.url, json=call, headers=headers))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(post)
                    while not gateway.runs():
                        await anyio.sleep(0.02)
                    gateway.instances[gateway.runs()[0]["instance"]].kill()
                release.touch()
                again = await http.post(gateway.url, json={**call, "id": 8}, headers=headers)
    assert answers[0].status_code >= 500, answers[0].text
    assert again.status_code == 200 and "ran json-only" in again.text, again.text
    ran = [run["instance"] for run in gateway.runs() if run["tag"] == "json-only"]
    assert len(ran) == 2 and ran[0] != ran[1], "once on the dead instance, once more only when asked again"

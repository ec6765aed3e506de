"""Two serve instances behind HAProxy on one PostgreSQL store: routing, shared review, shared audit.

Every client here talks only to the load balancer (tests/instances/gateway.py); which instance
ran a call is what the upstream fixture says (``where``)."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import mcp_types as types
from mcp import Client
from tests.instances.gateway import Gateway, open_gateway, text_of

pytestmark = pytest.mark.anyio

ALLOW = "version: 1\ndefaults: {action: allow}\nrules: []\n"
REVIEWED = """version: 1
defaults: {action: allow}
groups: {secops: [alice]}
rules:
  - name: runs-are-reviewed
    match: {tool: run_once}
    action: approve
    approvers: reviewers
    group: secops
"""
SESSIONS = 12
CALLS_PER_SESSION = 4


def policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


async def where(client: Client) -> str:
    return str(json.loads(text_of(await client.call_tool("where", {})))["instance"])


async def test_handshake_sessions_stick_to_the_instance_that_created_them_and_keep_their_own_state(
    tmp_path: Path, postgres_url: str
) -> None:
    seen: dict[int, set[str]] = {}
    recalled: dict[int, str] = {}

    async def session(gateway: Gateway, n: int) -> None:
        async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
            assert text_of(await client.call_tool("remember", {"text": f"session-{n}"})) == "remembered"
            seen[n] = {await where(client) for _ in range(CALLS_PER_SESSION)}
            recalled[n] = text_of(await client.call_tool("recall", {}))

    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for n in range(SESSIONS):
                    tg.start_soon(session, gateway, n)
    assert recalled == {n: f"session-{n}" for n in range(SESSIONS)}
    assert all(len(instances) == 1 for instances in seen.values()), seen
    assert set().union(*seen.values()) == {"a", "b"}, "the load balancer sent every session to one instance"


async def test_2026_requests_are_answered_by_either_instance(tmp_path: Path, postgres_url: str) -> None:
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(120):
            async with Client(gateway.url, mode="2026-07-28", cache=None) as client:  # type: ignore[arg-type]
                answered = [await where(client) for _ in range(6)]
                tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"where", "run_once"} <= tools
    assert set(answered) == {"a", "b"}, answered


async def test_a_call_waiting_on_one_instance_is_released_by_a_review_decided_on_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    """The fallback poll is set far past the deadline: only NOTIFY can wake the waiting call in time."""
    result = []
    slow_poll = {"MCP_GUARD_PG_POLL_S": "600"}
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, REVIEWED), slow_poll) as gateway:
        alice = gateway.cli("a", "review", "token", "create", "alice", "--role", "secops").stdout.strip()
        auth = {"Authorization": f"Bearer {alice}"}
        with anyio.fail_after(60):
            async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                holder = await where(client)
                other = gateway.instances["b" if holder == "a" else "a"]

                async def call() -> None:
                    result.append(await client.call_tool("run_once", {"tag": "reviewed"}))

                async with anyio.create_task_group() as tg, httpx.AsyncClient(base_url=other.base) as http:
                    tg.start_soon(call)
                    while not (pending := (await http.get("/api/review/pending", headers=auth)).json()):
                        await anyio.sleep(0.05)
                    assert gateway.runs() == []
                    decided = await http.post(f"/api/review/{pending[0]['id']}/approve", headers=auth, json={})
                    assert decided.status_code == 200, decided.text
        assert not result[0].is_error, result[0]
        assert gateway.runs() == [{"tag": "reviewed", "instance": holder}]
        records = [json.loads(line) for line in gateway.cli(other.name, "audit", "export").stdout.splitlines()]
    finished = [r["body"] for r in records if r["kind"] == "call.finished" and r["body"].get("tool") == "run_once"]
    assert [(f["approver"], f["outcome"]) for f in finished] == [("alice", "completed")]


async def test_the_audit_of_both_instances_is_one_chain_that_verifies_from_either_home(
    tmp_path: Path, postgres_url: str
) -> None:
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(120):
            for _ in range(4):
                async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                    await where(client)
            running = {name: gateway.cli(name, "audit", "verify") for name in gateway.instances}
    for name, done in running.items():
        assert done.returncode == 0, f"verify from {name}'s home while both ran: {done.stderr}"
    for name in gateway.instances:
        done = gateway.cli(name, "audit", "verify")
        assert done.returncode == 0, f"verify from {name}'s home after both stopped: {done.stderr}"
    records = [json.loads(line) for line in gateway.cli("a", "audit", "export").stdout.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    spools = {r["body"]["spool"] for r in records if r["kind"] == "audit.spool_opened"}
    closed = {r["body"]["spool"] for r in records if r["kind"] == "audit.spool_closed"}
    assert len(spools) == 2 and closed == spools, "each instance's spool is announced and closed in the one chain"
    finished = [r for r in records if r["kind"] == "call.finished" and r["body"].get("tool") == "where"]
    assert len(finished) == 4


async def test_forged_session_ids_are_refused_by_every_instance_and_never_enter_the_stick_table(
    tmp_path: Path, postgres_url: str
) -> None:
    """Only the guards' answers fill HAProxy's table: a client cannot pin ids of its choosing
    to an instance, nor fill the table, nor reach a session by guessing."""
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    forged = [secrets.token_hex(16) for _ in range(20)] + ["../" * 20, "x" * 4000, "0" * 32]
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(60):
            async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                await where(client)
                assert gateway.stick_entries() == 1
                async with httpx.AsyncClient() as http:
                    for sid in forged:
                        headers = {"Mcp-Session-Id": sid, "Accept": "application/json, text/event-stream",
                                   "Mcp-Protocol-Version": "2025-11-25"}
                        answer = await http.post(gateway.url, json=listing, headers=headers)
                        assert answer.status_code == 404, (sid[:40], answer.status_code, answer.text)
                        assert "mcp-session-id" not in answer.headers
                assert gateway.stick_entries() == 1
                await where(client)  # the real session still works, on its own instance


async def test_a_reviewer_decides_on_the_page_behind_tls_termination_whichever_instance_answers(
    tmp_path: Path, postgres_url: str
) -> None:
    """HAProxy ends TLS, so the browser's Origin is https://<public name> while the guards speak
    plain HTTP; and the page's requests are balanced, so sign-in, page and form land on
    different instances (the reviewer session lives in the store, the form key is shared)."""
    result = []
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, REVIEWED)) as gateway:
        alice = gateway.cli("a", "review", "token", "create", "alice", "--role", "secops").stdout.strip()
        public = f"127.0.0.1:{gateway.lb_port}"
        browser = httpx.AsyncClient(base_url=f"http://{public}", headers={"Origin": f"https://{public}"})
        with anyio.fail_after(60):
            async with Client(gateway.url, mode="legacy", cache=None) as client, browser:  # type: ignore[arg-type]

                async def call() -> None:
                    result.append(await client.call_tool("run_once", {"tag": "from-the-page"}))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    signed_in = await browser.post("/review/login", data={"token": alice})
                    assert signed_in.status_code == 303, signed_in.text
                    while "run_once" not in (page := (await browser.get("/review")).text):
                        await anyio.sleep(0.05)
                    action = re.search(r"action='(/review/[^/']+/decide)'", page)
                    csrf = re.search(r"name='csrf' value='([^']+)'", page)
                    assert action and csrf, page
                    for _ in range(2):  # once on each instance: the first decides, the second finds it decided
                        form = {"csrf": csrf.group(1), "decision": "approve", "reason": "ok"}
                        decided = await browser.post(action.group(1), data=form)
                        assert decided.status_code in (303, 409), decided.text
    assert not result[0].is_error, result[0]
    assert [run["tag"] for run in gateway.runs()] == ["from-the-page"]


async def test_the_store_password_reaches_no_upstream_and_no_command_line(tmp_path: Path, postgres_url: str) -> None:
    """The deployment keeps the DSN, password included, in the guard's environment file: the
    upstream servers each instance starts must not inherit it (the test cluster trusts loopback,
    so any password connects, and a canary one shows where it went)."""
    canary = "pw-" + secrets.token_hex(12)
    with_password = postgres_url.replace("postgresql://guard@", f"postgresql://guard:{canary}@")
    async with open_gateway(tmp_path, with_password, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(60):
            async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                environment = json.loads(text_of(await client.call_tool("environment", {})))
        command_lines = [Path(f"/proc/{i.process.pid}/cmdline").read_bytes() for i in gateway.instances.values()
                         if i.process is not None]
    assert environment["GUARD_INSTANCE"] in ("a", "b")  # the upstream does inherit the guard's environment
    assert canary not in json.dumps(environment)
    assert not any(canary.encode() in line for line in command_lines)


async def test_a_client_is_offered_the_review_pages_public_link_not_the_instances_address(
    tmp_path: Path, postgres_url: str
) -> None:
    offered: list[str] = []

    async def on_elicit(ctx: Any, params: Any) -> Any:
        offered.append(str(getattr(params, "url", "")))
        return types.ElicitResult(action="accept")

    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, REVIEWED)) as gateway:
        alice = gateway.cli("a", "review", "token", "create", "alice", "--role", "secops").stdout.strip()
        auth = {"Authorization": f"Bearer {alice}"}
        with anyio.fail_after(60):
            async with Client(gateway.url, mode="legacy", cache=None,  # type: ignore[arg-type]
                              elicitation_callback=on_elicit) as client:
                async with anyio.create_task_group() as tg, httpx.AsyncClient(base_url=gateway.url[:-4]) as http:
                    tg.start_soon(client.call_tool, "run_once", {"tag": "linked"})
                    while not offered:
                        await anyio.sleep(0.05)
                    rid = (await http.get("/api/review/pending", headers=auth)).json()[0]["id"]
                    assert (await http.post(f"/api/review/{rid}/approve", headers=auth, json={})).status_code == 200
    assert offered == [f"http://127.0.0.1:{gateway.lb_port}/review#req-{rid}"]
    assert [run["tag"] for run in gateway.runs()] == ["linked"]

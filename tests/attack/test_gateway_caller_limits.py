"""Red team, serve's team gateway under `--auth tokens`: what one caller can hold, and what it can
take of another's.

* `--max-sessions-per-caller N` exists because each session runs upstream processes, so that "one
  token must not be able to exhaust the machine for everyone". A 2026-07-28 call to a
  handshake-era server also runs a process of its own (README: "runs on a process started for that
  call"), so the same caller may not be able to run more of them at once than the cap allows.
* A sealed `requestState` resumes only for the caller it was made for; another caller's retry with
  it is refused, and does not spend it for its owner.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.auth.support import FIXTURES, PY, bearer, create_token, gateway

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"


def modern(method: str, params: dict[str, Any], token: str, name: str | None = None, rid: int = 1,
           caps: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": caps or {},
    }
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**params, "_meta": meta}}
    headers = {"Accept": "application/json", "MCP-Protocol-Version": MODERN, "Mcp-Method": method, **bearer(token)}
    if name is not None:
        headers["Mcp-Name"] = name
    return body, headers


def processes_with(marker: str) -> int:
    """Live processes whose command line holds ``marker`` (the tenant servers of this test only)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    count += 1
        except OSError:
            continue
    return count


async def test_one_caller_cannot_run_more_upstream_processes_through_2026_calls_than_its_session_cap(
    tmp_path: Path,
) -> None:
    cap, calls = 2, 8
    marker = f"atk-{secrets.token_hex(6)}"
    gate = tmp_path / "release"
    alice = create_token("alice")
    server = {"command": PY, "args": [str(FIXTURES / "tenant_server.py"), marker]}
    answers: list[int] = []
    async with gateway(tmp_path, {"tenant": server}, options=["--max-sessions-per-caller", str(cap)]) as url:
        with anyio.fail_after(90):
            async with httpx.AsyncClient(timeout=60) as http:
                body, headers = modern("tools/list", {}, alice)
                assert (await http.post(url, json=body, headers=headers)).status_code == 200
                baseline = processes_with(marker)  # the shared hub's own process, for listings

                async def hold(rid: int) -> None:
                    body, headers = modern("tools/call", {"name": "hold", "arguments": {"path": str(gate)}}, alice,
                                           "hold", rid)
                    answers.append((await http.post(url, json=body, headers=headers)).status_code)

                async with anyio.create_task_group() as tg:
                    for rid in range(calls):
                        tg.start_soon(hold, rid + 10)
                    peak = baseline
                    with anyio.move_on_after(8):
                        while len(answers) < calls:
                            peak = max(peak, processes_with(marker))
                            await anyio.sleep(0.1)
                    gate.write_text("go")
    assert peak - baseline <= cap, (
        f"one caller capped at {cap} sessions ran {peak - baseline} upstream processes at once"
        f" through {calls} concurrent 2026-07-28 calls (answers: {sorted(answers)})"
    )


async def test_a_sealed_request_state_resumes_only_for_its_own_caller_and_survives_anothers_attempt(
    tmp_path: Path,
) -> None:
    alice, bob = create_token("alice"), create_token("bob")
    caps = {"elicitation": {}}
    server = {"command": PY, "args": [str(FIXTURES / "tenant_server.py")]}
    call = {"name": "ask_user", "arguments": {"question": "which colour?"}}
    async with gateway(tmp_path, {"tenant": server}) as url:
        with anyio.fail_after(90):
            async with httpx.AsyncClient(timeout=60) as http:

                async def send(token: str, params: dict[str, Any], method: str = "tools/call") -> dict[str, Any]:
                    name = "ask_user" if method == "tools/call" else None
                    body, headers = modern(method, params, token, name, caps=caps)
                    reply = await http.post(url, json=body, headers=headers)
                    assert reply.status_code == 200, reply.status_code
                    return reply.json()  # type: ignore[no-any-return]

                await send(alice, {}, "tools/list")
                first = (await send(alice, call))["result"]
                assert first["resultType"] == "input_required", first
                state = first["requestState"]
                (request_id,) = first["inputRequests"]

                def answer(text: str) -> dict[str, Any]:
                    return {**call, "requestState": state,
                            "inputResponses": {request_id: {"action": "accept", "content": {"answer": text}}}}

                bobs = await send(bob, answer("bob-was-here"))
                alices = await send(alice, answer("red"))
    assert "error" in bobs and "requestState" in bobs["error"]["message"], bobs
    text = json.dumps(alices)
    assert "red" in text and "bob-was-here" not in text, alices


async def test_one_callers_calls_left_waiting_for_answers_are_bounded_and_each_one_over_is_refused_and_ends(
    tmp_path: Path,
) -> None:
    from mcp_guard.relay.eras import MAX_PARKED_PER_USER

    marker = f"atk-{secrets.token_hex(6)}"
    alice, bob = create_token("alice"), create_token("bob")
    server = {"command": PY, "args": [str(FIXTURES / "tenant_server.py"), marker]}
    caps = {"elicitation": {}}
    call = {"name": "ask_user", "arguments": {"question": "which colour?"}}
    results: list[dict[str, Any]] = []
    async with gateway(tmp_path, {"tenant": server}) as url:
        with anyio.fail_after(180):
            async with httpx.AsyncClient(timeout=60) as http:

                async def send(token: str, rid: int) -> dict[str, Any]:
                    body, headers = modern("tools/call", call, token, "ask_user", rid, caps=caps)
                    return (await http.post(url, json=body, headers=headers)).json()  # type: ignore[no-any-return]

                for token in (alice, bob):  # the tenant lists ask_user to a client that can be asked
                    body, headers = modern("tools/list", {}, token, caps=caps)
                    assert (await http.post(url, json=body, headers=headers)).status_code == 200
                for rid in range(MAX_PARKED_PER_USER + 2):  # none answered: each parks, until the bound
                    results.append(await send(alice, rid + 1))
                bobs = await send(bob, 99)  # another caller's bound is their own
                deadline = anyio.current_time() + 30
                while processes_with(marker) > MAX_PARKED_PER_USER + 2 and anyio.current_time() < deadline:
                    await anyio.sleep(0.1)  # the refused calls' own processes end with them
                running = processes_with(marker)
    parked = [r for r in results if r.get("result", {}).get("resultType") == "input_required"]
    refused = [r for r in results if "error" in r]
    assert len(parked) == MAX_PARKED_PER_USER and len(refused) == 2, [str(r)[:200] for r in results]
    assert "already wait for your answers" in refused[0]["error"]["message"]
    assert bobs["result"]["resultType"] == "input_required", bobs
    # alice's parked calls and bob's one, and the shared hub's listing process: no process of a refused call
    assert running <= MAX_PARKED_PER_USER + 2, running

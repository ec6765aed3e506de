"""Red team, promise 4 over `mcp-guard serve`: hostile bodies from a raw HTTP client get an error or a
drop, never a crash, a hang, or a denied tool run, and the session keeps working afterwards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.attack.common import attack_canaries, attack_server
from tests.attack.test_wire_stdio import DENY_RAW
from tests.conftest import PY, background, free_port

pytestmark = pytest.mark.anyio

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "atk", "version": "1"}}}


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    port = free_port()
    policy = tmp_path / "policy.yaml"
    policy.write_text(DENY_RAW)
    ran = tmp_path / "ran.txt"
    ran.touch()
    argv = [PY, "-m", "mcp_guard", "serve", "--port", str(port), "--policy", str(policy), "--", *attack_server()]
    async with background(argv, f"http://127.0.0.1:{port}/healthz", env={**attack_canaries(), "ATTACK_RAN": str(ran)}):
        yield f"http://127.0.0.1:{port}/mcp", ran


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    return [response.json()] if response.content else []


async def _session(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    opened = await http.post(url, json=INIT, headers=ACCEPT)
    assert opened.status_code == 200, opened.text
    headers = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


async def _ping_works(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    reply = await http.post(url, json={"jsonrpc": "2.0", "id": 77, "method": "ping"}, headers=headers)
    assert reply.status_code == 200, reply.text
    assert any(m.get("id") == 77 and m.get("result") == {} for m in _messages(reply)), reply.text


BODIES = {
    "huge-int": b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"n":' + b"9" * 5000 + b"}}",
    "huge-int-id": b'{"jsonrpc":"2.0","id":' + b"1" * 5000 + b',"method":"ping"}',
    "batch-with-denied-call": json.dumps([{"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                           "params": {"name": "raw", "arguments": {"line": "{}"}}}]).encode(),
    "id-less-denied-call": b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"raw","arguments":{"line":"{}"}}}',
    "null": b"null",
    "number": b"5",
    "empty-batch": b"[]",
    "bad-utf8": b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"x":"\xff\xfe"}}',
    "truncated": b'{"jsonrpc":"2.0","id":5,"method":"pi',
    "deep": b'{"jsonrpc":"2.0","id":5,"method":"ping","params":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
    "deep-list": b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"a":' + b"[" * 100000 + b"]" * 100000 + b"}}",
    "stray-answer": b'{"jsonrpc":"2.0","id":"nobody-asked","result":{}}',
    "params-list": b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":[1]}',
    "name-object": b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":{"raw":1},"arguments":{}}}',
    "empty": b"",
}


@pytest.mark.parametrize("body", list(BODIES))
async def test_a_hostile_body_on_a_session_gets_an_error_or_a_drop_and_the_session_still_works(
    tmp_path: Path, body: str
) -> None:
    async with serving(tmp_path) as (url, ran):
        with anyio.fail_after(30):
            async with httpx.AsyncClient(timeout=20) as http:
                headers = await _session(http, url)
                reply = await http.post(url, content=BODIES[body], headers=headers)
                assert reply.status_code < 500, (reply.status_code, reply.text[:300])
                await _ping_works(http, url, headers)
                store = {"jsonrpc": "2.0", "id": 78, "method": "tools/call", "params": {"name": "store", "arguments": {}}}
                assert (await http.post(url, json=store, headers=headers)).status_code == 200
    assert "raw" not in ran.read_text().splitlines()
    assert ran.read_text() == "store\n", f"a malformed call reached the upstream: {ran.read_text()!r}"


async def test_session_ids_are_distinct_and_unguessably_long(tmp_path: Path) -> None:
    async with serving(tmp_path) as (url, _):
        with anyio.fail_after(30):
            async with httpx.AsyncClient(timeout=20) as http:
                sids = [(await http.post(url, json=INIT, headers=ACCEPT)).headers["mcp-session-id"] for _ in range(3)]
    assert len(set(sids)) == 3
    assert all(len(sid) >= 22 for sid in sids), sids

"""Red team, one caller's handshake-era sessions under `serve --auth`: every request is decided
with the groups of the token it carries (not those of the request that opened the session), and
one caller cannot open sessions without bound (each runs upstream processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.auth.support import ACCEPT, LEGACY_INIT, bearer, create_token, stdio
from tests.auth.test_caller_names import oidc_serve
from tests.conftest import PY, background, free_port, probe
from tests.oidc_provider import OidcProvider

pytestmark = pytest.mark.anyio

ONLY_OPS_ECHO = """version: 1
defaults: {action: deny}
rules:
  - name: ops-may-echo
    match: {tool: echo, group: ops}
    action: allow
"""


def post(http: httpx.Client, url: str, message: dict[str, Any], token: str, sid: str | None = None) -> httpx.Response:
    headers = {**ACCEPT, **bearer(token), **({"Mcp-Session-Id": sid} if sid else {})}
    headers["Accept"] = "application/json"  # one JSON answer per request, no SSE
    return http.post(url, content=json.dumps(message), headers=headers)


def echo(http: httpx.Client, url: str, token: str, sid: str, rid: int) -> dict[str, Any]:
    call = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}}
    reply = post(http, url, call, token, sid)
    assert reply.status_code == 200, reply.status_code
    return reply.json()  # type: ignore[no-any-return]


def denied(answer: dict[str, Any]) -> bool:
    result = answer.get("result") or {}
    return "error" in answer or bool(result.get("isError"))


async def test_each_request_of_a_session_is_decided_with_the_groups_of_its_own_token(
    oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    async with oidc_serve(oidc_provider, tmp_path, ONLY_OPS_ECHO) as base:
        url = f"{base}/mcp"
        in_ops = oidc_provider.token("olga", url, groups=["ops"])
        with anyio.fail_after(60), httpx.Client(timeout=30) as http:
            opened = post(http, url, LEGACY_INIT, in_ops)
            assert opened.status_code == 200, opened.status_code
            sid = opened.headers["mcp-session-id"]
            assert post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, in_ops, sid).status_code == 202
            first = echo(http, url, in_ops, sid, 2)
            # Olga leaves ops at the provider; her client refreshes its token and goes on in the same session.
            left = oidc_provider.token("olga", url, groups=[])
            after_leaving = echo(http, url, left, sid, 3)
            listed = post(http, url, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, left, sid).json()
            back = oidc_provider.token("olga", url, groups=["ops"])
            after_rejoining = echo(http, url, back, sid, 5)
    assert not denied(first), "a member of ops was refused"
    assert denied(after_leaving), "the session kept the groups of the token it was opened with"
    assert "echo" not in {t["name"] for t in listed["result"]["tools"]}
    assert not denied(after_rejoining)


def _capped_config(tmp_path: Path, idle_s: float = 1800.0) -> Path:
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({
        "mcpServers": {"probe": stdio(probe())}, "mcpGuard": {"sessionIdleTimeout": idle_s},
    }), encoding="utf-8")
    return config


def _serve(tmp_path: Path, config: Path, cap: int) -> tuple[list[str], str]:
    port = free_port()
    policy = tmp_path / "allow.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n", encoding="utf-8")
    argv = [PY, "-m", "mcp_guard", "serve", "--auth", "tokens", "--port", str(port), "--policy", str(policy),
            "--config", str(config), "--max-sessions-per-caller", str(cap)]
    return argv, f"http://127.0.0.1:{port}"


async def test_a_caller_past_its_session_cap_gets_429_saying_what_to_do_and_a_delete_frees_a_slot(tmp_path: Path) -> None:
    alice, bob = create_token("alice"), create_token("bob")
    argv, base = _serve(tmp_path, _capped_config(tmp_path), cap=2)
    url = f"{base}/mcp"
    async with background(argv, f"{base}/healthz"):
        with anyio.fail_after(60), httpx.Client(timeout=30) as http:
            opened = [post(http, url, LEGACY_INIT, alice) for _ in range(2)]
            over = post(http, url, LEGACY_INIT, alice)
            others = post(http, url, LEGACY_INIT, bob)  # the cap is per caller: bob is not refused for alice
            sid = opened[0].headers["mcp-session-id"]
            ended = http.delete(url, headers={**bearer(alice), "Mcp-Session-Id": sid})
            again = post(http, url, LEGACY_INIT, alice)
            past_again = post(http, url, LEGACY_INIT, alice)
            # A DELETE of another caller's session frees nothing (it is as unknown as a made-up one).
            foreign = http.delete(url, headers={**bearer(bob), "Mcp-Session-Id": opened[1].headers["mcp-session-id"]})
            still_capped = post(http, url, LEGACY_INIT, alice)
    assert [r.status_code for r in opened] == [200, 200]
    assert over.status_code == 429
    error = over.json()
    assert error["id"] == 1 and error["error"]["code"] == -32600
    assert "2 open sessions" in error["error"]["message"] and "DELETE" in error["error"]["message"]
    assert alice not in over.text
    assert others.status_code == 200
    assert ended.status_code == 200 and again.status_code == 200 and past_again.status_code == 429
    assert foreign.status_code == 404 and still_capped.status_code == 429


async def test_concurrent_initializes_of_one_caller_never_pass_the_cap(tmp_path: Path) -> None:
    alice = create_token("alice")
    argv, base = _serve(tmp_path, _capped_config(tmp_path), cap=2)
    statuses: list[int] = []
    async with background(argv, f"{base}/healthz"):
        with anyio.fail_after(60):
            async with httpx.AsyncClient(timeout=30) as http:

                async def initialize() -> None:
                    headers = {**ACCEPT, **bearer(alice), "Accept": "application/json"}
                    statuses.append((await http.post(f"{base}/mcp", content=json.dumps(LEGACY_INIT), headers=headers)).status_code)

                async with anyio.create_task_group() as tg:
                    for _ in range(8):
                        tg.start_soon(initialize)
    assert sorted(statuses) == [200, 200] + [429] * 6


async def test_an_idle_session_reaped_frees_its_callers_slot(tmp_path: Path) -> None:
    alice = create_token("alice")
    argv, base = _serve(tmp_path, _capped_config(tmp_path, idle_s=1), cap=1)
    url = f"{base}/mcp"
    async with background(argv, f"{base}/healthz"):
        with anyio.fail_after(60), httpx.Client(timeout=30) as http:
            first = post(http, url, LEGACY_INIT, alice)
            refused = post(http, url, LEGACY_INIT, alice)
            while (later := post(http, url, LEGACY_INIT, alice)).status_code == 429:
                await anyio.sleep(0.1)  # polls until the reaper has run; no timing is asserted
            gone = post(http, url, {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, alice, first.headers["mcp-session-id"])
    assert first.status_code == 200 and refused.status_code == 429
    assert later.status_code == 200
    assert gone.status_code == 404  # the slot came back because the idle session was closed

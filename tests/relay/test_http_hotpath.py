"""`serve`'s lean /mcp path (relay/fronts/hotpath.py): the same behaviour as the Starlette route it bypasses.

Over a real `mcp-guard serve` where the behaviour crosses the process (a client that hangs up
mid-call, the load benchmark's checks), and on the ASGI app itself for failures no client can
provoke from outside (an endpoint that raises)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp_guard.auth.caller import Caller
from mcp_guard.relay.fronts.hotpath import McpFirst
from mcp_guard.relay.fronts.http import HttpSession
from mcp_guard.relay.hub import Hub
from tests.conftest import FIXTURES, PY, ROOT, background, free_port

pytestmark = pytest.mark.anyio

ACCEPT = {"Accept": "application/json, text/event-stream"}
INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


def rpc(rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, **({"params": params} if params is not None else {})}


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


async def open_session(http: httpx.AsyncClient, url: str) -> str:
    reply = await http.post(url, json=rpc(1, "initialize", INIT), headers=ACCEPT)
    sid = reply.headers["mcp-session-id"]
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                    headers={**ACCEPT, "Mcp-Session-Id": sid})
    return sid


async def post_then_hang_up(port: int, sid: str, message: dict[str, Any]) -> None:
    """POST ``message`` on a raw connection, read the SSE answer's headers, and close the connection."""
    body = json.dumps(message).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.send(head + body)
    seen = b""
    while b"\r\n\r\n" not in seen:
        seen += await stream.receive()
    assert seen.startswith(b"HTTP/1.1 200") and b"text/event-stream" in seen
    await stream.aclose()


async def test_answer_of_a_client_that_hung_up_mid_call_reaches_its_get_stream(tmp_path: Path) -> None:
    """The POST stream of a call in flight is dropped when its client hangs up: the answer goes to the GET stream."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    release = tmp_path / "release"
    argv = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), "--", PY, str(FIXTURES / "tenant_server.py")]
    async with background(argv, f"http://127.0.0.1:{port}/healthz"), httpx.AsyncClient(timeout=30) as http:
        with anyio.fail_after(60):
            sid = await open_session(http, url)
            headers = {**ACCEPT, "Mcp-Session-Id": sid}
            got: list[dict[str, Any]] = []
            async with http.stream("GET", url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid}) as get:
                assert get.status_code == 200
                await post_then_hang_up(port, sid, rpc(7, "tools/call", {"name": "hold", "arguments": {"path": str(release)}}))
                # A round trip on the session after the hang-up: the guard has seen the closed connection by then.
                assert events((await http.post(url, json=rpc(8, "ping"), headers=headers)).text)[0]["result"] == {}
                release.write_text("go")
                async for line in get.aiter_lines():
                    if line.startswith("data:"):
                        got.append(json.loads(line[5:]))
                        if got[-1].get("id") == 7:
                            break
    assert got[-1]["result"]["content"][0]["text"] == "released"


async def test_answers_of_many_hung_up_calls_wait_in_the_backlog_for_the_get_stream(tmp_path: Path) -> None:
    """A hostile client opens 20 calls and hangs up on each: none is lost, none is delivered twice."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    release = tmp_path / "release"
    argv = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), "--", PY, str(FIXTURES / "tenant_server.py")]
    async with background(argv, f"http://127.0.0.1:{port}/healthz"), httpx.AsyncClient(timeout=30) as http:
        with anyio.fail_after(60):
            sid = await open_session(http, url)
            hold = {"name": "hold", "arguments": {"path": str(release)}}
            for rid in range(100, 120):
                await post_then_hang_up(port, sid, rpc(rid, "tools/call", hold))
            headers = {**ACCEPT, "Mcp-Session-Id": sid}
            assert events((await http.post(url, json=rpc(8, "ping"), headers=headers)).text)[0]["result"] == {}
            release.write_text("go")
            answered: list[int] = []
            async with http.stream("GET", url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid}) as get:
                async for line in get.aiter_lines():
                    if line.startswith("data:") and "method" not in (message := json.loads(line[5:])):
                        answered.append(message["id"])
                        if len(answered) == 20:
                            break
    assert sorted(answered) == list(range(100, 120))


async def test_a_raising_endpoint_is_a_500_and_the_next_request_is_served() -> None:
    calls: list[str] = []

    async def endpoint(request: Any) -> Any:
        calls.append(request.method)
        if len(calls) == 1:
            raise RuntimeError("boom")
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("fine")

    app = McpFirst(endpoint, _unreachable, frozenset({"guard.test"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guard.test") as http:
        with anyio.fail_after(10):
            first = await http.post("/mcp", content=b"{}")
            second = await http.post("/mcp", content=b"{}")
    assert first.status_code == 500 and "boom" not in first.text
    assert (second.status_code, second.text) == (200, "fine")


@pytest.mark.parametrize(
    ("method", "host", "status"),
    [("POST", "evil.example", 421), ("PUT", "guard.test", 405), ("PATCH", "evil.example", 421)],
    ids=["foreign-host", "put", "foreign-host-before-method"],
)
async def test_mcp_path_refuses_foreign_hosts_and_other_methods_before_the_endpoint(method: str, host: str, status: int) -> None:
    reached: list[str] = []

    async def endpoint(request: Any) -> Any:
        reached.append(request.method)
        raise AssertionError("the endpoint must not run")

    app = McpFirst(endpoint, _unreachable, frozenset({"guard.test"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guard.test") as http:
        with anyio.fail_after(10):
            reply = await http.request(method, "/mcp", content=b"{}", headers={"Host": host})
    assert reply.status_code == status and not reached
    if status == 405:
        assert set(reply.headers["allow"].split(", ")) == {"GET", "POST", "DELETE"}


async def _unreachable(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError(f"{scope['path']} is /mcp's and must not reach the other routes")


def test_load_benchmark_checks_every_answer_of_every_session_in_both_eras() -> None:
    """benchmarks/serve_load.py on a real serve, small: every answer back, to its own session."""
    argv = [sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), "--sessions", "6", "--calls", "4",
            "--baseline-calls", "5"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("answers: 24 of 24 came back; lost 0, crossed 0") == 2, done.stdout


async def test_an_ended_stateless_http_session_is_freed_without_the_cycle_collector() -> None:
    """Hundreds of 2026-07-28 exchanges a second: each must go when it ends, not wait for a gc pass."""
    gc.disable()
    try:
        async with anyio.create_task_group() as tg:
            http_session = HttpSession(Hub(), Caller(user="someone"), stateless=True)
            await tg.start(http_session.session.run)
            http_session.session.close()
        session = weakref.ref(http_session.session)
        del http_session
        assert session() is None
    finally:
        gc.enable()

"""Process lifecycle and bad input: no orphans, clear errors, never a crash."""

from __future__ import annotations

import json
import signal
import sys

import anyio
import pytest

from tests.conftest import FIXTURES, connect, everything, guard, probe
from tests.rawclient import RawClient, alive, children_of, open_raw

pytestmark = pytest.mark.anyio

STUBBORN = [sys.executable, str(FIXTURES / "stubborn_server.py")]


async def wait_gone(pids: list[int]) -> list[int]:
    """Poll /proc until the processes are gone (bounded by the caller's fail_after)."""
    while [p for p in pids if alive(p)]:
        await anyio.sleep(0.02)
    return []


@pytest.mark.parametrize("upstream", [everything, lambda: STUBBORN], ids=["server-everything", "ignores-sigterm"])
@pytest.mark.parametrize("how", ["eof", "sigterm"])
async def test_stopping_the_guard_leaves_no_upstream_process(upstream, how: str) -> None:
    process = await open_raw(guard(*upstream()))
    try:
        with anyio.fail_after(30):
            client = RawClient(process)
            reply = await client.initialize()
            assert "result" in reply
            kids = children_of(process.pid)
            assert kids, "the upstream should be running"
            if how == "eof":
                assert process.stdin is not None
                await process.stdin.aclose()
            else:
                process.send_signal(signal.SIGTERM)
            code = await process.wait()
        with anyio.fail_after(5):
            await wait_gone(kids)
        assert code == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_an_upstream_that_cannot_start_gives_a_clear_error() -> None:
    process = await open_raw(guard("/nonexistent/server-binary", "--flag"))
    try:
        with anyio.fail_after(20):
            client = RawClient(process)
            reply = await client.request(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})
        assert reply["error"]["code"] == -32010
        assert "could not start" in reply["error"]["message"]
        assert "/nonexistent/server-binary" in reply["error"]["message"]
    finally:
        process.kill()
        await process.wait()


async def test_an_upstream_that_dies_mid_session_fails_calls_with_its_exit_status() -> None:
    with anyio.fail_after(30):
        async with connect(guard(*probe())) as client:
            with pytest.raises(Exception) as first:
                await client.call_tool("crash", {})
            assert "exited with status 3" in str(first.value)
            with pytest.raises(Exception) as later:
                await client.call_tool("echo", {"message": "still there?"})
            assert "exited with status 3" in str(later.value)


async def test_malformed_and_oversize_lines_get_errors_and_the_session_goes_on() -> None:
    process = await open_raw(guard(*probe()))
    try:
        with anyio.fail_after(30):
            client = RawClient(process)
            await client.initialize()
            await client.send_line(b"this is not json")
            error = await client.response(None)
            assert error["error"]["code"] == -32700
            await client.send_line(b"[1, 2]")
            error = await client.response(None)
            assert error["error"]["code"] == -32700
            huge = json.dumps({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x" * (33 * 1024 * 1024)}}})
            await client.send_line(huge.encode())
            error = await client.response(77)
            assert error["error"]["code"] == -32011
            reply = await client.request(5, "tools/call", {"name": "echo", "arguments": {"message": "after"}})
            assert reply["result"]["content"][0]["text"] == "after"
    finally:
        process.kill()
        await process.wait()


async def test_unknown_methods_are_refused_and_allowlisted_ones_relayed() -> None:
    process = await open_raw(guard(*probe(), options=["--allow-method", "vendor/*"]))
    try:
        with anyio.fail_after(30):
            client = RawClient(process)
            await client.initialize()
            refused = await client.request(1, "tasks/result", {"taskId": "t1"})
            assert refused["error"]["code"] == -32601
            assert "allowMethods" in refused["error"]["message"]
            relayed = await client.request(2, "vendor/stats", {})
            # The probe server does not know it either: the point is that it got there.
            assert relayed["error"]["code"] == -32601
            assert "allowMethods" not in relayed["error"]["message"]
    finally:
        process.kill()
        await process.wait()


async def test_calls_in_flight_together_are_all_answered_and_a_cancelled_one_leaves_the_rest_served() -> None:
    # More calls at once than request tasks are kept idle between calls (relay/session.py), one
    # cancelled among them; then calls one after another, served by the tasks that are left.
    process = await open_raw(guard(*probe()))
    try:
        with anyio.fail_after(30):
            client = RawClient(process)
            await client.initialize()
            for rid in range(1, 9):
                await client.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                   "params": {"name": "wait", "arguments": {"seconds": 0.5 if rid == 3 else 0.2}}})
            await client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}})
            answered = {}
            while len(answered) < 7:
                message = await client.receive()
                if "id" in message and "method" not in message:
                    answered[message["id"]] = message
            assert sorted(answered) == [1, 2, 4, 5, 6, 7, 8]  # the cancelled one gets no answer
            assert all("result" in m and not m["result"].get("isError") for m in answered.values())
            for rid in range(10, 30):
                reply = await client.request(rid, "tools/call", {"name": "echo", "arguments": {"message": f"m{rid}"}})
                assert reply["result"]["content"][0]["text"] == f"m{rid}"
            assert 3 not in {m.get("id") for m in client.seen}
    finally:
        process.kill()
        await process.wait()


async def test_cancelling_a_call_cancels_it_upstream(tmp_path) -> None:
    log = tmp_path / "probe.jsonl"
    with anyio.fail_after(30):
        async with connect(guard(*probe()), env={"PROBE_LOG": str(log)}) as client:
            with anyio.move_on_after(1.0):
                await client.call_tool("wait", {"seconds": 30})
            # The cancel travels client -> guard -> upstream; a later call proves ordering.
            while "wait-cancelled" not in log.read_text():
                await anyio.sleep(0.02)
            result = await client.call_tool("echo", {"message": "next"})
            assert result.content[0].text == "next"

"""Red team, promises 3 and 4 over stdio: hostile wire input from the client or from the upstream gets an
error or a drop, never a crash, a hang, another request's answer, or a denied tool run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.attack.common import LeakClient, attack_canaries, open_guard, stop

pytestmark = pytest.mark.anyio

DENY_RAW = """version: 1
defaults: {action: allow}
rules:
  - name: no-raw
    match: {tool: raw}
    action: deny
    reason: raw is denied.
"""


async def _guard(tmp_path: Path, policy: str | None = None) -> tuple[Any, LeakClient, Path]:
    ran = tmp_path / "ran.txt"
    ran.touch()
    env = {**attack_canaries(), "ATTACK_RAN": str(ran)}
    process, client = await open_guard(tmp_path, env, policy=policy or DENY_RAW)
    return process, client, ran


async def _still_alive(client: LeakClient, rid: int = 900) -> None:
    reply = await client.request(rid, "ping")
    assert reply.get("result") == {}, reply


async def _upstream_caught_up(client: LeakClient) -> None:
    """A call the fixture (one request at a time, in order) runs after anything forwarded before it."""
    reply = await client.request(901, "tools/call", {"name": "store", "arguments": {"value": "x"}})
    assert "result" in reply, reply


async def _next_reply(client: LeakClient) -> dict[str, Any]:
    while True:
        message = await client.receive()
        if "method" not in message:
            return message


async def test_an_integer_longer_than_python_reads_from_the_client_gets_an_error_not_a_crash(tmp_path: Path) -> None:
    process, client, _ = await _guard(tmp_path)
    try:
        with anyio.fail_after(20):
            big = "9" * 5000
            await client.send_line(('{"jsonrpc":"2.0","id":7,"method":"ping","params":{"n":' + big + "}}").encode())
            reply = await _next_reply(client)
            assert reply.get("id") == 7 and "error" in reply, reply
            await _still_alive(client)
    finally:
        await stop(process)


async def test_an_integer_longer_than_python_reads_as_a_request_id_gets_an_error_not_a_crash(tmp_path: Path) -> None:
    process, client, _ = await _guard(tmp_path)
    try:
        with anyio.fail_after(20):
            await client.send_line(('{"jsonrpc":"2.0","id":' + "1" * 5000 + ',"method":"ping"}').encode())
            await _still_alive(client)
    finally:
        await stop(process)


async def test_an_integer_longer_than_python_reads_from_the_upstream_is_dropped_not_fatal(tmp_path: Path) -> None:
    process, client, _ = await _guard(tmp_path, policy="version: 1\ndefaults: {action: allow}\n")
    try:
        with anyio.fail_after(30):
            line = '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":' + "7" * 5000 + "}}"
            reply = await client.request(1, "tools/call", {"name": "raw", "arguments": {"line": line}})
            assert "result" in reply, reply
            await _still_alive(client)
    finally:
        await stop(process)


async def test_an_upstream_answer_with_an_overlong_integer_fails_that_call_at_once(tmp_path: Path) -> None:
    process, client, _ = await _guard(tmp_path, policy="version: 1\ndefaults: {action: allow}\n")
    try:
        with anyio.fail_after(30):
            # The fixture numbers nothing; the guard's id toward the upstream is unknown, so the answer is
            # sent for every plausible id: any of them must fail or be dropped, never sink the guard.
            lines = "\n".join('{"jsonrpc":"2.0","id":%d,"result":{"n":%s}}' % (i, "3" * 5000) for i in range(0, 8))
            await client.request(1, "tools/call", {"name": "raw", "arguments": {"line": lines}})
            await _still_alive(client)
    finally:
        await stop(process)


@pytest.mark.parametrize("twin", [True, 1.0], ids=["true", "one-point-zero"])
async def test_an_id_equal_to_another_in_python_but_not_in_json_never_gets_the_other_answer(
    tmp_path: Path, twin: Any
) -> None:
    process, client, _ = await _guard(tmp_path)
    release = tmp_path / "release"
    try:
        with anyio.fail_after(30):
            await client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": "slow", "arguments": {"path": str(release), "tag": "one"}}})
            await client.send({"jsonrpc": "2.0", "id": twin, "method": "ping"})
            release.write_text("go")
            await client.response(1)
            await client.request(900, "ping")  # everything sent before it is answered or dropped by now
            replies = [m for m in client.seen if "method" not in m and m.get("id") != 0]
            ones = [r for r in replies if type(r.get("id")) is int and r.get("id") == 1]
            twins = [r for r in replies if type(r.get("id")) is type(twin)]
            assert len(ones) == 1 and "slow done one" in json.dumps(ones[0]), replies
            assert all("slow done" not in json.dumps(r) for r in twins), replies
    finally:
        await stop(process)


async def test_a_json_rpc_batch_holding_a_denied_call_never_runs_it(tmp_path: Path) -> None:
    process, client, ran = await _guard(tmp_path)
    try:
        with anyio.fail_after(20):
            batch = [{"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "raw", "arguments": {"line": "{}"}}}]
            await client.send_line(json.dumps(batch).encode())
            await _still_alive(client)
            await _upstream_caught_up(client)
    finally:
        await stop(process)
    assert "raw" not in ran.read_text().splitlines()
    assert ran.read_text() == "store\n", f"a malformed call reached the upstream: {ran.read_text()!r}"


async def test_a_denied_call_sent_without_an_id_never_reaches_the_upstream(tmp_path: Path) -> None:
    process, client, ran = await _guard(tmp_path)
    try:
        with anyio.fail_after(20):
            await client.send({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "raw", "arguments": {"line": "{}"}}})
            await _still_alive(client)
            await client.request(2, "tools/call", {"name": "store", "arguments": {"value": "x"}})  # after it, in order
    finally:
        await stop(process)
    assert "raw" not in ran.read_text().splitlines()


@pytest.mark.parametrize("line", [
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":[1,2]}',
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"raw"}',
    b'{"jsonrpc":"2.0","id":3,"method":7}',
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":["raw"],"arguments":{}}}',
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":{"raw":1},"arguments":{}}}',
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":null,"arguments":{}}}',
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"raw","arguments":"{}"}}',
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"raw","arguments":[]}}',
    b'\xff\xfe{"jsonrpc":"2.0","id":3,"method":"ping"}',
    b'[]',
    b'null',
], ids=["params-list", "params-string", "method-number", "name-list", "name-object", "name-null", "arguments-string", "arguments-list",
        "bad-utf8", "empty-batch", "null"])
async def test_a_malformed_client_request_gets_an_error_or_a_drop_and_no_denied_tool_runs(
    tmp_path: Path, line: bytes
) -> None:
    process, client, ran = await _guard(tmp_path)
    try:
        with anyio.fail_after(20):
            await client.send_line(line)
            await _still_alive(client)
            await _upstream_caught_up(client)
    finally:
        await stop(process)
    assert "raw" not in ran.read_text().splitlines()
    assert ran.read_text() == "store\n", f"a malformed call reached the upstream: {ran.read_text()!r}"


async def test_an_oversize_notification_from_the_upstream_is_dropped_and_the_call_still_answered(tmp_path: Path) -> None:
    process, client, _ = await _guard(tmp_path, policy="version: 1\ndefaults: {action: allow}\n")
    try:
        with anyio.fail_after(60):
            reply = await client.request(1, "tools/call", {"name": "leak2", "arguments": {"route": "huge_line"}})
            assert "after the huge line" in json.dumps(reply), json.dumps(reply)[:300]
            await _still_alive(client)
    finally:
        await stop(process)

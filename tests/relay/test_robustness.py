"""Any input, a clear answer: hostile upstreams and hostile clients against the real guard.

Every test drives `mcp-guard run` (a real subprocess on stdio) or `mcp-guard serve` (real HTTP
on 127.0.0.1) with fixtures/hostile_server.py behind it. A broken message gets an error or is
dropped; the guard never crashes and no call waits forever.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from mcp_guard.protocol import era
from tests.conftest import FIXTURES, PY, background, free_port, node_server
from tests.rawclient import INIT, RawClient, open_raw

pytestmark = pytest.mark.anyio

HOSTILE = [PY, str(FIXTURES / "hostile_server.py")]
# Generous: tests that must end "at once" would hang past it on the old code, not fail early.
LONG_DEADLINE_S = 300


def write_config(tmp_path: Path, timeout: float = LONG_DEADLINE_S, **server: Any) -> str:
    path = tmp_path / "guard.json"
    entry = {"command": HOSTILE[0], "args": HOSTILE[1:], **server}
    path.write_text(json.dumps({"mcpServers": {"hostile": entry}, "mcpGuard": {"requestTimeout": timeout}}))
    return str(path)


def run_guard(config: str) -> list[str]:
    return [PY, "-m", "mcp_guard", "run", "--no-policy", "--config", config]


async def started(
    tmp_path: Path, timeout: float = LONG_DEADLINE_S, env: dict[str, str] | None = None, **server: Any
) -> RawClient:
    process = await open_raw(run_guard(write_config(tmp_path, timeout, **server)), env=env)
    client = RawClient(process)
    reply = await client.initialize()
    assert reply["result"]["serverInfo"]["name"] == "hostile"
    return client


async def stop(client: RawClient) -> None:
    client.process.kill()
    await client.process.wait()


@asynccontextmanager
async def guarded(tmp_path: Path, **options: Any) -> AsyncIterator[RawClient]:
    """A started guard around the hostile server, killed however the test ends."""
    client = await started(tmp_path, **options)
    try:
        yield client
    finally:
        await stop(client)


async def call(
    client: RawClient, rid: int, tool: str, args: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": args or {}}
    if meta:
        params["_meta"] = meta
    return await client.request(rid, "tools/call", params)


def first_text(reply: dict[str, Any]) -> str:
    return str(reply["result"]["content"][0]["text"])


async def still_serving(client: RawClient, rid: int = 900) -> None:
    reply = await call(client, rid, "echo", {"message": "still alive"})
    assert first_text(reply) == "still alive"


# -- lone surrogates ----------------------------------------------------------------------------


async def test_lone_surrogate_in_upstream_result_is_answered_not_fatal(tmp_path: Path) -> None:
    async with guarded(tmp_path) as client:
        with anyio.fail_after(20):
            reply = await call(client, 1, "surrogate")
            assert first_text(reply) == "before \ufffd after"
            await still_serving(client)


MODERN_META = {
    era.PROTOCOL_KEY: era.MODERN,
    era.CLIENT_INFO_KEY: {"name": "raw-2026", "version": "1"},
    era.CLIENT_CAPS_KEY: {},
}


@pytest.mark.parametrize(("tool", "expected"), [("surrogate", "before \ufffd after"), ("truncated", None)])
async def test_a_2026_client_gets_the_same_clear_answers_from_a_hostile_upstream(
    tmp_path: Path, tool: str, expected: str | None
) -> None:
    process = await open_raw(run_guard(write_config(tmp_path)))
    client = RawClient(process)  # no initialize: every request carries the 2026-07-28 envelope
    try:
        with anyio.fail_after(20):
            reply = await call(client, 1, tool, **MODERN_META)
            if expected is None:
                assert "'hostile' sent a malformed answer" in reply["error"]["message"]
            else:
                assert first_text(reply) == expected
            echo = await call(client, 2, "echo", {"message": "modern"}, **MODERN_META)
            assert first_text(echo) == "modern"
    finally:
        await stop(client)


async def test_lone_surrogate_in_upstream_notification_is_relayed_as_valid_utf8(tmp_path: Path) -> None:
    async with guarded(tmp_path) as client:
        with anyio.fail_after(20):
            reply = await call(client, 1, "surrogate_notice")
            assert first_text(reply) == "noticed"
            notes = [m for m in client.seen if m.get("method") == "notifications/message"]
            assert notes and notes[0]["params"]["data"] == "log \ufffd"
            await still_serving(client)


async def test_lone_surrogate_from_the_client_reaches_the_upstream_as_replacement_character(tmp_path: Path) -> None:
    async with guarded(tmp_path) as client:
        with anyio.fail_after(20):
            await client.send_line(
                b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
                b'"params":{"name":"echo","arguments":{"message":"a\\ud800b"}}}'
            )
            assert first_text(await client.response(1)) == "a\ufffdb"


# -- malformed answers from the upstream --------------------------------------------------------


@pytest.mark.parametrize("tool", ["truncated", "garbled_with_id", "deep", "nan"])
async def test_malformed_upstream_answer_with_a_readable_id_fails_that_call_at_once(tmp_path: Path, tool: str) -> None:
    async with guarded(tmp_path) as client:  # the deadline is minutes away: only the sniffed id can end the call
        with anyio.fail_after(20):
            reply = await call(client, 1, tool)
            assert reply["error"]["code"] == -32603
            assert "'hostile' sent a malformed answer" in reply["error"]["message"]
            await still_serving(client)


async def test_oversize_upstream_answer_fails_that_call_with_a_size_error(tmp_path: Path) -> None:
    config = tmp_path / "guard.json"
    entry = {"command": HOSTILE[0], "args": HOSTILE[1:]}
    config.write_text(json.dumps({"mcpServers": {"hostile": entry}, "mcpGuard": {"maxMessageBytes": 4096}}))
    client = RawClient(await open_raw(run_guard(str(config))))
    try:
        with anyio.fail_after(20):
            await client.initialize()
            reply = await call(client, 1, "oversize")
            assert reply["error"]["code"] == -32011
            assert "over mcp-guard's message size limit" in reply["error"]["message"]
            await still_serving(client)
    finally:
        await stop(client)


@pytest.mark.parametrize(
    ("tool", "deadlines"),
    [("not_json", {"timeout": 1}), ("silence", {"timeout": LONG_DEADLINE_S, "requestTimeout": 1})],
    ids=["not-json-guard-wide-deadline", "silence-per-server-deadline"],
)
async def test_upstream_that_never_answers_ends_at_the_deadline_with_a_clear_error(
    tmp_path: Path, tool: str, deadlines: dict[str, Any]
) -> None:
    log = tmp_path / "hostile.log"
    async with guarded(tmp_path, env={"HOSTILE_LOG": str(log)}, **deadlines) as client:
        with anyio.fail_after(20):
            reply = await call(client, 1, tool)
            assert reply["error"]["code"] == -32013
            assert "'hostile' did not answer tools/call within 1 s" in reply["error"]["message"]
            await still_serving(client)
        # The courtesy cancel reached the server (it is written before the next call is read).
        assert any(line.startswith("cancelled:") for line in log.read_text().splitlines())


async def test_progress_notifications_extend_the_deadline(tmp_path: Path) -> None:
    async with guarded(tmp_path, timeout=2) as client:
        with anyio.fail_after(30):
            # Eight steps of 0.5 s: twice the deadline in all, never 2 s without news.
            reply = await call(client, 1, "progress", {"steps": 8, "interval": 0.5}, progressToken="p1")
            assert first_text(reply) == "progressed"
            steps = [m for m in client.seen if m.get("method") == "notifications/progress"]
            assert [m["params"]["progressToken"] for m in steps] == ["p1"] * 8


async def test_the_deadline_does_not_run_while_the_client_answers_the_server(tmp_path: Path) -> None:
    """A person answering an elicitation is not the upstream hanging."""
    log = tmp_path / "hostile.log"
    process = await open_raw(run_guard(write_config(tmp_path, timeout=1)), env={"HOSTILE_LOG": str(log)})
    client = RawClient(process)
    try:
        with anyio.fail_after(30):
            await client.request(0, "initialize", {**INIT, "capabilities": {"elicitation": {"form": {}}}})
            await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await client.send(
                {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ask", "arguments": {"wait": 2}}}
            )
            question = await client.receive()
            assert question["method"] == "elicitation/create"
            # Answer only once twice the deadline has passed upstream.
            while not log.exists() or "asked-long" not in log.read_text():
                await anyio.sleep(0.02)
            await client.send({"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": {}}})
            reply = await client.response(1)
            assert json.loads(first_text(reply)) == {"action": "accept", "content": {}}
    finally:
        await stop(client)


async def test_wrongly_typed_ids_and_tokens_from_the_upstream_are_dropped_not_fatal(tmp_path: Path) -> None:
    async with guarded(tmp_path) as client:
        with anyio.fail_after(20):
            assert first_text(await call(client, 1, "bad_ids")) == "still here"
            await still_serving(client)


async def test_stray_answer_from_the_upstream_is_dropped(tmp_path: Path) -> None:
    async with guarded(tmp_path) as client:
        with anyio.fail_after(20):
            assert first_text(await call(client, 1, "stray")) == "after the stray"
            await still_serving(client)


# -- hostile clients ----------------------------------------------------------------------------


async def test_client_message_nested_too_deep_is_refused_under_its_own_id(tmp_path: Path) -> None:
    async with guarded(tmp_path) as client:
        with anyio.fail_after(20):
            deep = (
                b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":' + b"[" * 100_000
            )
            await client.send_line(deep + b"]" * 100_000 + b"}}")
            refused = await client.response(9)
            assert refused["error"]["code"] == -32600
            assert "nested deeper than" in refused["error"]["message"]
            await client.send_line(b'{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":')
            truncated = await client.response(10)
            assert truncated["error"]["code"] == -32700
            await still_serving(client)


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": [1]}},
        {"jsonrpc": "2.0", "id": [1], "result": {}},
        {"jsonrpc": "2.0", "id": {"a": 1}, "error": {"code": 1, "message": "x"}},
        {"jsonrpc": "2.0", "id": True, "result": {}},
    ],
    ids=["cancel-with-list-id", "answer-with-list-id", "answer-with-object-id", "answer-with-bool-id"],
)
async def test_client_messages_with_wrongly_typed_ids_are_dropped_not_fatal(
    tmp_path: Path, message: dict[str, Any]
) -> None:
    async with guarded(tmp_path) as client:
        with anyio.fail_after(20):
            await client.send(message)
            await still_serving(client)


async def test_duplicate_in_flight_id_on_stdio_is_refused_and_the_first_call_still_answered(tmp_path: Path) -> None:
    async with guarded(tmp_path) as client:
        with anyio.fail_after(20):
            slow = {"name": "progress", "arguments": {"steps": 2, "interval": 0.3}}
            await client.send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": slow})
            await client.send(
                {
                    "jsonrpc": "2.0",
                    "id": 5,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"message": "dup"}},
                }
            )
            first = await client.response(5)
            assert first["error"]["code"] == -32600
            assert "already in use" in first["error"]["message"]
            second = await client.response(5)
            assert first_text(second) == "progressed"


# -- handshakes: Claude Code's probe-then-initialize, roots after initialized -----------------------


def probe_params(caps: dict[str, Any] | None = None) -> dict[str, Any]:
    """A 2026-07-28 server/discover as a probing client sends it, before falling back."""
    return {
        "_meta": {
            era.PROTOCOL_KEY: era.MODERN,
            era.CLIENT_INFO_KEY: {"name": "claude-code", "version": "2"},
            era.CLIENT_CAPS_KEY: caps or {},
        }
    }


async def test_initialize_during_a_slow_upstream_handshake_waits_and_gets_the_upstream_capabilities(
    tmp_path: Path,
) -> None:
    log = tmp_path / "hostile.log"
    env = {"HOSTILE_LOG": str(log), "HOSTILE_DISCOVER_DELAY": "2", "HOSTILE_INIT_DELAY": "1"}
    process = await open_raw(run_guard(write_config(tmp_path)), env=env)
    client = RawClient(process)
    try:
        with anyio.fail_after(40):
            await client.send({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": probe_params()})
            # As Claude Code does: initialize while the probe's handshake is still under way.
            while not log.exists() or "got:server/discover" not in log.read_text():
                await anyio.sleep(0.02)
            await client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
            initialized = await client.response(1)
            assert initialized["result"]["serverInfo"]["name"] == "hostile"
            assert "tools" in initialized["result"]["capabilities"]
            await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            tools = await client.request(2, "tools/list", {})
            assert "echo" in {t["name"] for t in tools["result"]["tools"]}
    finally:
        await stop(client)


async def test_roots_list_after_a_probe_waits_for_initialize_and_reaches_the_client(tmp_path: Path) -> None:
    log = tmp_path / "hostile.log"
    process = await open_raw(run_guard(write_config(tmp_path)), env={"HOSTILE_LOG": str(log)})
    client = RawClient(process)
    roots_caps = {"roots": {"listChanged": True}}
    try:
        with anyio.fail_after(40):
            await client.request(0, "server/discover", probe_params(roots_caps))
            # The handshake the probe set off is done, and the server asks for roots at once.
            while not log.exists() or "roots-asked" not in log.read_text():
                await anyio.sleep(0.02)
            await client.send(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {**INIT, "capabilities": roots_caps}}
            )
            answered = initialized = False
            while not (answered and initialized):
                message = await client.receive()
                if message.get("method") == "roots/list":
                    roots = {"roots": [{"uri": "file:///work/project", "name": "project"}]}
                    await client.send({"jsonrpc": "2.0", "id": message["id"], "result": roots})
                    answered = True
                elif message.get("id") == 1 and "method" not in message:
                    initialized = True
            await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            while "roots-answered" not in log.read_text():
                await anyio.sleep(0.02)
            seen = json.loads(first_text(await call(client, 2, "roots")))
            assert seen == {"roots": [{"uri": "file:///work/project", "name": "project"}]}
    finally:
        await stop(client)


# -- HTTP upstreams: resumption, bodies that are not answers ---------------------------------------


def http_config(tmp_path: Path, port: int, **guard: Any) -> str:
    path = tmp_path / "guard-http.json"
    entry = {"url": f"http://127.0.0.1:{port}/mcp"}
    settings = {"requestTimeout": LONG_DEADLINE_S, **guard}
    path.write_text(json.dumps({"mcpServers": {"remote": entry}, "mcpGuard": settings}))
    return str(path)


@asynccontextmanager
async def guarded_http_upstream(tmp_path: Path, **guard: Any) -> AsyncIterator[RawClient]:
    port = free_port()
    async with background(
        [PY, str(FIXTURES / "hostile_http_server.py"), str(port)], f"http://127.0.0.1:{port}/healthz"
    ):
        client = RawClient(await open_raw(run_guard(http_config(tmp_path, port, **guard))))
        try:
            with anyio.fail_after(30):
                reply = await client.initialize()
            assert reply["result"]["serverInfo"]["name"] == "hostile-http"
            yield client
        finally:
            await stop(client)


async def test_sse_stream_closed_before_the_answer_is_resumed_with_last_event_id(tmp_path: Path) -> None:
    async with guarded_http_upstream(tmp_path) as client:
        with anyio.fail_after(20):
            assert first_text(await call(client, 1, "resume")) == "resumed"
            tried = json.loads(first_text(await call(client, 2, "resumes")))
            assert len(tried) == 1 and tried[0].startswith("resume-")  # the id of the event it had


async def test_sse_stream_that_never_resumes_ends_with_a_clear_error_after_bounded_attempts(tmp_path: Path) -> None:
    async with guarded_http_upstream(tmp_path) as client:
        with anyio.fail_after(30):
            reply = await call(client, 1, "never_resume")
            assert reply["error"]["code"] == -32010
            assert "did not answer on any of 5 attempts to resume it" in reply["error"]["message"]
            tried = json.loads(first_text(await call(client, 2, "resumes")))
            assert len(tried) == 5 and len(set(tried)) == 1 and tried[0].startswith("never_resume-")


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ("no_event_id", "closed the stream for request"),
        ("not_json", "with a body that is not JSON-RPC"),
        ("accepted", "(HTTP 202) but will never answer it"),
    ],
)
async def test_http_upstream_answer_that_is_no_answer_fails_the_call_at_once(
    tmp_path: Path, tool: str, expected: str
) -> None:
    async with guarded_http_upstream(tmp_path) as client:
        with anyio.fail_after(20):
            reply = await call(client, 1, tool)
            assert reply["error"]["code"] == -32010
            assert expected in reply["error"]["message"]
            assert first_text(await call(client, 2, "echo", {"message": "next"})) == "next"


async def test_silent_http_upstream_ends_at_the_deadline_and_is_told_the_request_is_cancelled(tmp_path: Path) -> None:
    async with guarded_http_upstream(tmp_path, requestTimeout=1) as client:
        with anyio.fail_after(20):
            reply = await call(client, 1, "silence")
            assert reply["error"]["code"] == -32013
            assert "'remote' did not answer tools/call within 1 s" in reply["error"]["message"]
            # The server hears of it twice: the cancel notification, and the stream hung up.
            rid = 2
            while len(cancelled := json.loads(first_text(await call(client, rid, "cancels")))) < 2:
                rid += 1
            assert "stream-closed" in cancelled and any(isinstance(item, int) for item in cancelled)


async def test_lone_surrogate_from_an_http_upstream_is_answered_not_fatal(tmp_path: Path) -> None:
    async with guarded_http_upstream(tmp_path) as client:
        with anyio.fail_after(20):
            assert first_text(await call(client, 1, "surrogate")) == "x \ufffd y"


async def test_endless_http_upstream_body_fails_the_call_once_past_the_size_limit(tmp_path: Path) -> None:
    async with guarded_http_upstream(tmp_path, maxMessageBytes=2048) as client:
        with anyio.fail_after(20):
            reply = await call(client, 1, "huge")
            assert reply["error"]["code"] == -32011
            assert "over mcp-guard's message size limit" in reply["error"]["message"]
            assert first_text(await call(client, 2, "echo", {"message": "next"})) == "next"


async def test_serve_answers_a_lone_surrogate_result_as_valid_utf8_json(tmp_path: Path) -> None:
    port = free_port()
    serve = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--config", write_config(tmp_path), "--port", str(port)]
    url = f"http://127.0.0.1:{port}/mcp"
    headers = {"Accept": "application/json"}
    async with background(serve, f"http://127.0.0.1:{port}/healthz"), httpx.AsyncClient(timeout=None) as http:
        with anyio.fail_after(30):
            init = await http.post(
                url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}, headers=headers
            )
            session = {**headers, "Mcp-Session-Id": init.headers["mcp-session-id"]}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "surrogate", "arguments": {}}}
            reply = await http.post(url, json=body, headers=session)
            assert json.loads(reply.content.decode("utf-8"))["result"]["content"][0]["text"] == "before \ufffd after"
            again = await http.post(
                url, json={**body, "id": 2, "params": {"name": "echo", "arguments": {"message": "ok"}}}, headers=session
            )
            assert again.json()["result"]["content"][0]["text"] == "ok"


# -- the HTTP front: two POSTs with one id ------------------------------------------------------------


async def test_duplicate_in_flight_id_across_concurrent_posts_is_refused_and_the_first_still_answered(
    tmp_path: Path,
) -> None:
    port = free_port()
    serve = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--config", write_config(tmp_path), "--port", str(port)]
    url = f"http://127.0.0.1:{port}/mcp"
    headers = {"Accept": "application/json, text/event-stream"}
    async with background(serve, f"http://127.0.0.1:{port}/healthz"), httpx.AsyncClient(timeout=None) as http:
        with anyio.fail_after(30):
            init = await http.post(
                url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}, headers=headers
            )
            session = {**headers, "Mcp-Session-Id": init.headers["mcp-session-id"]}
            slow = {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "progress", "arguments": {"steps": 2, "interval": 0.5}},
            }
            quick = {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "dup"}},
            }
            answers: dict[str, Any] = {}

            async def first() -> None:
                async with http.stream("POST", url, json=slow, headers=session) as response:
                    started.set()
                    answers["first"] = [
                        json.loads(line[5:]) async for line in response.aiter_lines() if line.startswith("data:")
                    ]

            started = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await started.wait()  # the first POST's stream is open: its request is in flight
                answers["second"] = (
                    await http.post(url, json=quick, headers={**session, "Accept": "application/json"})
                ).json()
    assert answers["second"]["id"] == 7 and answers["second"]["error"]["code"] == -32600
    assert "already in use" in answers["second"]["error"]["message"]
    assert answers["first"][-1]["id"] == 7 and answers["first"][-1]["result"]["content"][0]["text"] == "progressed"


async def test_server_filesystem_gets_the_roots_of_a_client_that_probes_before_initialize(tmp_path: Path) -> None:
    """Claude Code's sequence against the real server: the roots it gives replace the command line's."""
    from_args, from_roots = tmp_path / "from-args", tmp_path / "from-roots"
    from_args.mkdir()
    from_roots.mkdir()
    upstream = node_server("server-filesystem", str(from_args))
    argv = [PY, "-m", "mcp_guard", "run", "--no-policy", "--", *upstream]
    process = await open_raw(argv, env={"MCP_GUARD_LOG_LEVEL": "info", "MCP_GUARD_LOG_FORMAT": "text"})
    client = RawClient(process)
    roots_caps = {"roots": {"listChanged": True}}
    try:
        with anyio.fail_after(40):
            await client.request(0, "server/discover", probe_params(roots_caps))
            # The server asks for roots as soon as the probe's handshake is done: the guard must hold
            # that question for the client's initialize, not refuse it (which the server logs).
            said = await stderr_until(
                process, ["before the client finished its handshake", "Failed to request initial roots"]
            )
            assert "before the client finished its handshake" in said
            await client.send(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {**INIT, "capabilities": roots_caps}}
            )
            answered = initialized = False
            while not (answered and initialized):
                message = await client.receive()
                if message.get("method") == "roots/list":
                    roots = {"roots": [{"uri": from_roots.as_uri(), "name": "project"}]}
                    await client.send({"jsonrpc": "2.0", "id": message["id"], "result": roots})
                    answered = True
                elif message.get("id") == 1 and "method" not in message:
                    initialized = True
            await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await stderr_until(process, ["Updated allowed directories from MCP roots"])
            allowed = first_text(await call(client, 2, "list_allowed_directories"))
            assert str(from_roots) in allowed and str(from_args) not in allowed
    finally:
        await stop(client)


async def stderr_until(process: anyio.abc.Process, needles: list[str]) -> str:
    """Read the guard's stderr until one of ``needles`` shows; return what was read."""
    assert process.stderr is not None
    seen = ""
    while not any(needle in seen for needle in needles):
        seen += (await process.stderr.receive()).decode("utf-8", "replace")
    return seen


async def test_client_that_never_answers_roots_list_gets_the_server_an_error_at_the_deadline(tmp_path: Path) -> None:
    log = tmp_path / "hostile.log"
    process = await open_raw(run_guard(write_config(tmp_path, timeout=1)), env={"HOSTILE_LOG": str(log)})
    client = RawClient(process)
    try:
        with anyio.fail_after(30):
            await client.request(0, "initialize", {**INIT, "capabilities": {"roots": {}}})
            await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            question = await client.receive()
            assert question["method"] == "roots/list"  # and never answered
            while not log.exists() or "roots-answered" not in log.read_text():
                await anyio.sleep(0.02)
            told = json.loads(first_text(await call(client, 1, "roots")))
            assert told["code"] == -32013
            assert "did not answer roots/list within 1 s" in told["message"]
    finally:
        await stop(client)


async def test_serve_refuses_a_post_body_over_the_size_limit_before_reading_it(tmp_path: Path) -> None:
    config = tmp_path / "guard.json"
    entry = {"command": HOSTILE[0], "args": HOSTILE[1:]}
    config.write_text(json.dumps({"mcpServers": {"hostile": entry}, "mcpGuard": {"maxMessageBytes": 2048}}))
    port = free_port()
    serve = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--config", str(config), "--port", str(port)]
    async with background(serve, f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(20):
            # Ten gigabytes announced, a few bytes sent: only a server that checks first answers.
            async with await anyio.connect_tcp("127.0.0.1", port) as sock:
                head = (
                    f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                    "Accept: application/json\r\nContent-Length: 10000000000\r\n\r\n"
                )
                await sock.send(head.encode() + b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {')
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += await sock.receive()
            assert answer.startswith(b"HTTP/1.1 413")

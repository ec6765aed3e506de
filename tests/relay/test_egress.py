"""One egress: whatever route an upstream's data takes toward the client, it arrives masked.

A hostile upstream (fixtures/leaky_server.py) writes canary values into every place the protocol
lets a server write. Each test drives one route through the real guard over stdio (`run`) or HTTP
(`serve`) and scans every raw byte the client received, base64 payloads decoded too."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import string
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import FIXTURES, PY, background, free_port, node_server
from tests.rawclient import RawClient

pytestmark = pytest.mark.anyio

ALLOW_ALL = "version: 1\ndefaults: {action: allow}\n"
CAPS = {"sampling": {}, "elicitation": {"form": {}}, "roots": {}}


def canaries() -> dict[str, str]:
    """Fresh values per test, built at run time: no secret-shaped string lives in the repo."""
    alphabet = string.ascii_uppercase + "234567"
    return {
        "LEAK_KEY": "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
        "LEAK_EMAIL": f"leak.{secrets.token_hex(4)}@example.com",
        "LEAK_PASSWORD": "Pw" + secrets.token_hex(8) + "-horse",
    }


class LeakClient(RawClient):
    """A raw client that keeps every byte it received and answers the server's questions."""

    def __init__(self, process: Any) -> None:
        super().__init__(process)
        self.raw = bytearray()
        self.mark = (0, 0)  # where the handshake's bytes and messages end

    def since_handshake(self) -> tuple[bytes, list[dict[str, Any]]]:
        return bytes(self.raw[self.mark[0] :]), self.seen[self.mark[1] :]

    async def read_chunk(self) -> bytes:
        chunk = await super().read_chunk()
        self.raw += chunk
        return chunk

    async def response(self, rid: Any) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if "method" in message and "id" in message:
                await self.send({"jsonrpc": "2.0", "id": message["id"], "result": _answer(message["method"])})
            elif message.get("id") == rid and "method" not in message:
                return message

    async def call(self, rid: int, route: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": "leak", "arguments": {"route": route}}
        if meta:
            params["_meta"] = meta
        return await self.request(rid, "tools/call", params)


def _answer(method: str) -> dict[str, Any]:
    if method == "sampling/createMessage":
        return {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}
    if method == "elicitation/create":
        return {"action": "accept", "content": {"x": "y"}}
    return {"roots": []} if method == "roots/list" else {}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def assert_clean(raw: bytes, messages: list[dict[str, Any]], values: list[str]) -> None:
    """No value in the bytes, in any decoded string, or in any base64 payload's bytes."""
    decoded = [s for s in _strings(messages)]
    for text in list(decoded):
        if len(text) >= 8 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", text):
            try:
                decoded.append(base64.b64decode(text, validate=False).decode("latin-1"))
            except (binascii.Error, ValueError):
                pass
    for value in values:
        assert value.encode() not in raw, "a canary reached the client in the raw bytes"
        assert not any(value in text for text in decoded), "a canary reached the client in a decoded string"


def guard_argv(tmp_path: Path) -> list[str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(ALLOW_ALL)
    return [PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", PY, str(FIXTURES / "leaky_server.py")]


async def open_leaky(tmp_path: Path, env: dict[str, str]) -> tuple[Any, LeakClient]:
    process = await anyio.open_process(
        guard_argv(tmp_path), env={**os.environ, **env}, stderr=subprocess.DEVNULL
    )
    client = LeakClient(process)
    reply = await client.request(0, "initialize", {**_init(), "capabilities": CAPS})
    assert "result" in reply
    await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    client.mark = (len(client.raw), len(client.seen))
    return process, client


def _init() -> dict[str, Any]:
    return {"protocolVersion": "2025-11-25", "clientInfo": {"name": "egress-test", "version": "1"}}


def placeholder_of(client: LeakClient, label: str) -> str:
    found = re.search(rf"<{label}_\d+>", json.dumps(client.seen))
    assert found is not None, f"no {label} placeholder reached the client"
    return found.group(0)


# -- the routes: each drives the client through one place the upstream wrote into ---------------


async def r_instructions(c: LeakClient) -> None:
    instructions = c.seen[0]["result"]["instructions"]
    assert "<EMAIL_" in instructions and "<SECRET_" in instructions


async def r_listings(c: LeakClient) -> None:
    tools = await c.request(1, "tools/list")
    assert "<SECRET_" in tools["result"]["tools"][0]["description"]
    assert "<EMAIL_" in tools["result"]["tools"][0]["inputSchema"]["properties"]["route"]["description"]
    await c.request(2, "resources/list")
    await c.request(3, "resources/templates/list")
    await c.request(4, "prompts/list")


async def r_completion(c: LeakClient) -> None:
    ref = {"type": "ref/prompt", "name": "p"}
    reply = await c.request(1, "completion/complete", {"ref": ref, "argument": {"name": "a", "value": ""}})
    assert all(v.startswith("<") for v in reply["result"]["completion"]["values"])


async def r_error(c: LeakClient) -> None:
    reply = await c.call(1, "error")
    assert "<EMAIL_" in reply["error"]["message"]


async def r_log(c: LeakClient) -> None:
    await c.call(1, "log")
    logs = [m for m in c.seen if m.get("method") == "notifications/message"]
    assert logs and "<SECRET_" in json.dumps(logs)


async def r_progress(c: LeakClient) -> None:
    await c.call(1, "progress", {"progressToken": "p1"})
    notes = [m for m in c.seen if m.get("method") == "notifications/progress"]
    assert notes and notes[0]["params"]["progressToken"] == "p1" and "<SECRET_" in notes[0]["params"]["message"]


async def r_meta(c: LeakClient) -> None:
    reply = await c.call(1, "meta")
    assert reply["result"]["_meta"]["key"].startswith("<SECRET_")


async def r_split(c: LeakClient) -> None:
    reply = await c.call(1, "split")
    texts = [b["text"] for b in reply["result"]["content"]]
    assert texts[0].startswith("key <SECRET_")


async def r_protocol_names(c: LeakClient) -> None:
    """Data under names the protocol uses at a message's top (id, method, requestState, ...) is
    data like any other anywhere deeper: a record's "id" holding an address is masked."""
    reply = await c.call(1, "protocol_names")
    assert reply["result"]["structuredContent"]["users"][0]["id"].startswith("<EMAIL_")
    await c.call(2, "protocol_names_error")
    await c.call(3, "protocol_names_log")
    tools = await c.request(4, "tools/list")
    names = next(t for t in tools["result"]["tools"] if t["name"] == "names")
    assert names["inputSchema"]["properties"]["protocolVersion"]["default"].startswith("<SECRET_")


async def r_top_fields(c: LeakClient) -> None:
    """The fields kept at a message's top are kept only where the protocol puts them, with the
    type it gives them: a result's "total" or "requestId", text in a progress count, are masked."""
    reply = await c.call(1, "top_fields")
    assert reply["result"]["total"].startswith("<SECRET_") and reply["result"]["progress"].startswith("<EMAIL_")
    await c.call(2, "progress_fields", {"progressToken": "p2"})
    progress = [m for m in c.seen if m.get("method") == "notifications/progress"]
    assert progress and progress[-1]["params"]["progress"].startswith("<SECRET_")


async def r_split_around(c: LeakClient) -> None:
    reply = await c.call(1, "split_around")
    texts = [b["text"] for b in reply["result"]["content"] if b["type"] == "text"]
    assert texts[0].startswith("key <SECRET_") and len(reply["result"]["content"]) == 4


async def r_repeated_keys(c: LeakClient) -> None:
    """JSON text that repeats a key reads clean when parsed (the last value wins), but the model
    reads the text, first value and all: every value of the key is masked, the text stays JSON."""
    reply = await c.call(1, "repeated_keys")
    blocks = reply["result"]["content"]
    assert "<EMAIL_" in blocks[0]["text"] and blocks[0]["text"].count("<SECRET_") == 1
    assert "<SECRET_" in blocks[1]["resource"]["text"]
    logs = [m for m in c.seen if m.get("method") == "notifications/message"]
    assert logs and "<SECRET_" in json.dumps(logs)
    error = await c.call(2, "repeated_keys_error")
    assert "<EMAIL_" in error["error"]["message"]


async def r_b64_text(c: LeakClient) -> None:
    reply = await c.call(1, "b64_text")
    assert reply["result"]["content"][0]["text"].count("<SECRET_") == 2


async def r_blob(c: LeakClient) -> None:
    reply = await c.call(1, "blob")
    blocks = reply["result"]["content"]
    assert "<SECRET_" in base64.b64decode(blocks[0]["resource"]["blob"]).decode()
    assert blocks[1]["type"] == "text" and "withheld" in blocks[1]["text"]


async def r_sampling(c: LeakClient) -> None:
    await c.call(1, "sampling")
    asked = [m for m in c.seen if m.get("method") == "sampling/createMessage"]
    assert asked and "<SECRET_" in json.dumps(asked)


async def r_elicitation(c: LeakClient) -> None:
    await c.call(1, "elicit")
    assert any(m.get("method") == "elicitation/create" for m in c.seen)


async def r_subscription(c: LeakClient) -> None:
    await c.request(1, "resources/subscribe", {"uri": "file:///a"})
    with anyio.fail_after(10):
        while not any(m.get("method") == "notifications/resources/updated" for m in c.seen):
            await c.receive()


async def r_uri_echo(c: LeakClient) -> None:
    await c.call(9, "email")
    email = placeholder_of(c, "EMAIL")
    reply = await c.request(1, "resources/read", {"uri": f"file:///users/{email}"})
    assert reply["result"]["contents"][0]["uri"] == f"file:///users/{email}"


async def r_laundering(c: LeakClient) -> None:
    first = await c.call(1, "password")
    secret = re.search(r"<SECRET_\d+>", first["result"]["content"][0]["text"])
    assert secret is not None
    await c.request(2, "tools/call", {"name": "store", "arguments": {"value": secret.group(0)}})
    back = await c.request(3, "tools/call", {"name": "fetch", "arguments": {}})
    assert back["result"]["content"][0]["text"] == secret.group(0)
    media = await c.request(4, "tools/call", {"name": "fetch_media", "arguments": {}})
    assert base64.b64decode(media["result"]["content"][0]["data"]).decode() == secret.group(0)


async def r_deep(c: LeakClient) -> None:
    reply = await c.call(1, "deep")
    assert "error" in reply or reply["result"].get("isError")
    assert (await c.request(2, "ping"))["result"] == {}


async def r_split_key_value(c: LeakClient) -> None:
    """A key that ends one text block names the value that starts the next; the model reads them
    as one text, so the value is masked in the block that holds it."""
    reply = await c.call(1, "split_key_value")
    texts = [b["text"] for b in reply["result"]["content"]]
    assert texts[1].startswith("<SECRET_") and texts[3].startswith("<SECRET_")


async def r_secret_trees(c: LeakClient) -> None:
    reply = await c.call(1, "secret_trees")
    assert json.dumps(reply["result"]).count("<SECRET_") >= 6


ROUTES: dict[str, Callable[[LeakClient], Awaitable[None]]] = {
    "instructions": r_instructions, "listings": r_listings, "completion": r_completion, "error": r_error,
    "log": r_log, "progress": r_progress, "meta": r_meta, "split": r_split, "blob": r_blob,
    "sampling": r_sampling, "elicitation": r_elicitation, "subscription": r_subscription,
    "uri_echo": r_uri_echo, "laundering": r_laundering, "deep": r_deep, "protocol_names": r_protocol_names,
    "split_around": r_split_around, "b64_text": r_b64_text, "top_fields": r_top_fields,
    "repeated_keys": r_repeated_keys, "split_key_value": r_split_key_value, "secret_trees": r_secret_trees,
}


@pytest.mark.parametrize("route", list(ROUTES))
async def test_no_canary_from_a_hostile_upstream_reaches_the_client_by_any_route(tmp_path: Path, route: str) -> None:
    values = canaries()
    with anyio.fail_after(60):
        process, client = await open_leaky(tmp_path, values)
        async with process:
            try:
                await ROUTES[route](client)
            finally:
                await client.process.stdin.aclose()  # type: ignore[union-attr]
    pieces = [values["LEAK_KEY"][:10], values["LEAK_KEY"][10:]] if route in ("split", "split_around") else []
    if route in ("split_key_value", "secret_trees"):
        pieces = [values["LEAK_PASSWORD"][::-1], values["LEAK_PASSWORD"][2:14]]
    # Each route is judged on what came after the handshake; the handshake is a route of its own.
    raw, seen = (bytes(client.raw), client.seen) if route == "instructions" else client.since_handshake()
    assert_clean(raw, seen, [*values.values(), *pieces])


async def test_a_json_record_reaches_the_client_with_the_values_its_keys_name_masked(tmp_path: Path) -> None:
    """Names, places, SSNs and phones are labeled by their keys; the guard parses a JSON result
    (a text block and structuredContent), and each value is still read under its key."""
    surname = "".join(secrets.choice("bcdfgklmnprstvz") + secrets.choice("aeiou") for _ in range(4)).capitalize()
    person = {"name": f"Maren {surname}", "city": f"{surname}ville", "ssn": f"{secrets.randbelow(500) + 100}"
              f"{secrets.randbelow(89) + 10}{secrets.randbelow(8999) + 1000}", "phone": f"415555{secrets.randbelow(8999) + 1000}",
              "mobile": f"+1 415 555 {secrets.randbelow(8999) + 1000}"}
    with anyio.fail_after(60):
        process, client = await open_leaky(tmp_path, {"LEAK_RECORD": json.dumps(person)})
        async with process:
            try:
                reply = await client.call(1, "records")
            finally:
                await client.process.stdin.aclose()  # type: ignore[union-attr]
    result = reply["result"]
    assert result["structuredContent"]["customer"]["full_name"].startswith("<PERSON_")
    assert json.loads(result["content"][0]["text"])["customer"]["ssn"].startswith("<US_SSN_")
    raw, seen = client.since_handshake()
    assert_clean(raw, seen, list(person.values()))


async def test_a_ping_is_answered_while_a_large_result_is_being_masked(tmp_path: Path) -> None:
    """Masking runs off the event loop: the ping, sent once the upstream has written a large
    result, is answered before that result (ordered by events, not by time)."""
    fifo = tmp_path / "sent"
    os.mkfifo(fifo)
    values = {**canaries(), "LEAK_SIGNAL": str(fifo)}
    with anyio.fail_after(60):
        process, client = await open_leaky(tmp_path, values)
        async with process:
            await client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": "leak", "arguments": {"route": "big"}}})
            await anyio.to_thread.run_sync(fifo.read_text)  # returns once the upstream wrote the result
            await client.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
            order = []
            while len(order) < 2:
                message = await client.receive()
                if message.get("id") in (1, 2):
                    order.append(message["id"])
            await client.process.stdin.aclose()  # type: ignore[union-attr]
    assert order == [2, 1]
    big = next(m for m in client.seen if m.get("id") == 1)["result"]["content"][0]["text"]
    assert "<EMAIL_" in big and "@example.com" not in big


async def test_a_ping_is_answered_while_a_large_argument_is_read_for_sensitive_values(tmp_path: Path) -> None:
    """A client's arguments are the client's to size: a megabyte of distinct addresses is read
    off the event loop, so a ping sent right behind it is answered first, although the call
    needs no upstream at all (the policy refuses it once the labels are known)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\nrules:\n  - {name: no-leak, match: {tool: leak}, action: deny}\n")
    argv = [PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", PY, str(FIXTURES / "leaky_server.py")]
    letters = " ".join(f"user{i}.{secrets.token_hex(2)}@example{i % 97}.org" for i in range(40_000))
    with anyio.fail_after(120):
        process = await anyio.open_process(argv, env={**os.environ, **canaries()}, stderr=subprocess.DEVNULL)
        client = LeakClient(process)
        async with process:
            await client.request(0, "initialize", {**_init(), "capabilities": {}})
            await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await client.request(1, "tools/list", {})  # the catalog is known: the call waits on nothing upstream
            await client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                               "params": {"name": "leak", "arguments": {"route": "text", "letters": letters}}})
            await client.send({"jsonrpc": "2.0", "id": 3, "method": "ping"})
            order = []
            while len(order) < 2:
                message = await client.receive()
                if message.get("id") in (2, 3):
                    order.append(message["id"])
            await client.process.stdin.aclose()  # type: ignore[union-attr]
    assert order == [3, 2]
    refused = next(m for m in client.seen if m.get("id") == 2)["result"]
    assert refused["isError"] and "no-leak" in refused["content"][0]["text"]


async def fs_call(client: LeakClient, rid: int, tool: str, **arguments: str) -> dict[str, Any]:
    return await client.request(rid, "tools/call", {"name": tool, "arguments": arguments})


async def test_a_value_laundered_through_server_filesystem_comes_back_masked_as_text_and_as_media(
    tmp_path: Path,
) -> None:
    """The model saw a password only as a placeholder, wrote it to a file (the guard rehydrates
    toward its origin server), and reads the file back as text and as media."""
    password = canaries()["LEAK_PASSWORD"]
    root = tmp_path / "files"
    root.mkdir()
    (root / "creds.txt").write_text(f"db password={password}\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(ALLOW_ALL)
    fs = node_server("server-filesystem", str(root))
    argv = [PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", *fs]
    with anyio.fail_after(60):
        process = await anyio.open_process(argv, stderr=subprocess.DEVNULL)
        client = LeakClient(process)
        async with process:
            await client.request(0, "initialize", {**_init(), "capabilities": {}})
            await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            read = await fs_call(client, 1, "read_text_file", path=str(root / "creds.txt"))
            secret = re.search(r"<SECRET_\d+>", json.dumps(read))
            assert secret is not None
            copy = root / "copy.png"
            await fs_call(client, 2, "write_file", path=str(copy), content=secret.group(0))
            assert copy.read_text() == password  # rehydrated toward its own server, as designed
            text = await fs_call(client, 3, "read_text_file", path=str(copy))
            media = await fs_call(client, 4, "read_media_file", path=str(copy))
            await client.process.stdin.aclose()  # type: ignore[union-attr]
    assert secret.group(0) in json.dumps(text["result"])
    blocks = media["result"]["content"]
    assert any(base64.b64decode(b.get("data", "")) == secret.group(0).encode() for b in blocks)
    assert_clean(bytes(client.raw), client.seen, [password])


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.mark.parametrize("route", ["error", "meta", "split", "blob", "listing"])
async def test_a_2026_client_over_run_gets_every_route_masked_too(tmp_path: Path, route: str) -> None:
    values = canaries()
    with anyio.fail_after(60):
        env = {**os.environ, **values}
        process = await anyio.open_process(guard_argv(tmp_path), env=env, stderr=subprocess.DEVNULL)
        client = LeakClient(process)
        async with process:
            if route == "listing":
                reply = await client.request(1, "tools/list", {"_meta": MODERN_META})
            else:
                params = {"name": "leak", "arguments": {"route": route}, "_meta": MODERN_META}
                reply = await client.request(1, "tools/call", params)
            await client.process.stdin.aclose()  # type: ignore[union-attr]
    assert "result" in reply or "error" in reply
    pieces = [values["LEAK_KEY"][:10], values["LEAK_KEY"][10:]] if route in ("split", "split_around") else []
    if route in ("split_key_value", "secret_trees"):
        pieces = [values["LEAK_PASSWORD"][::-1], values["LEAK_PASSWORD"][2:14]]
    assert_clean(bytes(client.raw), client.seen, [*values.values(), *pieces])


# -- serve --------------------------------------------------------------------------------------


async def _post(http: httpx.AsyncClient, url: str, message: dict[str, Any], session: str | None) -> httpx.Response:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    if session:
        headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = "2025-11-25"
    return await http.post(url, content=json.dumps(message), headers=headers, timeout=30)


@pytest.mark.parametrize("route", ["progress", "error", "meta", "blob", "listing"])
async def test_serve_masks_every_route_toward_an_http_client(tmp_path: Path, route: str) -> None:
    values = canaries()
    policy = tmp_path / "policy.yaml"
    policy.write_text(ALLOW_ALL)
    port = free_port()
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--",
            PY, str(FIXTURES / "leaky_server.py")]
    url = f"http://127.0.0.1:{port}/mcp"
    with anyio.fail_after(60):
        async with background(argv, f"http://127.0.0.1:{port}/healthz", env=values):
            async with httpx.AsyncClient() as http:
                init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {**_init(), "capabilities": {}}}
                first = await _post(http, url, init, None)
                session = first.headers["mcp-session-id"]
                await _post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
                call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "leak", "arguments": {"route": route}, "_meta": {"progressToken": 7}}}
                if route == "listing":
                    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
                reply = await _post(http, url, call, session)
                raw = reply.content  # the handshake's answer is judged by the stdio tests
    assert b'"id":1' in raw.replace(b" ", b"")
    lines = raw.decode().splitlines()
    messages = [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip()]
    messages += [json.loads(raw)] if raw[:1] == b"{" else []
    assert messages, "the client received no messages"
    assert_clean(raw, messages, list(values.values()))

"""2026-07-28 requests to `serve` whose Mcp-Method / Mcp-Name / MCP-Protocol-Version headers (or a
tool's Mcp-Param-* headers) do not stand for the body are refused with 400 and HeaderMismatch
(-32020) before anything runs: a load balancer or gateway in front may have routed or allowed on
the headers, and the guard decides on the body alone. A raw HTTP client sends what a hostile or
broken client would; the SDK's client and server show the guard speaks the same rules both ways."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp_guard.protocol import era
from mcp_guard.protocol.mirrored import decode_value, encode_value
from tests.attack.common import attack_canaries, attack_server
from tests.attack.test_wire_http import _messages
from tests.attack.test_wire_stdio import DENY_RAW
from tests.conftest import PY, background, free_port

pytestmark = pytest.mark.anyio

HEADER_MISMATCH = -32020  # the spec's number, written out so a changed constant cannot hide here
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
META = {era.PROTOCOL_KEY: era.MODERN, era.CLIENT_INFO_KEY: {"name": "raw", "version": "1"}, era.CLIENT_CAPS_KEY: {}}


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """`serve` over the attack fixture, which appends each tool it runs to ``ran``; `raw` is denied."""
    port = free_port()
    policy = tmp_path / "policy.yaml"
    policy.write_text(DENY_RAW)
    ran = tmp_path / "ran.txt"
    ran.touch()
    argv = [PY, "-m", "mcp_guard", "serve", "--port", str(port), "--policy", str(policy), "--", *attack_server()]
    async with background(argv, f"http://127.0.0.1:{port}/healthz", env={**attack_canaries(), "ATTACK_RAN": str(ran)}):
        yield f"http://127.0.0.1:{port}/mcp", ran


def body(rid: int, method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**params, "_meta": META}}


def mirrored(message: dict[str, Any]) -> dict[str, str]:
    """The headers a conforming client sends with ``message``."""
    headers = {**ACCEPT, "MCP-Protocol-Version": era.MODERN, "Mcp-Method": message["method"]}
    target = message["params"].get("uri" if message["method"] == "resources/read" else "name")
    if target is not None:
        headers["Mcp-Name"] = encode_value(target)
    return headers


async def refused(http: httpx.AsyncClient, url: str, message: dict[str, Any], headers: Any) -> str:
    """Post and expect the spec's refusal; returns its message."""
    reply = await http.post(url, json=message, headers=headers)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == HEADER_MISMATCH and reply.json()["id"] == message["id"], reply.text
    return str(error["message"])


async def answer(http: httpx.AsyncClient, url: str, message: dict[str, Any], headers: Any) -> dict[str, Any]:
    reply = await http.post(url, json=message, headers=headers)
    assert reply.status_code == 200, reply.text
    return next(m for m in _messages(reply) if m.get("id") == message["id"])


async def test_a_call_whose_mcp_name_names_an_allowed_tool_but_whose_body_names_a_denied_one_is_refused(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as (url, ran):
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                smuggled = body(1, "tools/call", name="raw", arguments={"value": "x"})
                why = await refused(http, url, smuggled, {**mirrored(smuggled), "Mcp-Name": "store"})
                assert "Mcp-Name" in why and "params.name" in why
                # The other way round too: a header that names the denied tool is no way to reach it either.
                disguised = body(2, "tools/call", name="store", arguments={"value": "x"})
                await refused(http, url, disguised, {**mirrored(disguised), "Mcp-Name": "raw"})
                assert ran.read_text() == ""
                # With honest headers the body decides: `raw` is denied by the policy, `store` runs.
                honest = body(3, "tools/call", name="raw", arguments={"value": "x"})
                denied = await answer(http, url, honest, mirrored(honest))
                assert denied["result"]["isError"] is True and "raw is denied" in str(denied["result"])
                allowed = body(4, "tools/call", name="store", arguments={"value": "x"})
                assert "result" in await answer(http, url, allowed, mirrored(allowed))
    assert ran.read_text().split() == ["store"]


async def test_an_mcp_method_header_that_disagrees_with_the_body_is_refused(tmp_path: Path) -> None:
    async with serving(tmp_path) as (url, ran):
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                call = body(1, "tools/call", name="store", arguments={"value": "x"})
                why = await refused(http, url, call, {**mirrored(call), "Mcp-Method": "tools/list"})
                assert "Mcp-Method" in why
                # Header values are case-sensitive: a router may treat TOOLS/CALL as something else.
                await refused(http, url, call, {**mirrored(call), "Mcp-Method": "TOOLS/CALL"})
                listing = body(2, "tools/list")
                await refused(http, url, listing, {**mirrored(listing), "Mcp-Method": "ping"})
    assert ran.read_text() == ""


@pytest.mark.parametrize(
    "drop",
    ["Mcp-Method", "Mcp-Name", "MCP-Protocol-Version"],
    ids=["without-mcp-method", "without-mcp-name", "without-protocol-version"],
)
async def test_a_call_without_a_required_mirrored_header_is_refused(tmp_path: Path, drop: str) -> None:
    async with serving(tmp_path) as (url, ran):
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                call = body(1, "tools/call", name="store", arguments={"value": "x"})
                headers = {k: v for k, v in mirrored(call).items() if k != drop}
                why = await refused(http, url, call, headers)
                assert drop in why and "missing" in why
    assert ran.read_text() == ""


async def test_matching_headers_pass_and_a_request_without_a_target_needs_no_mcp_name(tmp_path: Path) -> None:
    async with serving(tmp_path) as (url, ran):
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                listing = body(1, "tools/list")
                assert "Mcp-Name" not in mirrored(listing)
                tools = (await answer(http, url, listing, mirrored(listing)))["result"]["tools"]
                assert "store" in {t["name"] for t in tools}
                # Base64 form of the name, as a client sends a name that is not plain ASCII.
                call = body(2, "tools/call", name="store", arguments={"value": "x"})
                encoded = "=?base64?" + base64.b64encode(b"store").decode() + "?="
                assert "result" in await answer(http, url, call, {**mirrored(call), "Mcp-Name": encoded})
    assert ran.read_text().split() == ["store"]


async def test_malformed_or_doubled_mirrored_headers_are_refused_not_guessed_at(tmp_path: Path) -> None:
    async with serving(tmp_path) as (url, ran):
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                call = body(1, "tools/call", name="store", arguments={"value": "x"})
                plain = mirrored(call)
                assert "base64" in await refused(http, url, call, {**plain, "Mcp-Name": "=?base64?c3RvcmU?="})
                assert "base64" in await refused(http, url, call, {**plain, "Mcp-Name": "=?base64?not base64!?="})
                # Two copies of a header: a router reading the first and one reading the last disagree.
                doubled = [*((k, v) for k, v in plain.items()), ("Mcp-Name", "raw")]
                assert "more than once" in await refused(http, url, call, doubled)
                # Bytes outside visible ASCII are a malformed header, not a near match for the body.
                odd = [*((k, v) for k, v in plain.items() if k != "Mcp-Name"),
                       (b"Mcp-Name", "st\xf6re".encode("latin-1"))]
                assert "may not carry" in await refused(http, url, call, odd)
    assert ran.read_text() == ""


@pytest.mark.parametrize(
    "text", ["store", "", " padded ", "Hello, \u4e16\u754c", "line1\nline2", "=?base64?literal?=", "a\x00b"],
    ids=["plain", "empty", "padded", "non-ascii", "newline", "sentinel-shaped", "nul"],
)
def test_a_mirrored_value_encodes_to_a_header_safe_form_that_decodes_back(text: str) -> None:
    encoded = encode_value(text)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert decode_value(encoded) == text
    assert (encoded == text) == (text in ("store",))


def starlette_headers(pairs: list[tuple[str, str]]) -> Any:
    from starlette.datastructures import Headers

    return Headers(raw=[(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs])


MISMATCHES = {
    "resource-read-other-uri": (body(1, "resources/read", uri="file:///etc/shadow"), {"Mcp-Name": "file:///tmp/ok"}),
    "prompt-other-name": (body(1, "prompts/get", name="leak_all"), {"Mcp-Name": "greet"}),
    "name-for-a-body-without-one": (body(1, "tools/call", arguments={}), {"Mcp-Name": "store"}),
    "name-vs-non-string-name": (body(1, "tools/call", name=7), {"Mcp-Name": "7"}),
    "version-disagrees": (body(1, "tools/list"), {"MCP-Protocol-Version": "2025-11-25"}),
    "lowercase-base64-marker": (body(1, "tools/call", name="store"), {"Mcp-Name": "=?BASE64?c3RvcmU=?="}),
    "non-canonical-base64": (body(1, "tools/call", name="store"), {"Mcp-Name": "=?base64?c3RvcmV=?="}),
}


@pytest.mark.parametrize("case", list(MISMATCHES), ids=list(MISMATCHES))
def test_each_kind_of_disagreement_between_headers_and_body_is_named(case: str) -> None:
    from mcp_guard.protocol.mirrored import mismatch

    message, changed = MISMATCHES[case]
    honest = {"MCP-Protocol-Version": era.MODERN, "Mcp-Method": message["method"]}
    target = message["params"].get("uri" if message["method"] == "resources/read" else "name")
    if isinstance(target, str):
        honest["Mcp-Name"] = encode_value(target)
        assert mismatch(starlette_headers(list(honest.items())), message) is None
    assert mismatch(starlette_headers(list({**honest, **changed}.items())), message) is not None


@asynccontextmanager
async def serving_params(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """`serve` over a fixture whose execute_sql mirrors region, shard and opts.dry_run in headers."""
    port = free_port()
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n")
    ran = tmp_path / "ran.jsonl"
    ran.touch()
    fixture = Path(__file__).parents[2] / "fixtures" / "param_header_server.py"
    argv = [PY, "-m", "mcp_guard", "serve", "--port", str(port), "--policy", str(policy), "--", PY, str(fixture)]
    async with background(argv, f"http://127.0.0.1:{port}/healthz", env={"PARAM_RAN": str(ran)}):
        yield f"http://127.0.0.1:{port}/mcp", ran


def sql(rid: int, **arguments: Any) -> dict[str, Any]:
    return body(rid, "tools/call", name="execute_sql", arguments={"query": "SELECT 1", **arguments})


async def test_a_call_whose_mcp_param_header_names_another_region_than_its_body_is_refused(tmp_path: Path) -> None:
    """A router in front may have sent the call to us-west1's database on the header; the body says
    eu-central1. The guard runs neither."""
    async with serving_params(tmp_path) as (url, ran):
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                call = sql(1, region="eu-central1")
                why = await refused(http, url, call, {**mirrored(call), "Mcp-Param-Region": "us-west1"})
                assert "Mcp-Param-Region" in why and "region" in why
                # Left out while the body has it, or sent while the body has none: refused too.
                await refused(http, url, call, mirrored(call))
                await refused(http, url, call, {**mirrored(call), "Mcp-Param-Region": "eu-central1",
                                                "Mcp-Param-Shard": "3"})
                nested = sql(2, region="eu-central1", opts={"dry_run": True})
                base = {**mirrored(nested), "Mcp-Param-Region": "eu-central1"}
                assert "Dry-Run" in await refused(http, url, nested, {**base, "Mcp-Param-Dry-Run": "false"})
    assert ran.read_text() == ""


async def test_matching_mcp_param_headers_pass_in_plain_base64_and_numeric_forms(tmp_path: Path) -> None:
    async with serving_params(tmp_path) as (url, ran):
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                call = sql(1, region="eu-central1", shard=42, opts={"dry_run": False})
                headers = {**mirrored(call), "Mcp-Param-Region": "eu-central1", "Mcp-Param-Shard": "42.0",
                           "mcp-param-dry-run": "false"}  # names are case-insensitive; 42.0 is 42
                assert "result" in await answer(http, url, call, headers)
                spaced = sql(2, region=" S\u00e3o Paulo ")
                encoded = {**mirrored(spaced), "Mcp-Param-Region": encode_value(" S\u00e3o Paulo ")}
                assert encoded["Mcp-Param-Region"].startswith("=?base64?")
                assert "result" in await answer(http, url, spaced, encoded)
                # A tool that marks nothing: an unknown Mcp-Param header is ignored, as HTTP asks.
                plain = body(3, "tools/call", name="plain", arguments={})
                assert "result" in await answer(http, url, plain, {**mirrored(plain), "Mcp-Param-Region": "x"})
    assert [json.loads(line)["tool"] for line in ran.read_text().splitlines()] == ["execute_sql", "execute_sql", "plain"]


async def test_a_2026_client_calls_through_serve_a_2026_upstream_whose_tool_mirrors_a_parameter(
    tmp_path: Path,
) -> None:
    """Both ends are the SDK's: the client sends Mcp-Param-Region to the guard, which checks it, and
    the guard sends it on to the upstream, which refuses any call without it."""
    from mcp import Client

    up_port, port = free_port(), free_port()
    fixture = Path(__file__).parents[2] / "fixtures" / "param_header_http_server.py"
    config = tmp_path / "guard.json"
    config.write_text(json.dumps({"mcpServers": {"sql": {"url": f"http://127.0.0.1:{up_port}/mcp"}}}))
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n")
    argv = [PY, "-m", "mcp_guard", "serve", "--config", str(config), "--policy", str(policy), "--port", str(port)]
    upstream = background([PY, str(fixture), "--port", str(up_port)], f"http://127.0.0.1:{up_port}/mcp")
    async with upstream, background(argv, f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(60):
            async with Client(f"http://127.0.0.1:{port}/mcp", mode="2026-07-28", cache=None) as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
                assert tools["execute_sql"].input_schema["properties"]["region"]["x-mcp-header"] == "Region"
                result = await client.call_tool("execute_sql", {"region": "eu-central1", "query": "SELECT 1"})
    assert not result.is_error, result
    assert result.content[0].text == "ran 'SELECT 1' in eu-central1"  # type: ignore[union-attr]


def test_the_headers_the_guard_sends_upstream_mirror_each_marked_argument_in_header_safe_form() -> None:
    from mcp_guard.protocol.mirrored import param_headers, param_mismatch

    schema = {"type": "object", "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "shard": {"type": "integer", "x-mcp-header": "Shard"},
        "opts": {"type": "object", "properties": {"dry_run": {"type": "boolean", "x-mcp-header": "Dry-Run"}}},
    }}
    arguments = {"region": "S\u00e3o Paulo", "shard": 7, "opts": {"dry_run": True}, "query": "x"}
    sent = param_headers(schema, arguments)
    assert sent == {"Mcp-Param-Region": encode_value("S\u00e3o Paulo"), "Mcp-Param-Shard": "7",
                    "Mcp-Param-Dry-Run": "true"}
    assert sent["Mcp-Param-Region"].startswith("=?base64?")
    assert param_mismatch(starlette_headers(list(sent.items())), schema, arguments) is None
    assert param_headers(schema, {"query": "x", "shard": None}) == {}  # absent or null: no header
    # A mark the spec forbids (a number, a token with a space) makes the tool one that mirrors nothing.
    assert param_headers({"properties": {"n": {"type": "number", "x-mcp-header": "N"}}}, {"n": 1.5}) == {}
    assert param_headers({"properties": {"r": {"type": "string", "x-mcp-header": "R x"}}}, {"r": "a"}) == {}

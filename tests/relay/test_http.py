"""`mcp-guard serve` over real HTTP, and HTTP upstreams behind the guard."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from mcp import Client
from mcp.shared.exceptions import MCPError
from tests.conftest import (
    ERAS,
    PY,
    accept_elicitation,
    background,
    connect,
    dump,
    everything,
    free_port,
    node_server,
    probe,
)

pytestmark = pytest.mark.anyio


def serve(port: int, *upstream: str) -> list[str]:
    return [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), "--", *upstream]


@pytest.mark.parametrize("mode", ERAS)
async def test_serve_relays_tools_elicitation_and_progress_over_http(mode: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with background(serve(port, *everything()), f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(60):
            async with Client(url, mode=mode, cache=None, elicitation_callback=accept_elicitation) as client:  # type: ignore[arg-type]
                names = {t.name for t in (await client.list_tools()).tools}
                assert "trigger-elicitation-request" in names
                echo = await client.call_tool("echo", {"message": "over http"})
                assert echo.content[0].text == "Echo: over http"  # type: ignore[union-attr]
                asked = await client.call_tool("trigger-elicitation-request", {})
                assert "User provided the requested information" in asked.content[0].text  # type: ignore[union-attr]
                done = await client.call_tool(
                    "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress
                )
                assert "completed" in done.content[0].text  # type: ignore[union-attr]
    assert progress[-1] == 3


@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.example:80"}, {"Origin": "http://evil.example"}],
    ids=["foreign-host", "foreign-origin"],
)
async def test_serve_refuses_foreign_host_and_origin(headers: dict[str, str]) -> None:
    port = free_port()
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    async with background(serve(port, *probe()), f"http://127.0.0.1:{port}/healthz"):
        async with httpx.AsyncClient() as http:
            accept = {"Accept": "application/json, text/event-stream"}
            refused = await http.post(f"http://127.0.0.1:{port}/mcp", json=init, headers={**accept, **headers})
            assert refused.status_code in (403, 421)
            fine = await http.post(f"http://127.0.0.1:{port}/mcp", json=init, headers={**accept, "Origin": f"http://localhost:{port}"})
            assert fine.status_code == 200
            assert fine.headers["mcp-session-id"]


async def test_serve_answers_unknown_sessions_with_404() -> None:
    port = free_port()
    async with background(serve(port, *probe()), f"http://127.0.0.1:{port}/healthz"):
        async with httpx.AsyncClient() as http:
            reply = await http.post(
                f"http://127.0.0.1:{port}/mcp",
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream", "Mcp-Session-Id": "nope"},
            )
            assert reply.status_code == 404


@pytest.mark.parametrize("mode", ERAS)
async def test_http_upstreams_are_aggregated_with_stdio_ones(tmp_path, mode: str) -> None:
    ev_port, probe_port = free_port(), free_port()
    config = tmp_path / "servers.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "ev": {"url": f"http://127.0.0.1:{ev_port}/mcp"},
                    "probe": {"url": f"http://127.0.0.1:{probe_port}/mcp"},
                    "files": {"command": node_server("server-filesystem")[0], "args": [*node_server("server-filesystem")[1:], str(tmp_path)]},
                }
            }
        )
    )
    (tmp_path / "note.txt").write_text("a note")
    ev = background(["env", f"PORT={ev_port}", *everything()[:2], "streamableHttp"], f"http://127.0.0.1:{ev_port}/mcp")
    pr = background([*probe(), "--http", "--port", str(probe_port)], f"http://127.0.0.1:{probe_port}/mcp")
    async with ev, pr:
        with anyio.fail_after(60):
            async with connect([PY, "-m", "mcp_guard", "run", "--no-policy", "--config", str(config)], mode, elicitation_callback=accept_elicitation) as client:
                names = [t.name for t in (await client.list_tools()).tools]
                assert "ev__echo" in names and "probe__confirm" in names and "files__read_text_file" in names
                assert not [n for n in names if "__" not in n]
                echo = await client.call_tool("ev__echo", {"message": "x"})
                assert echo.content[0].text == "Echo: x"  # type: ignore[union-attr]
                confirm = await client.call_tool("probe__confirm", {"action": "ship"})
                assert dump(confirm)["content"][0]["text"] == "accept: approve=True"
                note = await client.call_tool("files__read_text_file", {"path": str(tmp_path / "note.txt")})
                assert note.content[0].text == "a note"  # type: ignore[union-attr]
                read = await client.read_resource("probe://hello")
                assert read.contents[0].text == "hello from probe"  # type: ignore[union-attr]
                prompts = [p.name for p in (await client.list_prompts()).prompts]
                assert "probe__greet" in prompts and "ev__simple-prompt" in prompts
                greet = await client.get_prompt("probe__greet", {"name": "Ada"})
                assert "Ada" in greet.messages[0].content.text  # type: ignore[union-attr]
                with pytest.raises(MCPError, match="names here look like server__tool"):
                    await client.call_tool("nosuch__tool", {})


async def test_serve_exposes_prometheus_metrics_for_calls_decisions_and_masking(tmp_path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\nrules:\n  - name: no-sum\n    match: {tool: get-sum}\n    action: deny\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", "env", "OWNER=jane.doe@example.com", *everything()]
    async with background(argv, f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(60):
            async with Client(url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                await client.call_tool("echo", {"message": "hi"})
                await client.call_tool("get-sum", {"a": 1, "b": 2})
                await client.call_tool("get-env", {})
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'mcp_guard_calls_total{method="tools/call",outcome="completed",server="server-everything"} 2.0' in text
    assert 'mcp_guard_decisions_total{action="deny",rule="no-sum"} 1.0' in text
    assert 'mcp_guard_masked_values_total{label="EMAIL"} 1.0' in text
    assert "mcp_guard_approvals_pending 0.0" in text
    assert "mcp_guard_audit_failing 0.0" in text and "mcp_guard_audit_backlog " in text
    assert "jane.doe" not in text


async def test_metrics_show_when_the_audit_cannot_be_written_and_calls_are_refused(tmp_path, guard_home) -> None:
    import sqlite3

    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n")
    port = free_port()
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", *everything()]
    async with background(argv, f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(60):
            async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy", cache=None) as client, httpx.AsyncClient() as http:  # type: ignore[arg-type]
                assert not (await client.call_tool("echo", {"message": "recorded"})).is_error
                assert "mcp_guard_audit_failing 0.0" in (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                db = sqlite3.connect(guard_home / "guard.db")
                db.execute("ALTER TABLE audit RENAME TO audit_gone")
                db.commit()
                while not (await client.call_tool("echo", {"message": "unrecorded"})).is_error:
                    pass
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                db.execute("ALTER TABLE audit_gone RENAME TO audit")
                db.commit()
                db.close()
    assert "mcp_guard_audit_failing 1.0" in text

"""Helpers for the caller-authentication tests: real `mcp-guard serve --auth tokens` processes,
tokens made with the real `auth token` CLI, and real HTTP clients carrying them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from tests.conftest import FIXTURES, PY, background, free_port

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LEGACY_INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, on this test's MCP_GUARD_HOME."""
    return subprocess.run([PY, "-m", "mcp_guard", *args], capture_output=True, text=True, timeout=60)


def create_token(name: str, *groups: str) -> str:
    made = cli("auth", "token", "create", name, *[f"--group={g}" for g in groups])
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def tenant() -> list[str]:
    return [PY, str(FIXTURES / "tenant_server.py")]


def canary_secret() -> str:
    """A secret the masking engine knows (an AWS-style key), made at run time."""
    return "AKIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


@asynccontextmanager
async def gateway(
    tmp_path: Path, servers: dict[str, Any], policy: str = "version: 1\ndefaults: {action: allow}\n",
    options: Sequence[str] = (),
) -> AsyncIterator[str]:
    """`serve --auth tokens` in front of ``servers`` (the mcpServers shape); yields the /mcp URL."""
    port = free_port()
    config, rules = tmp_path / "servers.json", tmp_path / "policy.yaml"
    config.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    rules.write_text(policy, encoding="utf-8")
    argv = [PY, "-m", "mcp_guard", "serve", "--auth", "tokens", "--port", str(port), "--policy", str(rules),
            "--config", str(config), *options]
    async with background(argv, f"http://127.0.0.1:{port}/healthz"):
        yield f"http://127.0.0.1:{port}/mcp"


def stdio(command: list[str], shared: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"command": command[0], "args": command[1:]}
    if shared:
        entry["isolation"] = "shared"
    return entry


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def as_caller(url: str, token: str, mode: str, **kwargs: Any) -> AsyncIterator[Client]:
    """An SDK client that sends ``token`` on every request."""
    async with httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30, read=120)) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, cache=None, **kwargs) as client:  # type: ignore[arg-type]
            yield client


def text(result: Any) -> str:
    return result.content[0].text  # type: ignore[no-any-return]


@asynccontextmanager
async def logged(argv: Sequence[str], url: str, log: Path) -> AsyncIterator[None]:
    """Like tests.conftest.background, with the process's stderr kept in ``log`` (to read what it logged)."""
    with log.open("wb") as sink:
        process = await anyio.open_process(list(argv), env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=sink)
        try:
            with anyio.fail_after(30):
                async with httpx.AsyncClient() as http:
                    while True:
                        try:
                            await http.get(url, timeout=1)
                            break
                        except httpx.HTTPError:
                            await anyio.sleep(0.05)
            yield
        finally:
            if process.returncode is None:
                process.terminate()
            with anyio.move_on_after(5, shield=True):
                await process.wait()
            if process.returncode is None:
                process.kill()

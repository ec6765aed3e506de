"""Shared test helpers: real servers, the guard as a real process, a real SDK client.

The reference servers come from the project's own package.json (``npm ci``) and the test
extra (mcp-server-git, mcp-server-time); a missing one fails the test with the install step.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import mcp_types as types
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
NODE_MODULES = ROOT / "node_modules" / "@modelcontextprotocol"
PY = sys.executable
BIN = Path(sys.executable).parent

ERAS = ["legacy", "2026-07-28"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True, scope="session")
def shared_pattern_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled pattern databases (made from the code alone, no test's data) are shared by every
    test's guard: each compiles in seconds, and a fresh home per test would compile them again."""
    cache = tmp_path_factory.mktemp("pattern-cache")
    before = os.environ.get("MCP_GUARD_CACHE")
    os.environ["MCP_GUARD_CACHE"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("MCP_GUARD_CACHE", None)
    else:
        os.environ["MCP_GUARD_CACHE"] = before


@pytest.fixture(autouse=True)
def guard_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own MCP_GUARD_HOME: no state leaks between tests or into ~."""
    home = tmp_path / "guard-home"
    monkeypatch.setenv("MCP_GUARD_HOME", str(home))
    return home


def node_server(package: str, *args: str) -> list[str]:
    entry = NODE_MODULES / package / "dist" / "index.js"
    if not entry.exists():
        pytest.fail(f"{entry} is missing: run `npm ci` in {ROOT}")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed")
    return [node, str(entry), *args]


def everything() -> list[str]:
    return node_server("server-everything", "stdio")


def python_server(script: str, *args: str) -> list[str]:
    exe = BIN / script
    if not exe.exists():
        pytest.fail(f"{exe} is missing: pip install -e '.[test]'")
    return [str(exe), *args]


def probe() -> list[str]:
    return [PY, str(FIXTURES / "probe_server.py")]


def guard(*upstream: str, options: Sequence[str] = (), policy: str | None = None) -> list[str]:
    """The guard around one stdio upstream; a pure relay unless a policy file is given."""
    chosen = ["--policy", policy] if policy else ["--no-policy"]
    return [PY, "-m", "mcp_guard", "run", *chosen, *options, "--", *upstream]


def params(argv: Sequence[str], env: dict[str, str] | None = None) -> StdioServerParameters:
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    if "MCP_GUARD_HOME" in os.environ:
        full_env.setdefault("MCP_GUARD_HOME", os.environ["MCP_GUARD_HOME"])
    return StdioServerParameters(command=argv[0], args=list(argv[1:]), env=full_env)


async def accept_elicitation(ctx: Any, p: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"approve": True, "name": "Tester", "check": True})


async def answer_sampling(ctx: Any, p: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(text="four"), model="test-model")


async def list_roots(ctx: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///tmp/root-a", name="a")])


@asynccontextmanager
async def connect(argv: Sequence[str], mode: str = "legacy", env: dict[str, str] | None = None, **kwargs: Any) -> AsyncIterator[Client]:
    async with Client(params(argv, env), mode=mode, cache=None, **kwargs) as client:  # type: ignore[arg-type]
        yield client


def dump(model: Any) -> Any:
    """A comparable plain form of an SDK result, without the per-server stamp."""
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(data, dict):
        meta = data.get("_meta")
        if isinstance(meta, dict):
            meta.pop("io.modelcontextprotocol/serverInfo", None)
            if not meta:
                data.pop("_meta")
    return data


def missing(what: str, install: str) -> None:
    """A system package a test needs is absent: skip, naming the install step, so the README's
    test command runs on a fresh machine. Under CI (MCP_GUARD_CI=1, set by .ci/run) it fails
    instead, so nothing is skipped there without anyone noticing."""
    message = f"{what} is not installed here: {install}"
    if os.environ.get("MCP_GUARD_CI") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def background(
    argv: Sequence[str], url: str, env: dict[str, str] | None = None, stderr: Any = None
) -> AsyncIterator[Any]:
    """Run a server process until ``url`` answers, and stop it afterwards; its stderr goes to
    ``stderr`` (an open file) when given, else nowhere."""
    import subprocess

    import anyio
    import httpx

    process = await anyio.open_process(
        list(argv), env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if stderr is None else stderr,
    )
    try:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                while True:
                    try:
                        await http.get(url, timeout=1)
                        break
                    except httpx.HTTPError:
                        await anyio.sleep(0.05)
        yield process
    finally:
        process.terminate()
        with anyio.move_on_after(5, shield=True):
            await process.wait()
        if process.returncode is None:
            process.kill()

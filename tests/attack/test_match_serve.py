"""Red team, matching over `mcp-guard serve` (streamable HTTP), in both protocol eras: the same sidesteps
as over stdio, against the real server-filesystem and the hostile name-folding server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp import Client
from tests.conftest import ERAS, FIXTURES, PY, background, free_port, node_server

pytestmark = pytest.mark.anyio

POLICY = """\
version: 1
defaults: {action: allow}
rules:
  - name: no-critical
    match: {risk: critical}
    action: deny
  - name: no-etc
    match: {args: {"$.path": "/etc/*"}}
    action: deny
  - name: no-etc-in-lists
    match: {args: {"$.paths": "/etc/*"}}
    action: deny
"""
SPELLINGS = [
    "//etc/hosts",
    "/./etc/hosts",
    "/tmp/../etc/hosts",
    "file:///etc/hosts",
    "/etc/hosts/",
    "etc/hosts",
    "file://localhost/etc/hosts",
    "~/../../../../etc/hosts",
]


def serve(tmp_path: Path, port: int, *upstream: str) -> list[str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", *upstream]


def text(result: Any) -> str:
    return result.content[0].text  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ERAS)
async def test_no_spelling_of_etc_hosts_is_read_over_serve(tmp_path: Path, guard_home: Path, mode: str) -> None:
    port = free_port()
    argv = serve(tmp_path, port, *node_server("server-filesystem", "/"))
    async with background(argv, f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(90):
            url = f"http://127.0.0.1:{port}/mcp"
            async with Client(url, mode=mode, cache=None) as client:  # type: ignore[arg-type]
                single = {s: await client.call_tool("read_text_file", {"path": s}) for s in SPELLINGS}
                listed = await client.call_tool("read_multiple_files", {"paths": ["/tmp", *SPELLINGS]})
    assert [s for s, r in single.items() if not r.is_error] == []
    assert "localhost" not in text(listed)


@pytest.mark.parametrize("mode", ERAS)
async def test_loose_spellings_of_a_denied_tool_never_run_over_serve(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    port = free_port()
    log = tmp_path / "ran.log"
    argv = serve(tmp_path, port, PY, str(FIXTURES / "attack_match_server.py"))
    spellings = ["delete_all ", "Delete_All", "ｄｅｌｅｔｅ_ａｌｌ", "srv__delete_all"]
    async with background(argv, f"http://127.0.0.1:{port}/healthz", env={"MATCH_LOG": str(log)}):
        with anyio.fail_after(90):
            url = f"http://127.0.0.1:{port}/mcp"
            async with Client(url, mode=mode, cache=None) as client:  # type: ignore[arg-type]
                await client.list_tools()
                results = {s: await client.call_tool(s, {}) for s in spellings}
    assert [s for s, r in results.items() if not r.is_error] == []
    assert "ran:delete_all" not in (log.read_text() if log.exists() else "")

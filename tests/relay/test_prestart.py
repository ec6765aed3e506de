"""`run -- CMD` starts the server first, so its start overlaps the guard's own."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.conftest import PY, connect

# A stdio server that notes its pid when it starts, then answers initialize and tools/list.
SERVER = r"""
import json, os, sys
open(sys.argv[1], "a").write(f"{os.getpid()}\n")
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    result = {"tools": []}
    if msg["method"] == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "noted", "version": "1"}}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\n")
    sys.stdout.flush()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.anyio
async def test_the_server_is_started_before_the_guard_has_read_its_policy(tmp_path: Path) -> None:
    started = tmp_path / "started"
    policy = tmp_path / "policy.yaml"
    os.mkfifo(policy)  # the guard blocks reading its policy until the test writes it
    guard = subprocess.Popen([PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", PY, "-c", SERVER, str(started)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        with anyio.fail_after(30):
            while not started.exists() or not started.read_text().strip():
                await anyio.sleep(0.05)
        pid = int(started.read_text().split()[0])
        assert alive(pid) and guard.poll() is None  # the server runs; the guard is still reading its policy
    finally:
        guard.kill()
        guard.communicate()
        for line in started.read_text().split() if started.exists() else []:
            try:
                os.killpg(int(line), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.anyio
async def test_the_early_server_is_the_one_the_session_talks_to_and_none_outlives_the_guard(tmp_path: Path) -> None:
    started = tmp_path / "started"
    with anyio.fail_after(60):
        async with connect([PY, "-m", "mcp_guard", "run", "--no-policy", "--", PY, "-c", SERVER, str(started)]) as client:
            assert (await client.list_tools()).tools == []
    pids = [int(p) for p in started.read_text().split()]
    assert len(pids) == 1  # started once, early; not again when the client connected
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - action: perhaps\n")
    again = tmp_path / "again"
    done = subprocess.run([PY, "-m", "mcp_guard", "run", "--policy", str(bad), "--", PY, "-c", SERVER + "\nimport time; time.sleep(60)", str(again)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    for pid in [int(p) for p in again.read_text().split()] if again.exists() else []:
        assert not alive(pid)  # the guard did not start, so neither does the server stay

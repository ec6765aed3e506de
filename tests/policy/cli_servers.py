"""Configs of real servers for the `policy show` / `policy init` tests, and a way to run the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import FIXTURES, PY, ROOT, node_server

# Built at run time so no secret-shaped literal sits in the repository.
CANARY = "AKIA" + "Q" * 16


def write_config(tmp_path: Path, servers: dict[str, object], policy: str | None = None) -> Path:
    path = tmp_path / "servers.json"
    body: dict[str, object] = {"mcpServers": servers}
    if policy is not None:
        body["mcpGuard"] = {"policy": policy}
    path.write_text(json.dumps(body))
    return path


def risky() -> dict[str, object]:
    return {"command": PY, "args": [str(ROOT / "examples" / "risky_server.py")]}


def files(root: Path) -> dict[str, object]:
    fs = node_server("server-filesystem", str(root))
    return {"command": fs[0], "args": fs[1:]}


def breaker() -> dict[str, object]:
    return {"command": PY, "args": [str(FIXTURES / "yaml_breaker_server.py")], "env": {"BREAKER_SECRET": CANARY}}


def guard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_guard", *args], capture_output=True, text=True, timeout=90, cwd=ROOT
    )


def show_json(config: Path, server: str, tool: str, *extra: str) -> dict[str, object]:
    result = guard("policy", "show", "--config", str(config), "--server", server, "--tool", tool, "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)

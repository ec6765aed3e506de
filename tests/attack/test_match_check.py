"""Red team, `policy check --config`: rules that can never do anything are reported, not only those naming an
unknown server or tool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, PY, node_server


def config(tmp_path: Path, policy: str) -> Path:
    fs = node_server("server-filesystem", str(tmp_path))
    servers = {
        "files": {"command": fs[0], "args": fs[1:]},
        "store": {"command": PY, "args": [str(FIXTURES / "sidestep_server.py")]},
    }
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": servers, "mcpGuard": {"policy": "p.yaml"}}))
    (tmp_path / "p.yaml").write_text(policy)
    return path


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_guard", "policy", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.mark.parametrize("level", [">critical", "<low"])
def test_a_risk_condition_no_level_can_meet_is_reported(tmp_path: Path, level: str) -> None:
    policy = f'version: 1\nrules:\n  - name: unreachable\n    match: {{risk: "{level}"}}\n    action: deny\n'
    result = check(config(tmp_path, policy))
    assert result.returncode == 1, result.stderr
    assert "unreachable" in result.stderr


def test_a_deny_on_an_argument_the_tool_does_not_take_is_reported(tmp_path: Path) -> None:
    # move_file reads source and destination: a deny on its $.path never stops a move the server makes.
    policy = (
        "version: 1\nrules:\n  - name: no-moves-from-etc\n    match: {server: files, tool: move_file, "
        'args: {"$.path": "/etc/*"}}\n    action: deny\n'
    )
    result = check(config(tmp_path, policy))
    assert result.returncode == 1, result.stderr
    assert "no-moves-from-etc" in result.stderr

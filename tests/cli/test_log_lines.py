"""The guard's own log lines quote names an upstream chose: a tool named to redraw the operator's
terminal must reach the log as escapes, never as the controls themselves, in both log formats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.terminal import tools_through
from tests.conftest import PY

ROOT = Path(__file__).resolve().parent.parent.parent
SERVER = [PY, str(ROOT / "fixtures" / "escape_name_server.py")]
RAW = ("\x1b", "\u202e")


def _guard_log(home: Path, log_format: str) -> tuple[list[str], str]:
    """The tool names the client was given, and what the guard wrote on stderr meanwhile."""
    env = {**os.environ, "MCP_GUARD_HOME": str(home), "MCP_GUARD_LOG_FORMAT": log_format, "MCP_GUARD_LOG_LEVEL": "info"}
    tools, stderr = tools_through([PY, "-m", "mcp_guard", "run", "--name", "odd", "--", *SERVER], env)
    return [str(tool["name"]) for tool in tools], stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_tool_name_with_a_clear_screen_and_a_bidi_override_is_logged_as_escapes(tmp_path: Path, log_format: str) -> None:
    names, stderr = _guard_log(tmp_path, log_format)
    assert names, "the tool was listed"
    warnings = [line for line in stderr.splitlines() if "in description" in line]
    assert warnings, f"the poisoned description was logged: {stderr[:2000]!r}"
    assert not any(char in stderr for char in RAW)
    escaped = "\\x1b[2J" if log_format == "text" else "\\u001b[2J"
    assert any(escaped in line for line in warnings)

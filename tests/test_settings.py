"""Settings are read in one place, and nothing writes the environment to carry them."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import mcp_guard
from mcp_guard import settings
from tests.conftest import PY, ROOT

PACKAGE = ROOT / "mcp_guard"
# The stdio transport hands the guard's environment on to the servers it starts: that is the
# user's environment for their server, not the guard's configuration.
# The stdio transport hands the environment on to the servers it starts, and so does its early
# half (prestart.py, which starts `run -- CMD` before anything slow is imported).
MAY_READ_ENVIRON = {PACKAGE / "settings.py", PACKAGE / "relay" / "transports" / "stdio.py", PACKAGE / "relay" / "prestart.py",
                    PACKAGE / "auth" / "discovery.py"}  # SSL_CERT_FILE, as TLS clients honour it


def _environ_uses(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
    return lines


def test_only_the_settings_module_reads_the_environment() -> None:
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in MAY_READ_ENVIRON and (lines := _environ_uses(path))
    }
    assert offenders == {}


def test_argv_wins_over_the_environment_and_the_config_store_only_fills_a_gap(tmp_path: Path) -> None:
    env = {"MCP_GUARD_HOME": str(tmp_path / "env-home"), "MCP_GUARD_USER": "env-user"}
    chosen = settings.Settings.from_environment(env, home=str(tmp_path / "argv-home"), user=None)
    assert chosen.home == tmp_path / "argv-home"
    assert chosen.user == "env-user"
    assert chosen.with_store("postgresql://db/x").store_url == "postgresql://db/x"
    explicit = settings.Settings.from_environment({**env, "MCP_GUARD_STORE": "sqlite:///a.db"})
    assert explicit.with_store("postgresql://db/x").store_url == "sqlite:///a.db"


def test_home_given_on_the_command_line_is_used_without_touching_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "cli-home"
    done = subprocess.run(
        [PY, "-m", "mcp_guard", "review", "list", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "MCP_GUARD_HOME"},
    )
    assert done.returncode == 0, done.stderr
    assert (home / "guard.db").exists()


def test_the_package_exports_exactly_its_public_names() -> None:
    assert sorted(mcp_guard.__all__) == sorted(
        ["Call", "ConfigError", "GuardError", "Hook", "Pipeline", "RPCError", "UpstreamError", "Verdict", "__version__"]
    )
    for name in mcp_guard.__all__:
        assert hasattr(mcp_guard, name)

"""`claude mcp list` and `gemini mcp list` through configs that `mcp-guard wrap` rewrote.

Both commands start every configured server, run the MCP handshake and print whether it
connected; neither needs a model or an account. Each runs in a throwaway HOME holding only the
config under test. A guard that cannot start (its policy file is gone) must show as failed, so
a "connected" line is known to come from the guard itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from tests.clients.common import Scene, client_env, node_bin, scene, served

pytestmark = pytest.mark.anyio

LIMIT = 120  # both CLIs are large Node programs; a busy 2-core machine starts them slowly


async def wrap(client: str, config: Path, env: dict[str, str]) -> None:
    argv = [sys.executable, "-m", "mcp_guard", "wrap", "--client", client, "--file", str(config)]
    with anyio.fail_after(60):
        done = await anyio.run_process(argv, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def guarded_args(config: Path, name: str) -> list[str]:
    entry = json.loads(config.read_text())["mcpServers"][name]
    assert Path(entry["command"]).name == "mcp-guard" and entry["args"][0] == "run", entry
    return list(entry["args"])


def with_policy(config: Path, name: str, policy: Path) -> None:
    """Give the wrapped entry the scene's policy (wrap itself keeps the guard's default one)."""
    data = json.loads(config.read_text())
    args = data["mcpServers"][name]["args"]
    data["mcpServers"][name]["args"] = [args[0], "--policy", str(policy), *args[1:]]
    config.write_text(json.dumps(data, indent=2))


async def listing(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    with anyio.fail_after(LIMIT):
        done = await anyio.run_process(argv, env=env, cwd=cwd, check=False)
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


def status_line(output: str, name: str) -> str:
    lines = [line for line in output.splitlines() if f"{name}:" in line]
    assert len(lines) == 1, output
    return lines[0]


# --- Claude Code (npm @anthropic-ai/claude-code) ----------------------------------------------------


def claude_home(tmp_path: Path, s: Scene, url: str | None = None) -> tuple[Path, Path]:
    home = tmp_path / "home"
    command, *args = s.upstream()
    servers: dict[str, dict[str, object]] = {"files": {"type": "stdio", "command": command, "args": args}}
    if url:
        servers["remote"] = {"type": "http", "url": url}
    config = home / ".claude.json"
    home.mkdir()
    config.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return home, config


@pytest.mark.parametrize("broken", [False, True])
async def test_claude_mcp_list_connects_to_a_wrapped_server_through_the_guard(tmp_path: Path, broken: bool) -> None:
    s = scene(tmp_path)
    home, config = claude_home(tmp_path, s)
    env = client_env(home)
    await wrap("claude-code", config, env)
    guarded_args(config, "files")
    with_policy(config, "files", tmp_path / "gone.yaml" if broken else s.policy)
    line = status_line(await listing([node_bin("claude"), "mcp", "list"], env, home), "files")
    assert "mcp-guard run" in line
    if broken:
        assert "Connected" not in line and "Failed" in line, line
    else:
        assert "Connected" in line, line


async def test_claude_mcp_list_connects_to_the_guards_http_front(tmp_path: Path) -> None:
    s = scene(tmp_path)
    async with served(s) as url:
        home, _ = claude_home(tmp_path, s, url)
        env = client_env(home)
        line = status_line(await listing([node_bin("claude"), "mcp", "list"], env, home), "remote")
    assert url in line and "Connected" in line, line


# --- Gemini CLI (npm @google/gemini-cli) ------------------------------------------------------------


def gemini_home(tmp_path: Path, s: Scene, url: str | None = None) -> tuple[Path, Path, Path]:
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".gemini").mkdir(parents=True)
    work.mkdir()
    # Gemini CLI disables user-level servers in folders it does not trust: trust the work folder only.
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(work): "TRUST_FOLDER"}))
    servers: dict[str, dict[str, object]] = {"files": {"command": s.upstream()[0], "args": s.upstream()[1:]}}
    if url:
        servers["remote"] = {"httpUrl": url}
    config = home / ".gemini" / "settings.json"
    config.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return home, work, config


@pytest.mark.parametrize("broken", [False, True])
async def test_gemini_mcp_list_connects_to_a_wrapped_server_through_the_guard(tmp_path: Path, broken: bool) -> None:
    s = scene(tmp_path)
    home, work, config = gemini_home(tmp_path, s)
    env = client_env(home)
    # Gemini's stdio entries have Cursor's shape (mcpServers: command, args, env), so wrap's cursor
    # form rewrites them the same way.
    await wrap("cursor", config, env)
    guarded_args(config, "files")
    with_policy(config, "files", tmp_path / "gone.yaml" if broken else s.policy)
    line = status_line(await listing([node_bin("gemini"), "mcp", "list"], env, work), "files")
    assert "mcp-guard run" in line
    if broken:
        assert "Connected" not in line and "Disconnected" in line, line
    else:
        assert "- Connected" in line, line


async def test_gemini_mcp_list_connects_to_the_guards_http_front(tmp_path: Path) -> None:
    s = scene(tmp_path)
    async with served(s) as url:
        home, work, _ = gemini_home(tmp_path, s, url)
        line = status_line(await listing([node_bin("gemini"), "mcp", "list"], client_env(home), work), "remote")
    assert url in line and "- Connected" in line, line

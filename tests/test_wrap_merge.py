"""`unwrap` takes back exactly what `wrap` changed; every client format; nothing written on --dry-run."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import background, connect, free_port, probe


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_guard", *args], capture_output=True, text=True, timeout=30)


def claude_code(tmp_path: Path, servers_a: dict, servers_b: dict | None = None) -> Path:  # type: ignore[type-arg]
    path = tmp_path / ".claude.json"
    projects = {"/home/me/a": {"mcpServers": servers_a, "history": []}}
    if servers_b is not None:
        projects["/home/me/b"] = {"mcpServers": servers_b}
    path.write_text(json.dumps({"numStartups": 1, "mcpServers": {}, "projects": projects}, indent=2) + "\n")
    return path


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_unwrap_keeps_servers_added_and_keys_the_client_changed_since_the_wrap(tmp_path: Path) -> None:
    path = claude_code(tmp_path, {"git": {"type": "stdio", "command": "uvx", "args": ["mcp-server-git"]}})
    assert run("wrap", "--client", "claude-code", "--file", str(path)).returncode == 0
    data = json.loads(path.read_text())
    data["numStartups"] = 7  # Claude Code's own counters move on
    data["projects"]["/home/me/a"]["history"] = ["did a thing"]
    data["projects"]["/home/me/a"]["mcpServers"]["added"] = {"command": "npx", "args": ["-y", "x"]}  # `claude mcp add`
    path.write_text(json.dumps(data, indent=2))
    done = run("unwrap", "--client", "claude-code", "--file", str(path))
    assert done.returncode == 0, done.stderr
    after = json.loads(path.read_text())
    assert after["numStartups"] == 7 and after["projects"]["/home/me/a"]["history"] == ["did a thing"]
    servers = after["projects"]["/home/me/a"]["mcpServers"]
    assert servers["git"] == {"type": "stdio", "command": "uvx", "args": ["mcp-server-git"]}
    assert servers["added"] == {"command": "npx", "args": ["-y", "x"]}


def test_an_entry_edited_by_hand_since_the_wrap_is_reported_and_left_alone(tmp_path: Path, guard_home: Path) -> None:
    path = claude_code(tmp_path, {"git": {"command": "uvx", "args": ["mcp-server-git"]}, "mem": {"command": "mem"}})
    assert run("wrap", "--client", "claude-code", "--file", str(path)).returncode == 0
    data = json.loads(path.read_text())
    data["projects"]["/home/me/a"]["mcpServers"]["git"]["args"].append("--verbose")
    path.write_text(json.dumps(data, indent=2))
    done = run("unwrap", "--client", "claude-code", "--file", str(path))
    assert done.returncode == 0
    assert "/home/me/a: git: changed by hand since the wrap" in done.stderr
    servers = json.loads(path.read_text())["projects"]["/home/me/a"]["mcpServers"]
    assert servers["git"]["args"][-1] == "--verbose" and Path(servers["git"]["command"]).name == "mcp-guard"
    assert servers["mem"] == {"command": "mem"}


def test_dry_run_writes_no_file_at_all_not_even_credentials(tmp_path: Path, guard_home: Path) -> None:
    secret = "Bearer " + "q" * 24
    path = claude_code(tmp_path, {"api": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": secret}}})
    before = path.read_bytes()
    done = run("wrap", "--client", "claude-code", "--file", str(path), "--dry-run")
    assert done.returncode == 0 and "--config" in done.stdout
    assert path.read_bytes() == before
    assert files_under(guard_home) == [] and sorted(os.listdir(tmp_path)) == [".claude.json"]


def test_two_projects_with_a_server_of_one_name_each_keep_their_own_url_and_unwrap_removes_both(
    tmp_path: Path, guard_home: Path
) -> None:
    a = {"api": {"type": "http", "url": "http://127.0.0.1:1/mcp", "headers": {"X-Key": "a" * 12}}}
    b = {"api": {"type": "http", "url": "http://127.0.0.1:2/mcp", "headers": {"X-Key": "b" * 12}}}
    path = claude_code(tmp_path, a, b)
    assert run("wrap", "--client", "claude-code", "--file", str(path)).returncode == 0
    projects = json.loads(path.read_text())["projects"]
    files = [Path(p["mcpServers"]["api"]["args"][-1]) for p in projects.values()]
    assert files[0] != files[1]
    urls = [json.loads(f.read_text())["mcpServers"]["api"]["url"] for f in files]
    assert urls == ["http://127.0.0.1:1/mcp", "http://127.0.0.1:2/mcp"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert run("unwrap", "--client", "claude-code", "--file", str(path)).returncode == 0
    assert files_under(guard_home / "wrapped") == []
    assert not path.with_name(path.name + ".mcp-guard-backup").exists()


def claude_code_expands(env: dict[str, str], outer: dict[str, str]) -> dict[str, str]:
    """What Claude Code does to an entry's env before it starts the server: ${VAR} and ${VAR:-default}."""
    def one(m: re.Match[str]) -> str:
        return outer.get(m.group(1), m.group(3) or "")
    return {k: re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", one, v) for k, v in env.items()}


@pytest.mark.anyio
async def test_a_header_variable_reaches_the_server_expanded_at_run_time_not_as_literal_text(
    tmp_path: Path, guard_home: Path
) -> None:
    token = "t0k" + "Z" * 20
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    path = claude_code(tmp_path, {"api": {"type": "http", "url": url, "headers": {"Authorization": "Bearer ${API_TOKEN}"}}})
    assert run("wrap", "--client", "claude-code", "--file", str(path)).returncode == 0
    entry = json.loads(path.read_text())["projects"]["/home/me/a"]["mcpServers"]["api"]
    sidecar = Path(entry["args"][-1]).read_text()
    assert "${API_TOKEN}" not in sidecar and token not in sidecar + path.read_text()
    env = claude_code_expands(entry.get("env", {}), {"API_TOKEN": token})
    async with background([*probe(), "--http", "--port", str(port)], url, env={"PROBE_REQUIRE_AUTHORIZATION": f"Bearer {token}"}):
        with anyio.fail_after(30):
            async with connect([entry["command"], *entry["args"]], env=env) as client:
                assert "echo" in {t.name for t in (await client.list_tools()).tools}
    missing = subprocess.run([entry["command"], *entry["args"]], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                             env={k: v for k, v in os.environ.items() if not k.startswith("MCP_GUARD_HEADER")})
    assert missing.returncode == 2 and "MCP_GUARD_HEADER_1" in missing.stderr and "Traceback" not in missing.stderr


def test_gemini_http_url_is_wrapped_and_an_sse_url_is_reported_not_claimed(tmp_path: Path, guard_home: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"theme": "dark", "mcpServers": {
        "stream": {"httpUrl": "http://127.0.0.1:1/mcp", "headers": {"X-Key": "k" * 10}, "timeout": 5000},
        "events": {"url": "http://127.0.0.1:1/sse"},
        "local": {"command": "node", "args": ["s.js"], "cwd": "/tmp", "trust": True},
    }}, indent=2))
    done = run("wrap", "--client", "gemini", "--file", str(path))
    assert done.returncode == 0
    assert "events: left as is: an SSE server" in done.stderr and "every server" not in done.stderr
    servers = json.loads(path.read_text())["mcpServers"]
    assert "httpUrl" not in servers["stream"] and servers["stream"]["timeout"] == 5000
    assert servers["stream"]["args"][-2] == "--config"
    assert servers["events"] == {"url": "http://127.0.0.1:1/sse"}
    assert servers["local"]["args"][-2:] == ["node", "s.js"] and servers["local"]["trust"] is True


def test_opencode_local_and_remote_servers_are_wrapped_in_its_own_shape_and_unwrapped(tmp_path: Path, guard_home: Path) -> None:
    path = tmp_path / "opencode.json"
    original = {"$schema": "https://opencode.ai/config.json", "mcp": {
        "files": {"type": "local", "command": ["npx", "-y", "server-files"], "environment": {"A": "1"}, "enabled": True},
        "remote": {"type": "remote", "url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "Bearer {env:TOKEN}"}},
    }}
    path.write_text(json.dumps(original, indent=2) + "\n")
    done = run("wrap", "--client", "opencode", "--file", str(path))
    assert done.returncode == 0 and "nothing to change" not in done.stderr
    mcp = json.loads(path.read_text())["mcp"]
    assert mcp["files"]["command"][1:4] == ["run", "--name", "files"] and mcp["files"]["command"][-3:] == ["npx", "-y", "server-files"]
    assert mcp["files"]["environment"] == {"A": "1"} and mcp["files"]["enabled"] is True
    assert mcp["remote"]["type"] == "local" and "url" not in mcp["remote"]
    assert mcp["remote"]["environment"] == {"MCP_GUARD_HEADER_1": "Bearer {env:TOKEN}"}  # opencode fills it in
    assert run("unwrap", "--client", "opencode", "--file", str(path)).returncode == 0
    assert json.loads(path.read_text()) == original


CODEX = '''# my codex settings
model = "o4"

[mcp_servers.git]  # the git server
command = "uvx"
args = ["mcp-server-git"]  # read only
startup_timeout_sec = 20

[mcp_servers.remote]
url = "http://127.0.0.1:1/mcp"
bearer_token_env_var = "REMOTE_TOKEN"
'''


def test_codex_toml_is_wrapped_with_its_comments_and_unwrap_keeps_later_edits(tmp_path: Path, guard_home: Path) -> None:
    import tomllib

    path = tmp_path / "config.toml"
    path.write_text(CODEX)
    done = run("wrap", "--client", "codex", "--file", str(path))
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    assert "# my codex settings" in text and "# the git server" in text
    servers = tomllib.loads(text)["mcp_servers"]
    assert servers["git"]["args"][-2:] == ["uvx", "mcp-server-git"] and servers["git"]["startup_timeout_sec"] == 20
    assert servers["remote"]["env_vars"] == ["REMOTE_TOKEN"] and "url" not in servers["remote"]
    sidecar = json.loads(Path(servers["remote"]["args"][-1]).read_text())["mcpServers"]["remote"]
    assert sidecar["headers"] == {"Authorization": "Bearer ${REMOTE_TOKEN}"}
    assert run("unwrap", "--client", "codex", "--file", str(path)).returncode == 0
    assert path.read_text() == CODEX  # untouched since: the very bytes
    run("wrap", "--client", "codex", "--file", str(path))
    path.write_text(path.read_text().replace('model = "o4"', 'model = "o5"  # changed later'))
    assert run("unwrap", "--client", "codex", "--file", str(path)).returncode == 0
    assert path.read_text() == CODEX.replace('model = "o4"', 'model = "o5"  # changed later')


def test_a_client_file_that_does_not_parse_is_a_one_line_error_naming_it(tmp_path: Path, guard_home: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[mcp_servers.x\ncommand = 1\n")
    done = run("wrap", "--client", "codex", "--file", str(path))
    assert done.returncode == 2 and "not valid TOML" in done.stderr and "Traceback" not in done.stderr
    hostile = tmp_path / "h.json"
    hostile.write_text(json.dumps({"mcpServers": {
        "a": ["not", "a", "dict"], "b": {"command": 7}, "c": {"url": None}, "d": {"url": "file:///etc/passwd"},
        "e": {"url": "http://127.0.0.1:1/mcp", "headers": {"X": {"nested": 1}}}, "../../escape": {"url": "http://127.0.0.1:1/m"},
    }}))
    done = run("wrap", "--client", "cursor", "--file", str(hostile))
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "c: left as is" in done.stderr and "d: left as is" in done.stderr and "e: left as is" in done.stderr
    sidecars = list((guard_home / "wrapped").glob("cursor-*.json"))
    assert len(sidecars) == 1 and sidecars[0].parent == guard_home / "wrapped"  # the odd name stays inside
    assert run("unwrap", "--client", "cursor", "--file", str(tmp_path / "none.json")).returncode == 2


def test_a_corrupt_wrap_record_is_refused_with_a_clear_error(tmp_path: Path, guard_home: Path) -> None:
    path = claude_code(tmp_path, {"git": {"command": "uvx"}})
    assert run("wrap", "--client", "claude-code", "--file", str(path)).returncode == 0
    for record in (guard_home / "wrapped").glob("*.record.json"):
        record.write_text("{not json")
    done = run("unwrap", "--client", "claude-code", "--file", str(path))
    assert done.returncode == 2 and "wrap record cannot be read" in done.stderr and "Traceback" not in done.stderr

"""`mcp-guard wrap` / `unwrap` on real config files of each client shape."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import FIXTURES, background, connect, free_port, probe

SHAPES = {
    "claude-desktop": "claude_desktop_config.json",
    "claude-code": "claude_code.json",
    "cursor": "cursor_mcp.json",
    "vscode": "vscode_mcp.json",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_guard", *args], capture_output=True, text=True, timeout=30)


def servers(data: dict) -> dict:  # type: ignore[type-arg]
    found = dict(data.get("mcpServers") or data.get("servers") or {})
    for project in (data.get("projects") or {}).values():
        found.update(project.get("mcpServers") or {})
    return found


@pytest.mark.parametrize("client", SHAPES)
def test_wrap_is_idempotent_and_unwrap_restores_the_file_byte_for_byte(tmp_path: Path, client: str) -> None:
    path = tmp_path / SHAPES[client]
    shutil.copy(FIXTURES / "clients" / SHAPES[client], path)
    original = path.read_bytes()
    before = servers(json.loads(original))
    dry = run("wrap", "--client", client, "--file", str(path), "--dry-run")
    assert dry.returncode == 0 and "mcp-guard" in dry.stdout and path.read_bytes() == original
    assert run("wrap", "--client", client, "--file", str(path)).returncode == 0
    wrapped = path.read_bytes()
    after = servers(json.loads(wrapped))
    assert set(after) == set(before)
    for name, entry in after.items():
        assert Path(entry["command"]).name == "mcp-guard" and entry["args"][:3] == ["run", "--name", name]
        if "command" in before[name]:
            assert entry["args"][entry["args"].index("--") + 1:] == [before[name]["command"], *before[name].get("args", [])]
            assert entry.get("env") == before[name].get("env")
    assert run("wrap", "--client", client, "--file", str(path)).returncode == 0
    assert path.read_bytes() == wrapped  # twice changes nothing
    assert run("unwrap", "--client", client, "--file", str(path)).returncode == 0
    assert path.read_bytes() == original


@pytest.mark.anyio
async def test_a_wrapped_config_starts_and_serves_tools_through_the_guard(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json.dumps({"mcpServers": {
        "local": {"command": probe()[0], "args": probe()[1:], "env": {"PROBE_WORD": "kept"}},
        "remote": {"url": f"http://127.0.0.1:{port}/mcp"},
    }}))
    assert run("wrap", "--file", str(path)).returncode == 0
    wrapped = json.loads(path.read_text())["mcpServers"]
    async with background([*probe(), "--http", "--port", str(port)], f"http://127.0.0.1:{port}/mcp"):
        for name in ("local", "remote"):
            entry = wrapped[name]
            argv = [entry["command"], *entry["args"]]
            with anyio.fail_after(30):
                async with connect(argv, env=entry.get("env")) as client:
                    tools = {t.name: t for t in (await client.list_tools()).tools}
                    assert "echo" in tools
                    assert tools["echo"].meta and tools["echo"].meta["mcp-guard/risk"]  # the guard's policy is in force
                    if name == "local":
                        result = await client.call_tool("env", {"name": "PROBE_WORD"})
                        assert result.content[0].text == "kept"  # type: ignore[union-attr]


def test_doctor_names_what_is_wrong_and_how_to_fix_it(tmp_path: Path) -> None:
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {
        "good": {"command": probe()[0], "args": probe()[1:]},
        "missing": {"command": "/nonexistent/server"},
    }}))
    bad_policy = tmp_path / "p.yaml"
    bad_policy.write_text("version: 1\nrules:\n  - action: perhaps\n")
    done = run("doctor", "--config", str(config), "--policy", str(bad_policy), "--home", str(tmp_path / "home"))
    assert done.returncode == 1
    assert "ok    upstream good: probe speaks" in done.stdout
    assert "FAIL  upstream missing" in done.stdout and "could not start" in done.stdout
    assert "FAIL  policy" in done.stdout and "rules[0].action" in done.stdout
    assert "ok    store" in done.stdout
    healthy = run("doctor", "--home", str(tmp_path / "home"), "--", *probe())
    assert healthy.returncode == 0, healthy.stdout


def test_the_dry_run_diff_of_a_file_with_no_final_newline_applies_with_patch(tmp_path: Path) -> None:
    # Claude Code writes ~/.claude.json without a final newline: the diff's last removed and added
    # lines must not run together ("-}+}"), and patch(1) must turn the file into what wrap writes.
    path = tmp_path / ".claude.json"
    path.write_text(json.dumps({"mcpServers": {"files": {"command": "npx", "args": ["-y", "server-files"]}}}, indent=2))
    dry = run("wrap", "--client", "claude-code", "--file", str(path), "--dry-run")
    assert dry.returncode == 0
    assert all(line[:1] in " -+@\\" for line in dry.stdout.splitlines()), dry.stdout
    assert "\n\\ No newline at end of file\n" in dry.stdout
    patched = tmp_path / "patched.json"
    shutil.copy(path, patched)
    applied = subprocess.run(["patch", "-s", str(patched)], input=dry.stdout, capture_output=True, text=True, timeout=30)
    assert applied.returncode == 0, applied.stderr
    assert run("wrap", "--client", "claude-code", "--file", str(path)).returncode == 0
    assert patched.read_bytes() == path.read_bytes()


def test_wrap_prepares_the_first_start_so_the_wrapped_guard_neither_compiles_nor_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.relay.test_startup_imports import loaded_by_run

    cache = tmp_path / "cache"
    monkeypatch.setenv("MCP_GUARD_CACHE", str(cache))  # a first start: nothing compiled or kept yet
    path = tmp_path / SHAPES["claude-desktop"]
    shutil.copy(FIXTURES / "clients" / SHAPES["claude-desktop"], path)
    done = subprocess.run([sys.executable, "-m", "mcp_guard", "wrap", "--client", "claude-desktop", "--file", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    prepared = sorted(p.name for p in cache.iterdir())
    assert any(n.startswith("hyperscan-") for n in prepared) and any(n.startswith("policy-") for n in prepared)
    modules, answers = loaded_by_run(tmp_path)
    assert [a["id"] for a in answers] == [1, 2]
    assert "pydantic" not in modules  # the policy was validated by wrap and kept
    assert sorted(p.name for p in cache.iterdir()) == prepared  # and no pattern database was compiled at start

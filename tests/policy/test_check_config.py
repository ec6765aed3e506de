"""`policy check --config F` starts the configured servers, lists their tools, and reports rules
that can never match: an unknown server, a namespaced tool name, a tool nobody lists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp_guard.policy import parse_policy
from tests.conftest import FIXTURES, PY, node_server

DEAD = """\
version: 1
risk:
  - match: {server: files, tool: "files__read_*"}
    risk: low
rules:
  - name: namespaced
    match: {tool: files__write_file}
    action: deny
  - name: typo-server
    match: {server: flies, tool: write_file}
    action: deny
  - name: nobody-lists-it
    match: {server: store, tool: drop_table}
    action: deny
  - name: fine
    match: {server: files, tool: "write_*"}
    action: approve
  - name: generic
    match: {risk: critical}
    action: deny
"""

LIVE = """\
version: 1
rules:
  - match: {server: files, tool: write_file}
    action: deny
  - match: {server: store, tool: "delete_*"}
    action: deny
"""


def config(tmp_path: Path, extra: dict[str, object] | None = None) -> Path:
    fs = node_server("server-filesystem", str(tmp_path))
    servers: dict[str, object] = {
        "files": {"command": fs[0], "args": fs[1:]},
        "store": {"command": PY, "args": [str(FIXTURES / "sidestep_server.py")]},
        **(extra or {}),
    }
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": servers, "mcpGuard": {"policy": "dead.yaml"}}))
    (tmp_path / "dead.yaml").write_text(DEAD)
    (tmp_path / "live.yaml").write_text(LIVE)
    return path


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_guard", "policy", "check", *args], capture_output=True, text=True, timeout=90
    )


def test_rules_that_can_never_match_are_reported_and_the_check_fails(tmp_path: Path) -> None:
    result = check("--config", str(config(tmp_path)))  # the config's own policy, dead.yaml
    assert result.returncode == 1
    err = result.stderr
    assert "rules[0] ('namespaced'): tool 'files__write_file' is not listed" in err
    assert "write server: files, tool: write_file" in err
    assert "rules[1] ('typo-server'): server 'flies' matches no configured server (configured: files, store)" in err
    assert "rules[2] ('nobody-lists-it'): tool 'drop_table' is not listed by store" in err
    assert "risk[0]: tool 'files__read_*' is not listed by files" in err
    assert "'fine'" not in err and "'generic'" not in err
    assert "4 rule(s) can never match" in err


def test_a_policy_whose_rules_all_reach_a_listed_tool_passes(tmp_path: Path) -> None:
    result = check("--config", str(config(tmp_path)), str(tmp_path / "live.yaml"))
    assert result.returncode == 0, result.stderr
    assert "live.yaml: ok (2 rules)" in result.stderr


def test_a_server_that_cannot_be_listed_is_named_and_fails_the_check(tmp_path: Path) -> None:
    broken = {"gone": {"command": str(tmp_path / "no-such-server")}}
    result = check("--config", str(config(tmp_path, broken)), str(tmp_path / "live.yaml"))
    assert result.returncode == 1
    assert "server 'gone' could not be listed" in result.stderr and "live.yaml: ok" in result.stderr


def test_a_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = check("--config", str(bad))
    assert result.returncode == 2 and "not valid JSON" in result.stderr


def test_a_config_with_a_repeated_key_is_refused_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "strict.yaml").write_text("version: 1\ndefaults: {action: deny}\n")
    twice = tmp_path / "twice.json"
    # The second mcpGuard would silently drop the first one's policy: the guard would run without it.
    twice.write_text(
        '{"mcpServers": {"s": {"command": "true"}}, "mcpGuard": {"policy": "strict.yaml"}, "mcpGuard": {"hooks": []}}'
    )
    result = check("--config", str(twice))
    assert result.returncode == 2 and "the key 'mcpGuard' appears twice" in result.stderr
    run = subprocess.run(
        [sys.executable, "-m", "mcp_guard", "run", "--config", str(twice)], capture_output=True, text=True, timeout=30, input=""
    )
    assert run.returncode == 2 and "appears twice" in run.stderr


def test_a_rule_on_an_argument_only_schemaless_or_declaring_tools_take_is_kept_alive() -> None:
    from mcp_guard.policy.reach import unread_arguments

    policy = parse_policy(
        'version: 1\nrules:\n  - match: {tool: "*", args: {"$.path": "/etc/*"}}\n    action: deny\n'
        '  - match: {tool: move, args: {"$.path": "/etc/*"}}\n    action: deny\n'
    )
    moves = {"type": "object", "properties": {"source": {}, "destination": {}}}
    reads = {"type": "object", "properties": {"path": {}}}
    servers = {"files": [{"name": "move", "inputSchema": moves}, {"name": "read", "inputSchema": reads}]}
    assert [p.split(":")[0] for p in unread_arguments(policy, servers)] == ["rules[1]"]
    assert unread_arguments(policy, {"files": [{"name": "move", "inputSchema": {"type": "object"}}]}) == []
    assert unread_arguments(policy, {"files": None}) == []


def test_a_risk_no_level_meets_is_reported_without_a_config(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text('version: 1\nrules:\n  - name: never\n    match: {risk: ["<low", ">critical"]}\n    action: deny\n')
    out = subprocess.run([sys.executable, "-m", "mcp_guard", "policy", "check", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "'never'" in out.stderr and "met by no level" in out.stderr

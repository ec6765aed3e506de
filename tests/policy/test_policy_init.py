"""`policy init --config F [-o FILE]`: a starting policy written from the tools the configured
servers really list, that `policy check` accepts, and that nothing a server sends can reshape."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import anyio
import pytest
import yaml

from mcp_guard.policy import load_policy
from mcp_guard.policy.starter import SUGGESTED, starter_policy
from mcp_guard.risk import RISK_KEY
from tests.conftest import PY
from tests.policy.cli_servers import CANARY, breaker, files, guard, risky, show_json, write_config
from tests.rawclient import RawClient, open_raw


def _rules_by_tool(path: Path) -> dict[str, dict[str, object]]:
    data = yaml.safe_load(path.read_text())
    return {r["match"]["tool"]: r for r in data["rules"] if "tool" in r.get("match", {})}


def test_init_writes_a_commented_policy_that_check_accepts_with_a_rule_per_listed_tool(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky(), "files": files(tmp_path)})
    out = tmp_path / "starter.yaml"
    result = guard("policy", "init", "--config", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "# send_email: high risk (the author's tag: sends mail in your name)" in text
    assert "# read_text_file: low risk (its annotations)" in text
    rules = _rules_by_tool(out)
    assert rules["send_email"]["action"] == "approve" and rules["wire_money"]["action"] == "approve"
    assert rules["lookup"]["action"] == "allow" and rules["untagged"]["action"] == "allow"
    assert rules["write_file"]["action"] == "approve" and rules["read_text_file"]["action"] == "allow"
    check = guard("policy", "check", "--config", str(config), str(out))
    assert check.returncode == 0, check.stderr  # valid, and every rule reaches a listed tool
    assert "ok" in check.stderr


def test_the_written_policy_gives_each_tool_the_suggested_action(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky()})
    out = tmp_path / "starter.yaml"
    assert guard("policy", "init", "--config", str(config), "-o", str(out)).returncode == 0
    for tool, action, rule in [("send_email", "approve", "high-and-critical-need-approval"),
                               ("lookup", "allow", "risky/lookup")]:
        view = show_json(config, "risky", tool, "--policy", str(out))
        assert (view["no_arguments"]["action"], view["no_arguments"]["rule"]) == (action, rule)


def test_init_refuses_to_overwrite_a_file_without_force(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky()})
    out = tmp_path / "policy.yaml"
    out.write_text("version: 1  # mine\n")
    refused = guard("policy", "init", "--config", str(config), "-o", str(out))
    assert refused.returncode == 2 and "already exists; give --force" in refused.stderr
    assert out.read_text() == "version: 1  # mine\n"
    forced = guard("policy", "init", "--config", str(config), "-o", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "risky/send_email" in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_init_does_not_follow_a_symlink_planted_at_the_output_path(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky()})
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (tmp_path / "policy.yaml").symlink_to(victim)
    refused = guard("policy", "init", "--config", str(config), "-o", str(tmp_path / "policy.yaml"))
    assert refused.returncode == 2 and victim.read_text() == "keep me\n"


def test_hostile_names_and_descriptions_cannot_add_rules_or_widen_one(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"breaker": breaker()})
    out = tmp_path / "starter.yaml"
    result = guard("policy", "init", "--config", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    policy = load_policy(out)
    listed = ["*", "read_[a-z]?", "line\nbreak", "sep\u2028rules: []", 'quote" and # hash', "wipe_disk", "poisoned",
              "leaky", "odd_tag", "mail_helper", "sync"]
    assert len(policy.rules) == 1 + len(listed)  # the catch-all and one per tool: nothing injected
    for rule in policy.rules[1:]:
        reached = [name for name in listed if fnmatch.fnmatchcase(name, rule.match.tool)]
        assert reached == [rule.name.split("/", 1)[1]], rule.name  # each rule reaches its own tool only
    actions = {rule.name: rule.action for rule in policy.rules}
    assert actions["breaker/poisoned"] == "approve"  # tagged low, raised: its description asks for ~/.ssh
    assert actions["breaker/*"] == "allow" and actions["breaker/wipe_disk"] == "approve"
    assert CANARY not in out.read_text() and CANARY not in result.stderr
    check = guard("policy", "check", "--config", str(config), str(out))
    assert check.returncode == 0, check.stderr
    view = show_json(config, "breaker", "wipe_disk", "--policy", str(out))
    assert "breaker/*" not in [r["name"] for r in view["rules"]]


def test_a_server_that_cannot_be_listed_is_named_and_init_exits_1_still_writing_the_rest(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky(), "gone": {"command": str(tmp_path / "no-such-server")}})
    result = guard("policy", "init", "--config", str(config))
    assert result.returncode == 1
    assert "server 'gone' could not be listed" in result.stderr
    assert "# Server gone: could not be listed" in result.stdout
    assert "risky/send_email" in result.stdout
    assert "Traceback" not in result.stderr
    written = tmp_path / "stdout.yaml"
    written.write_text(result.stdout)
    load_policy(written)


async def _listed_through_guard(config: Path, policy: Path) -> dict[tuple[str, str], str]:
    """(server, tool) -> the risk the running guard shows in tools/list, once every server is known."""
    argv = [PY, "-m", "mcp_guard", "run", "--config", str(config), "--policy", str(policy)]
    with anyio.fail_after(60):
        process = await open_raw(argv)
        async with process:
            client = RawClient(process)
            await client.initialize()
            await client.request(1, "tools/list", {})  # the first listing teaches the guard every server's names
            reply = await client.request(2, "tools/list", {})
            process.terminate()
    shown = {}
    for tool in reply["result"]["tools"]:
        meta = tool["_meta"]
        server, _, name = tool["name"].partition("__")
        if "mcp-guard/original-name" in meta:  # an odd name the client sees in a short form
            server, name = meta["mcp-guard/server"], meta["mcp-guard/original-name"]
        shown[(server, name)] = meta[RISK_KEY]
    return shown


@pytest.mark.anyio
async def test_the_risk_init_writes_down_is_the_risk_the_running_guard_resolves(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky(), "breaker": breaker()})
    out = tmp_path / "starter.yaml"
    assert guard("policy", "init", "--config", str(config), "-o", str(out)).returncode == 0
    written = {rule.name: rule.action for rule in load_policy(out).rules}
    commented = dict(re.findall(r"^  # (\w+): (low|medium|high|critical) risk \(", out.read_text(), re.M))
    shown = await _listed_through_guard(config, out)
    assert ("breaker", "*") in shown and ("risky", "send_email") in shown
    assert shown[("breaker", "mail_helper")] == "high"  # it names risky's send_email: shadowing
    for (server, name), risk in shown.items():
        if name == "sync":
            continue  # listed twice: tools/list shows one definition, and the guard's pins hold its calls
        assert written[f"{server}/{name}"] == SUGGESTED[risk], (server, name, risk)
        if name.isidentifier():
            assert commented[name] == risk, name


def test_a_name_listed_twice_gets_one_rule_from_its_riskiest_definition(tmp_path: Path) -> None:
    harmless = {"name": "sync", "_meta": {"mcp-guard/risk": "low"}}
    risky_twin = {"name": "sync", "_meta": {"mcp-guard/risk": "critical"}}
    for order in ([harmless, risky_twin], [risky_twin, harmless]):
        out = tmp_path / "p.yaml"
        out.write_text(starter_policy("servers.json", {"dup": order}))
        rules = [rule for rule in load_policy(out).rules if rule.name == "dup/sync"]
        assert len(rules) == 1 and rules[0].action == "approve", order
        assert "listed 2 times" in out.read_text()

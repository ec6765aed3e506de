"""`policy show --config F --server S --tool T`: the risk and rules in force for one tool the
server really lists, each with where it came from, through the real CLI and real servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.policy.cli_servers import breaker, files, guard, risky, show_json, write_config

OVERRIDE = """\
version: 1
defaults: {risk: medium, action: allow}
risk:
  - match: {server: risky, tool: "send_*"}
    risk: low
rules:
  - name: no-mail-to-strangers
    match: {server: risky, tool: send_email, args: {"$.to": "*@evil.example"}}
    action: deny
  - name: mail-with-secrets
    match: {tool: send_email, labels: [SECRET]}
    action: approve
  - name: only-for-notes
    match: {tool: note}
    action: deny
  - name: ops-only
    match: {tool: send_email, user: mallory}
    action: deny
"""


def _layer(view: dict[str, Any], source: str) -> dict[str, Any]:
    return next(layer for layer in view["risk"]["layers"] if layer["source"] == source)


def test_show_names_the_authors_tag_and_the_default_policy_rule_with_its_line(tmp_path: Path) -> None:
    view = show_json(write_config(tmp_path, {"risky": risky()}), "risky", "send_email")
    assert view["risk"]["level"] == "high" and view["risk"]["source"] == "author"
    author = _layer(view, "author")
    assert author["in_force"] and author["reason"] == "sends mail in your name"
    assert not _layer(view, "default")["in_force"]
    assert view["no_arguments"]["action"] == "approve"
    assert view["no_arguments"]["rule"] == "high-risk-needs-your-approval"
    assert view["no_arguments"]["from"].endswith("default.yaml:15 rules[0]")
    assert [r["name"] for r in view["rules"]] == ["high-risk-needs-your-approval"]


def test_a_policy_override_wins_over_the_tag_and_argument_rules_are_listed_not_evaluated(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(OVERRIDE)
    config = write_config(tmp_path, {"risky": risky()}, policy="p.yaml")
    view = show_json(config, "risky", "send_email", "--user", "alice")
    assert view["risk"]["level"] == "low" and view["risk"]["source"] == "policy"
    override = _layer(view, "policy")
    assert override["in_force"] and override["from"].endswith("p.yaml:4 risk[0]")
    assert not _layer(view, "author")["in_force"] and _layer(view, "author")["level"] == "high"
    rules = {r["name"]: r for r in view["rules"]}
    assert set(rules) == {"no-mail-to-strangers", "mail-with-secrets"}  # not the note rule, not mallory's
    assert rules["no-mail-to-strangers"]["depends_on"] == ["args $.to ~ *@evil.example"]
    assert rules["no-mail-to-strangers"]["from"].endswith("p.yaml:7 rules[0]")
    assert rules["mail-with-secrets"]["depends_on"] == ["labels SECRET"]
    assert view["no_arguments"]["action"] == "allow" and view["no_arguments"]["rule"] == "defaults"
    as_mallory = show_json(config, "risky", "send_email", "--user", "mallory")
    assert as_mallory["no_arguments"]["action"] == "deny" and as_mallory["no_arguments"]["rule"] == "ops-only"


def test_the_human_text_marks_the_layer_in_force_and_when_each_rule_applies(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(OVERRIDE)
    config = write_config(tmp_path, {"risky": risky()}, policy="p.yaml")
    result = guard("policy", "show", "--config", str(config), "--server", "risky", "--tool", "send_email")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "risk: low (from policy)" in out
    assert "* policy      low" in out and "p.yaml:4 risk[0]" in out
    assert "with no arguments: ALLOW  rule defaults" in out
    assert "only when args $.to ~ *@evil.example" in out and "only when labels SECRET" in out


def test_annotations_of_the_real_filesystem_server_decide_its_risk_under_the_strict_policy(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"files": files(tmp_path)})
    view = show_json(config, "files", "write_file", "--policy", "policies/strict.yaml")
    assert view["risk"]["source"] == "annotations" and view["risk"]["level"] == "high"
    assert _layer(view, "annotations")["annotations"]["readOnlyHint"] is False
    assert view["no_arguments"]["action"] == "approve"
    read = show_json(config, "files", "read_text_file")
    assert read["risk"]["level"] == "low" and read["no_arguments"]["action"] == "allow"


def test_a_poisoned_description_raises_the_tool_to_high_as_the_guard_would(tmp_path: Path) -> None:
    view = show_json(write_config(tmp_path, {"breaker": breaker()}), "breaker", "poisoned")
    assert view["risk"]["level"] == "high" and view["risk"]["source"] == "integrity"
    assert "exfiltration" in view["integrity"]["findings"]
    assert view["no_arguments"]["action"] == "approve"


def test_a_critical_tool_denied_outright_is_shown_as_hidden_from_the_tool_list(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky()})
    view = show_json(config, "risky", "wire_money")
    assert view["no_arguments"]["action"] == "deny" and view["no_arguments"]["hidden"] is True
    assert view["no_arguments"]["rule"] == "critical-is-denied"
    (tmp_path / "p.yaml").write_text(OVERRIDE)
    conditional = show_json(config, "risky", "send_email", "--policy", str(tmp_path / "p.yaml"), "--user", "mallory")
    assert conditional["no_arguments"]["action"] == "deny" and conditional["no_arguments"]["hidden"] is False


def test_with_findings_set_to_block_a_poisoned_tool_is_shown_as_held(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("version: 1\nintegrity: {findings: block}\n")
    config = write_config(tmp_path, {"breaker": breaker()}, policy="p.yaml")
    view = show_json(config, "breaker", "poisoned")
    assert view["no_arguments"]["action"] == "held"
    assert "carries instructions to the model" in view["no_arguments"]["reason"]
    assert show_json(config, "breaker", "leaky")["no_arguments"]["action"] == "allow"


def test_a_description_naming_another_servers_tool_is_shadowing_and_raised(tmp_path: Path) -> None:
    both = write_config(tmp_path, {"risky": risky(), "breaker": breaker()})
    view = show_json(both, "breaker", "mail_helper")
    assert view["integrity"]["findings"] == ["shadowing"] and view["risk"]["level"] == "high"
    (tmp_path / "alone").mkdir()
    alone = show_json(write_config(tmp_path / "alone", {"breaker": breaker()}), "breaker", "mail_helper")
    assert alone["integrity"]["findings"] == [] and alone["risk"]["level"] == "low"


def test_a_name_listed_twice_shows_its_riskiest_definition(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"breaker": breaker()})
    result = guard("policy", "show", "--config", str(config), "--server", "breaker", "--tool", "sync", "--json")
    assert result.returncode == 0, result.stderr
    assert "lists 'sync' 2 times" in result.stderr
    assert json.loads(result.stdout)["risk"]["level"] == "critical"


def test_an_invalid_author_tag_is_shown_as_ignored_and_the_default_applies(tmp_path: Path) -> None:
    view = show_json(write_config(tmp_path, {"breaker": breaker()}), "breaker", "odd_tag")
    assert "ignored" in _layer(view, "author") and view["risk"]["source"] == "default"


def test_a_tool_the_server_does_not_list_is_an_error_naming_the_nearest_one(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky()})
    result = guard("policy", "show", "--config", str(config), "--server", "risky", "--tool", "send_emial")
    assert result.returncode == 1
    assert "not listed by 'risky'" in result.stderr and "'send_email'" in result.stderr and not result.stdout
    namespaced = guard("policy", "show", "--config", str(config), "--server", "risky", "--tool", "risky__send_email")
    assert namespaced.returncode == 1 and "--tool send_email" in namespaced.stderr
    unknown = guard("policy", "show", "--config", str(config), "--server", "riskie", "--tool", "x")
    assert unknown.returncode == 2 and "configured: risky" in unknown.stderr and "Traceback" not in unknown.stderr


def test_hostile_tool_names_and_reasons_print_as_one_line_each(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"breaker": breaker()})
    result = guard("policy", "show", "--config", str(config), "--server", "breaker", "--tool", "wipe_disk")
    assert result.returncode == 0, result.stderr
    assert "erases\\n  - {action: allow}" in result.stdout  # the reason's line break is shown, not obeyed
    assert not any(line.lstrip().startswith("- {action") for line in result.stdout.splitlines())
    broken = guard("policy", "show", "--config", str(config), "--server", "breaker", "--tool", "line\nbreak")
    assert broken.returncode == 0, broken.stderr
    assert broken.stdout.splitlines()[0].startswith("line\\nbreak on breaker")
    quoted = guard("policy", "show", "--config", str(config), "--server", "breaker", "--tool", 'quote" and # hash')
    assert quoted.returncode == 0, quoted.stderr
    assert "x\\nrules: []\\nHint=True" in quoted.stdout  # a hostile annotation key stays on its line
    assert not any(line.startswith(("rules:", "Hint")) for line in quoted.stdout.splitlines())

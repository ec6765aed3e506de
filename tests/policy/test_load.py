"""Policy files: the shipped ones are valid; broken ones name file, line and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcp_guard.errors import ConfigError
from mcp_guard.policy import load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
version: 1
rules:
  - match: {server: "*", tool: "write_*"}     # glob on names; also risk: high, labels: [SECRET]
    action: approve                             # allow | deny | approve
    approvers: user                             # user (elicitation) | reviewers (queue)
  - match: {risk: critical}
    action: deny
"""


def test_the_minimal_policy_from_the_design_is_valid() -> None:
    policy = parse_policy(MINIMAL)
    assert [r.action for r in policy.rules] == ["approve", "deny"]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "policies").glob("*.yaml")))
def test_shipped_policies_are_valid(name: str) -> None:
    assert load_policy(ROOT / "policies" / name).version == 1


BROKEN = [
    ("version: 1\nrules: [\n", "p.yaml:3: not valid YAML"),
    ("version: 1\nrules:\n  - match: {tool: x}\n    action: ask\n", "p.yaml:4: rules[0].action: Input should be 'allow', 'mask', 'deny' or 'approve'"),
    ("version: 1\ndefaults:\n  timeout: soon\n", "p.yaml:3: defaults.timeout: Input should be a valid number"),
    ("version: 1\nrules:\n  - match: {tol: x}\n    action: deny\n", "p.yaml:3: rules[0].match.tol: Extra inputs are not permitted"),
    ("version: 1\nrules:\n  - action: deny\n  - match: {risk: extreme}\n    action: deny\n", "p.yaml:4: rules[1].match.risk: Value error, expected low, medium, high or critical"),
    ("version: 2\n", "p.yaml:1: version: Input should be 1"),
    ("version: 1\nrules:\n  - action: approve\n    scope: forever\n", "p.yaml:4: rules[0].scope: Value error, expected once, session or ttl"),
    ("version: 1\nrules:\n  - match: {args: {path: x}}\n    action: deny\n", "p.yaml:3: rules[0].match.args: Value error, argument paths are JSONPath"),
    ("", "p.yaml: the policy is empty"),
    ("version: 1\nrules:\n  - action: approve\n    scope: ttl:0s\n", "p.yaml:4: rules[0].scope: Value error, expected once, session or ttl"),
    ("version: 1\nmasking:\n  labels:\n    EMAIL: {operator: encrypt, params: {key: short-key}}\n",
     "p.yaml:4: masking.labels.EMAIL: presidio's encrypt operator refuses these params: Invalid input, key must be of length"),
    ("version: 1\nmasking:\n  labels:\n    EMAIL: encrypt\n", "p.yaml:4: masking.labels.EMAIL: presidio's encrypt operator refuses"),
    ("version: 1\nmasking:\n  servers:\n    db:\n      labels:\n        PHONE: {operator: hash, params: {hash_type: md9}}\n",
     "p.yaml:6: masking.servers.db.labels.PHONE: presidio's hash operator refuses these params"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN, ids=[
    "yaml", "action", "type", "unknown-field", "risk", "version", "scope", "jsonpath", "empty", "zero-ttl", "short-encrypt-key",
    "encrypt-without-key", "unknown-hash-type",
])
def test_broken_policies_say_where_and_what(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "p.yaml")
    assert message in str(info.value)


def test_policy_check_exits_1_naming_the_error_and_0_when_valid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - match: {tool: x}\n    action: maybe\n")
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    run = [sys.executable, "-m", "mcp_guard", "policy", "check"]
    failed = subprocess.run([*run, str(good), str(bad)], capture_output=True, text=True, timeout=30)
    assert failed.returncode == 1
    assert f"{bad}:4: rules[0].action" in failed.stderr
    passed = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=30)
    assert passed.returncode == 0


def test_an_encryption_key_presidio_refuses_is_never_echoed_in_the_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy("version: 1\nmasking:\n  labels:\n    EMAIL: {operator: encrypt, params: {key: hunter2hunter}}\n", "p.yaml")
    assert "hunter2hunter" not in str(info.value)


def test_valid_operators_with_presidio_params_load() -> None:
    policy = parse_policy(
        "version: 1\nmasking:\n  labels:\n    EMAIL: {operator: encrypt, params: {key: 0123456789abcdef}}\n"
        "    PHONE: mask\n    IBAN: {operator: hash, params: {hash_type: sha512}}\n", "p.yaml"
    )
    assert sorted(policy.masking.labels) == ["EMAIL", "IBAN", "PHONE"]


def test_policy_check_warns_of_twin_rule_names_and_groups_it_does_not_define_but_passes(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\ngroups: {dba: [alice]}\nrules:\n  - {name: db, action: deny, match: {tool: drop}}\n"
        "  - {name: db, action: approve, approvers: reviewers, group: secops, match: {tool: alter}}\n"
        "  - {name: ok, action: approve, approvers: reviewers, group: dba, match: {tool: grant}}\n"
    )
    checked = subprocess.run([sys.executable, "-m", "mcp_guard", "policy", "check", str(policy)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0
    warnings = [line for line in checked.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 2
    assert "rules[1] has the name 'db' of rules[0]" in warnings[0]
    assert "rules[1].group: 'secops' is not in `groups`" in warnings[1]


def test_policy_check_fails_on_a_ner_model_that_run_could_not_load(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\nmasking:\n  ner: {tmp_path / 'no-such-model'}\n")
    checked = subprocess.run([sys.executable, "-m", "mcp_guard", "policy", "check", str(policy)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 1
    assert "masking.ner:" in checked.stderr and ": ok" not in checked.stderr


# YAML's own loaders keep the last of two equal keys: a second `rules:` silently drops the
# first rules. Each of these would load a weaker policy than the one written.
REPEATED = [
    ("version: 1\nrules:\n  - match: {tool: delete_all}\n    action: deny\nrules:\n  - action: allow\n",
     "p.yaml:5: rules: duplicate key (first set on line 2)"),
    ("version: 1\nrules:\n  - match: {tool: delete_all}\n    action: deny\n    action: allow\n",
     "p.yaml:5: rules[0].action: duplicate key (first set on line 4)"),
    ("version: 1\nrules:\n  - match: {tool: x, tool: y}\n    action: deny\n", "p.yaml:3: rules[0].match.tool: duplicate key"),
    ('version: 1\nrules: []\n"rules":\n  - action: allow\n', "p.yaml:3: rules: duplicate key (first set on line 2)"),
    ("version: 1\nrules:\n  - <<: [deny]\n    tool: x\n", "p.yaml:3: rules[0]: a merge key '<<' takes a mapping or a list of mappings"),
    ("version: 1\nrules:\n  - <<: {action: deny}\n    <<: {action: allow}\n", "p.yaml:4: rules[0]: a second merge key '<<' (the first is on line 3)"),
    ("version: 1\na: &a [*a]\n", "p.yaml:2: the policy expands past"),
    ("version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", "the policy expands past"),
]


@pytest.mark.parametrize(("text", "message"), REPEATED, ids=[
    "second-rules-key", "second-action", "flow-mapping", "quoted-twin", "merge-of-scalar", "second-merge", "recursive-alias",
    "alias-bomb",
])
def test_repeated_keys_and_misused_merges_are_errors_with_their_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "p.yaml")
    assert message in str(info.value)


def test_a_merge_key_with_a_mapping_still_works_and_written_keys_win() -> None:
    text = "version: 1\nrules:\n  - &base {match: {tool: x}, action: deny}\n  - <<: *base\n    match: {tool: y}\n"
    policy = parse_policy(text)
    assert [(r.match.tool, r.action) for r in policy.rules] == [("x", "deny"), ("y", "deny")]


def test_a_policy_with_a_repeated_key_fails_check_and_the_guard_does_not_start(tmp_path: Path) -> None:
    bad = tmp_path / "twice.yaml"
    bad.write_text("version: 1\nrules:\n  - match: {tool: echo}\n    action: deny\nrules: []\n")
    check = subprocess.run([sys.executable, "-m", "mcp_guard", "policy", "check", str(bad)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 1 and f"{bad}:5: rules: duplicate key" in check.stderr
    run = subprocess.run(
        [sys.executable, "-m", "mcp_guard", "run", "--policy", str(bad), "--", sys.executable, "-c", "pass"],
        capture_output=True, text=True, timeout=30, input="",
    )
    assert run.returncode == 2 and "duplicate key" in run.stderr


def test_a_policy_that_is_not_utf8_is_a_config_error_naming_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: 1\nrules: []\n\xff\xfe: x\n")
    with pytest.raises(ConfigError, match=r"p\.yaml:3: not UTF-8"):
        load_policy(path)


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_a_policy_nested_thousands_deep_is_a_config_error_not_a_recursion_error(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = "version: 1\nrules: " + opener * 5000 + closer * 5000 + "\n"
    with pytest.raises(ConfigError, match=r"deep\.yaml:2: the policy nests deeper than 64 levels"):
        parse_policy(text, "deep.yaml")

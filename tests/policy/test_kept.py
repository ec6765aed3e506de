"""Kept policies: a policy validated once is rebuilt, not validated again, on the next start.

The rebuilt policy must be the validated one to the last field, only for the very same text and
schema, and never from an entry that was damaged on disk.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_guard.errors import ConfigError
from mcp_guard.policy import kept
from mcp_guard.policy.load import _validate, parse_policy
from tests.relay.test_startup_imports import loaded_by_run

EVERY_KIND = """\
version: 1
defaults: {risk: low, timeout: 30, scope: "ttl:10m", channels: [page, cli], wait: 5}
groups: {admins: [alice, bob]}
risk:
  - match: {server: files, tool: "read_*"}
    risk: low
rules:
  - name: writes
    match: {tool: "write_*", risk: ">=high", group: admins, args: {"$.path": "path:/etc/*"}, annotations: {openWorldHint: true}}
    action: approve
    approvers: reviewers
    quorum: 2
    timeout: 60
  - match: {labels: [SECRET]}
    action: mask
masking:
  labels: {EMAIL: keep, PHONE: {operator: mask, params: {masking_char: "*", chars_to_mask: 4}}}
  servers: {mail: {enabled: false}}
  flows: [{from: mail, to: crm, labels: [EMAIL]}]
  max_result_tokens: 2000
integrity: {new_tools: hold, findings: block}
"""


def test_a_kept_policy_is_the_validated_one_field_for_field_with_the_same_version() -> None:
    validated = _validate(EVERY_KIND, "p.yaml")
    kept.keep(EVERY_KIND, validated)
    rebuilt = kept.recall(EVERY_KIND)
    assert rebuilt == validated and rebuilt is not validated
    assert rebuilt.masking.flows[0].source == "mail" and rebuilt.masking.labels["PHONE"].params["chars_to_mask"] == 4
    assert kept.digest(rebuilt) == kept.digest(validated)


def test_a_policy_is_kept_only_for_its_exact_text() -> None:
    parse_policy(EVERY_KIND)
    assert kept.recall(EVERY_KIND) is not None
    assert kept.recall(EVERY_KIND + "\n# one more comment\n") is None
    broken = EVERY_KIND.replace("action: mask", "action: maybe")
    with pytest.raises(ConfigError, match="rules\\[1\\].action"):
        parse_policy(broken, "p.yaml")
    assert kept.recall(broken) is None  # a refused policy is never kept


def test_a_kept_entry_edited_on_disk_is_refused_and_the_policy_validated_again() -> None:
    text = EVERY_KIND.replace("quorum: 2", "quorum: 3")
    parse_policy(text)
    path = kept._path(text)
    entry = json.loads(path.read_text())
    assert '"approve"' in json.dumps(entry["policy"])
    path.write_text(json.dumps(entry).replace('"approve"', '"allow"'))  # digest left as it was
    assert kept.recall(text) is None
    assert parse_policy(text).rules[0].action == "approve"
    path.write_text(path.read_text()[:50])  # cut short
    assert kept.recall(text) is None
    assert parse_policy(text).rules[0].quorum == 3


def test_a_kept_entry_naming_a_class_outside_the_schema_is_refused() -> None:
    text = EVERY_KIND.replace("wait: 5", "wait: 6")
    parse_policy(text)
    path = kept._path(text)
    entry = json.loads(path.read_text())
    entry["policy"] = {"c": "Popen", "f": {"args": ["true"]}}
    entry["sha256"] = kept.hashlib.sha256(kept._dumps(entry["policy"])).hexdigest()
    path.write_text(json.dumps(entry))
    assert kept.recall(text) is None


def test_a_kept_entry_is_readable_by_its_owner_only() -> None:
    text = EVERY_KIND.replace("timeout: 30", "timeout: 31")
    parse_policy(text)
    mode = stat.S_IMODE(os.stat(kept._path(text)).st_mode)
    assert mode == 0o600


def test_the_second_guard_on_a_policy_starts_without_pydantic_or_yaml_and_still_masks(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(EVERY_KIND.replace("EMAIL: keep", "EMAIL: placeholder") + f"# {tmp_path.name}\n")
    first, _ = loaded_by_run(tmp_path, "--policy", str(policy))
    assert "pydantic" in first and "yaml" in first  # validated: nothing was kept for this text yet
    second, answers = loaded_by_run(tmp_path, "--policy", str(policy))
    assert "pydantic" not in second and "yaml" not in second
    assert "mcp_guard.hooks.mask" in second
    assert [a["id"] for a in answers] == [1, 2]
    assert "jane@example.com" not in json.dumps(answers[1])  # the kept policy's masking is in force


def test_policy_check_reports_an_edited_policy_even_after_its_earlier_text_was_kept(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(EVERY_KIND)
    ok = subprocess.run([sys.executable, "-m", "mcp_guard", "policy", "check", str(policy)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    policy.write_text(EVERY_KIND.replace("quorum: 2", "quorum: 0"))
    bad = subprocess.run([sys.executable, "-m", "mcp_guard", "policy", "check", str(policy)], capture_output=True, text=True)
    assert bad.returncode != 0 and "rules[0].quorum" in bad.stderr


@pytest.mark.parametrize("tampering", ["another account's", "writable by others", "a symlink"])
def test_a_kept_entry_another_account_wrote_or_could_change_is_never_used(tampering: str, tmp_path: Path) -> None:
    text = EVERY_KIND.replace("quorum: 2", "quorum: 4") + f"# {tampering}\n"
    parse_policy(text)
    path = kept._path(text)
    assert kept.recall(text) is not None
    if tampering == "another account's":
        os.chown(path, 65534, 65534)
    elif tampering == "writable by others":
        os.chmod(path, 0o666)
    else:
        elsewhere = tmp_path / "entry.json"
        path.rename(elsewhere)
        path.symlink_to(elsewhere)
    assert kept.recall(text) is None


def test_a_pattern_database_another_account_wrote_is_compiled_again_rather_than_loaded(tmp_path: Path) -> None:
    from mcp_guard.masking import databases, fast

    families = fast._family_list()
    databases.database(families)  # compiled or loaded: the file is there and ours
    path = databases._cache_path(families, "")
    assert databases._cached(families, "") is not None
    os.chown(path, 65534, 65534)
    try:
        assert databases._cached(families, "") is None
    finally:
        os.chown(path, os.geteuid(), os.getegid())


@pytest.mark.parametrize("value", [".inf", ".nan", "1e400"])
def test_a_timeout_that_is_not_a_finite_number_is_refused_where_it_is_written(value: str) -> None:
    with pytest.raises(ConfigError, match=r"p.yaml:4: rules\[0\].timeout: Value error, must be a finite number"):
        parse_policy(f"version: 1\nrules:\n  - action: approve\n    timeout: {value}\n", "p.yaml")


def test_a_policy_path_that_is_a_fifo_is_refused_at_once_instead_of_read(tmp_path: Path) -> None:
    from mcp_guard.policy import load_policy

    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_policy(fifo)


def test_policy_check_reads_the_file_itself_and_repairs_a_kept_entry_that_says_otherwise(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    text = EVERY_KIND + f"# {tmp_path.name}\n"
    policy.write_text(text)
    parse_policy(text)
    path = kept._path(text)
    entry = json.loads(path.read_text())
    entry["policy"]["f"]["rules"] = []  # the same account rewrote it, digest and all
    entry["sha256"] = kept.hashlib.sha256(kept._dumps(entry["policy"])).hexdigest()
    path.write_text(json.dumps(entry))
    assert kept.recall(text).rules == []
    done = subprocess.run([sys.executable, "-m", "mcp_guard", "policy", "check", str(policy)], capture_output=True, text=True)
    assert done.returncode == 0 and "2 rules" in done.stdout + done.stderr
    assert len(kept.recall(text).rules) == 2  # what the check validated is what is kept now

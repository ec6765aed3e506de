"""Red team round 2: a policy whose rule could never be checked against a call must be refused at
load, naming the file and line (README "Policies": "validated strictly: a typo is an error naming
the file, line and field"; an argument path no call could be checked against is an error at load).

These deny rules load as "ok" and then deny nothing:

* ``$`` (the arguments object itself, never a value a glob can be compared with) and ``$[0]``
  (an index into the arguments object, which is never a list);
* an annotation key no MCP tool annotation has, here the typo ``destructivehint``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import PY

RULES = {
    "the bare root path": ('args: {"$": "/etc/*"}', '{"path": "/etc/hosts"}', "{}"),
    "an index into the arguments object": ('args: {"$[0]": "/etc/*"}', '{"path": "/etc/hosts"}', "{}"),
    "a misspelt annotation": ("annotations: {destructivehint: true}", "{}", '{"destructiveHint": true}'),
}


def _guard(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "mcp_guard", *argv], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", sorted(RULES))
def test_a_deny_rule_that_no_call_could_match_is_refused_at_load_with_its_file_and_line(tmp_path: Path, case: str) -> None:
    match, args, annotations = RULES[case]
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\ndefaults: {{action: allow}}\nrules:\n  - name: r\n"
                      f"    match: {{tool: \"*\", {match}}}\n    action: deny\n")
    check = _guard("policy", "check", str(policy))
    explain = _guard("policy", "explain", "--policy", str(policy), "--server", "s", "--tool", "write_file",
                     "--args", args, "--annotations", annotations)
    decided = (explain.stdout.split() or ["?"])[0]
    assert check.returncode != 0 or decided == "DENY", (
        f"{case}: `policy check` says {(check.stdout + check.stderr).strip()!r}, yet the deny rule lets the call it names through ({decided})"
    )
    if check.returncode != 0:
        assert "policy.yaml:5" in check.stdout + check.stderr, check.stdout + check.stderr

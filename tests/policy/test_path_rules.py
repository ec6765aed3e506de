"""decide() with path patterns, as a table: spellings normalized, lists opened, relative values
resolved against roots (any may match a deny; all must match an allow), unknown roots refused."""

from __future__ import annotations

import os
from typing import Any

import pytest

from mcp_guard.policy import decide, parse_policy
from mcp_guard.policy.engine import Facts
from mcp_guard.policy.paths import resolve, roots_from_uris

DENY_ETC = parse_policy("""\
version: 1
defaults: {action: allow}
rules:
  - name: no-etc
    match: {args: {"$.path": "/etc/*"}}
    action: deny
  - name: no-ssh
    match: {args: {"$..*": "path:*/.ssh/*"}}
    action: deny
  - name: home-approve
    match: {args: {"$.path": "~/private/*"}}
    action: approve
""")

ALLOW_WORK = parse_policy("""\
version: 1
defaults: {action: deny}
rules:
  - name: work-only
    match: {args: {"$.paths": "/srv/work/*"}}
    action: allow
""")

HOME = os.path.expanduser("~")

CASES = [
    # (policy, arguments, roots, action, rule)
    (DENY_ETC, {"path": "/etc/hosts"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "//etc/hosts"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "///etc///hosts"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "/./etc/hosts"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "/tmp/../etc/hosts"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "/../../etc/hosts"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "/etc"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "file:///etc/hosts"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "file:///%65tc/hosts"}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "etc/hosts"}, ("/",), "deny", "no-etc"),
    (DENY_ETC, {"path": "../etc/hosts"}, ("/srv",), "deny", "no-etc"),
    (DENY_ETC, {"path": "hosts"}, ("/srv", "/etc"), "deny", "no-etc"),  # either root may be the one used
    (DENY_ETC, {"path": "etc/hosts"}, None, "deny", "no-etc"),  # relative, roots unknown: refused
    (DENY_ETC, {"path": ["/tmp/a", "/tmp/../etc/passwd"]}, None, "deny", "no-etc"),
    (DENY_ETC, {"path": "/etcetera/x"}, None, "allow", "defaults"),
    (DENY_ETC, {"path": "/tmp/etc/hosts"}, None, "allow", "defaults"),
    (DENY_ETC, {"path": "notes.txt"}, ("/srv",), "allow", "defaults"),
    (DENY_ETC, {"source": "/tmp/x", "destination": "/home/u/.ssh/authorized_keys"}, None, "deny", "no-ssh"),
    (DENY_ETC, {"paths": ["/tmp/x", "/home/u/.ssh//id_rsa"]}, None, "deny", "no-ssh"),
    (DENY_ETC, {"path": "~/private/diary"}, None, "approve", "home-approve"),
    (DENY_ETC, {"path": f"{HOME}/private/../private/diary"}, None, "approve", "home-approve"),
    (DENY_ETC, {"path": "/e\u0301tc/x"}, None, "allow", "defaults"),  # é is not e: a different directory
    (ALLOW_WORK, {"paths": ["/srv/work/a", "/srv/work/b"]}, None, "allow", "work-only"),
    (ALLOW_WORK, {"paths": ["/srv/work/a", "/srv/work/../../etc/hosts"]}, None, "deny", "defaults"),
    (ALLOW_WORK, {"paths": ["a"]}, ("/srv/work",), "allow", "work-only"),
    (ALLOW_WORK, {"paths": ["a"]}, ("/srv/work", "/srv/other"), "deny", "defaults"),  # allow needs every place
    (ALLOW_WORK, {"paths": ["a"]}, None, "deny", "work-only"),  # relative, roots unknown: refused
    (ALLOW_WORK, {"paths": []}, None, "deny", "defaults"),
]


@pytest.mark.parametrize(
    ("policy", "arguments", "roots", "action", "rule"),
    CASES,
    ids=[str(c[1]) + (f" roots={c[2]}" if c[2] else "") for c in CASES],
)
def test_path_rules_match_the_place_a_path_names_not_its_spelling(
    policy: Any, arguments: dict[str, Any], roots: tuple[str, ...] | None, action: str, rule: str
) -> None:
    decision = decide(policy, Facts("files", "read_text_file", "low", arguments, roots=roots))
    assert (decision.action, decision.rule) == (action, rule)


def test_an_unresolvable_relative_path_is_refused_with_a_reason_the_model_can_act_on() -> None:
    decision = decide(DENY_ETC, Facts("files", "read_text_file", "low", {"path": "etc/hosts"}))
    assert (
        decision.action == "deny"
        and "'etc/hosts' is relative" in decision.reason
        and "absolute path" in decision.reason
    )


def test_plain_glob_patterns_still_match_text_and_now_each_list_element() -> None:
    policy = parse_policy(
        'version: 1\nrules:\n  - match: {args: {"$.url": "https://evil.example/*"}}\n    action: deny\n'
    )
    assert (
        decide(policy, Facts("web", "fetch", "low", {"url": ["https://ok.example/", "https://evil.example/x"]})).action
        == "deny"
    )
    assert decide(policy, Facts("web", "fetch", "low", {"url": "https://evil.example/x"})).action == "deny"
    assert decide(policy, Facts("web", "fetch", "low", {"url": "relative/ok"})).action == "allow"  # not a path rule


def test_roots_from_a_roots_list_answer_are_normalized_and_non_file_roots_skipped() -> None:
    answer = {
        "roots": [
            {"uri": "file:///srv//work/"},
            {"uri": "https://example.com/"},
            {"uri": "/opt/x/."},
            {"name": "no uri"},
        ]
    }
    assert roots_from_uris(answer, local=False) == ("/srv/work", "/opt/x")
    assert resolve("a/../../b", ("/srv/work",)) == ["/srv/b"]


def test_policy_explain_resolves_relative_paths_against_the_roots_it_is_given(tmp_path: Any) -> None:
    import json
    import subprocess
    import sys

    policy = tmp_path / "p.yaml"
    policy.write_text(
        'version: 1\nrules:\n  - name: no-etc\n    match: {args: {"$.path": "/etc/*"}}\n    action: deny\n'
    )
    base = [
        sys.executable,
        "-m",
        "mcp_guard",
        "policy",
        "explain",
        "--policy",
        str(policy),
        "--server",
        "files",
        "--tool",
        "read_text_file",
        "--json",
    ]

    def explain(path: str, *roots: str) -> dict[str, Any]:
        extra = [a for r in roots for a in ("--root", r)]
        out = subprocess.run(
            [*base, "--args", json.dumps({"path": path}), *extra], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    assert explain("etc/hosts")["action"] == "deny" and "relative" in explain("etc/hosts")["reason"]
    assert (
        explain("etc/hosts", "file:///")["rule"] == "no-etc" and "relative" not in explain("etc/hosts", "/")["reason"]
    )
    assert explain("srv/notes", "/")["action"] == "allow"
    assert explain("//etc/hosts")["action"] == "deny"

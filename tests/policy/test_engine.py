"""decide() and risk resolution, as tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mcp_guard.policy import decide, parse_policy
from mcp_guard.policy.engine import Facts
from mcp_guard.risk import resolve_risk, tag

POLICY = parse_policy(
    """
version: 1
defaults: {risk: medium, action: allow}
groups: {ops: [alice]}
risk:
  - match: {server: files, tool: "read_*"}
    risk: low
rules:
  - name: writes
    match: {tool: "write_*"}
    action: approve
  - name: etc
    match: {tool: "write_*", args: {"$.path": "/etc/*"}}
    action: deny
  - name: critical
    match: {risk: critical}
    action: deny
  - name: ops-may-deploy
    match: {tool: deploy, group: ops}
    action: allow
  - name: deploy
    match: {tool: deploy}
    action: approve
    approvers: reviewers
  - name: urls
    match: {args: {"$..url": "http://*"}}
    action: deny
  - name: high-open-world
    match: {risk: ">=high", annotations: {openWorldHint: true}}
    action: approve
"""
)

CASES = [
    ("write_file", "medium", {"path": "/tmp/x"}, "", {}, "approve", "writes"),
    ("write_file", "medium", {"path": "/etc/passwd"}, "", {}, "deny", "etc"),  # deny beats approve
    ("read_file", "critical", {}, "", {}, "deny", "critical"),
    ("deploy", "medium", {}, "alice", {}, "approve", "deploy"),  # approve beats allow
    ("deploy", "medium", {}, "bob", {}, "approve", "deploy"),
    ("fetch", "medium", {"req": {"url": "http://x"}}, "", {}, "deny", "urls"),  # deep path
    ("fetch", "medium", {"req": {"url": "https://x"}}, "", {}, "allow", "defaults"),
    ("post", "high", {}, "", {}, "approve", "high-open-world"),  # openWorldHint defaults to true
    ("post", "high", {}, "", {"openWorldHint": False}, "allow", "defaults"),
    ("post", "low", {}, "", {}, "allow", "defaults"),
]


@pytest.mark.parametrize(("tool", "risk", "args", "user", "hints", "action", "rule"), CASES)
def test_the_strictest_matching_rule_decides(tool, risk, args, user, hints, action, rule) -> None:
    decision = decide(POLICY, Facts("files", tool, risk, args, user, annotations=hints))
    assert (decision.action, decision.rule) == (action, rule)


RISKS = [
    ({"name": "read_file"}, "files", "low", "policy"),  # the policy override wins over everything
    ({"name": "x", "_meta": {"mcp-guard/risk": "critical"}, "annotations": {"readOnlyHint": True}}, "s", "critical", "author"),
    ({"name": "x", "_meta": {"mcp-guard/risk": "bogus"}, "annotations": {"readOnlyHint": True, "openWorldHint": False}}, "s", "low", "annotations"),
    ({"name": "x", "annotations": {"readOnlyHint": True}}, "s", "medium", "annotations"),  # open world by default
    ({"name": "x", "annotations": {"destructiveHint": True, "openWorldHint": False}}, "s", "high", "annotations"),
    ({"name": "x", "annotations": {"destructiveHint": False, "openWorldHint": False}}, "s", "medium", "annotations"),
    ({"name": "x", "annotations": {}}, "s", "high", "annotations"),  # spec defaults: destructive, open; capped at high
    ({"name": "x"}, "s", "medium", "default"),
]


@pytest.mark.parametrize(("tool", "server", "level", "source"), RISKS)
def test_risk_comes_from_policy_then_author_then_annotations_then_default(tool, server, level, source) -> None:
    risk = resolve_risk(POLICY, server, tool, tool["name"])
    assert (risk.level, risk.source) == (level, source)


def test_the_tag_helper_sets_the_meta_keys_on_dicts_and_sdk_tools() -> None:
    import mcp_types as types

    assert tag({"name": "t"}, "high", "why")["_meta"] == {"mcp-guard/risk": "high", "mcp-guard/reason": "why"}
    tool = tag(types.Tool(name="t", input_schema={"type": "object"}), "low")
    assert tool.meta == {"mcp-guard/risk": "low"}
    with pytest.raises(ValueError):
        tag({"name": "t"}, "extreme")


def test_policy_explain_prints_the_decision_and_rule_as_json(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nrules:\n  - name: no-etc\n    match: {args: {'$.path': '/etc/*'}}\n    action: deny\n")
    done = subprocess.run(
        [sys.executable, "-m", "mcp_guard", "policy", "explain", "--policy", str(path), "--server", "files",
         "--tool", "write_file", "--args", '{"path": "/etc/hosts"}', "--json"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["action"], out["rule"], out["risk"]) == ("deny", "no-etc", "medium")

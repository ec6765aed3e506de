"""What the policy does to one tool (``policy show``): its risk layer by layer, the rules that
apply to it, and the action a call with no arguments gets.

Pure: the caller loads the policy and lists the tool. Every entry says where it came from (the
policy file's line and rule name, the tool's own ``_meta`` or annotations, the default), so a
person can find the line to change. Rules that also look at arguments or detected labels are
listed with what they look at, not evaluated: their outcome depends on each call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import yaml

from ..integrity import scan_definition
from ..risk import REASON_KEY, RISK_KEY, resolve_risk
from .engine import Facts, decide, matches, unconditional
from .model import RISKS, Match, Policy

__all__ = ["ToolView", "policy_lines", "show_tool"]


@dataclass(frozen=True)
class ToolView:
    """Everything ``policy show`` reports, as plain data (``to_dict`` is the ``--json`` output)."""

    server: str
    tool: str
    user: str
    policy: str
    risk: dict[str, Any]
    rules: list[dict[str, Any]]
    no_arguments: dict[str, Any]
    integrity: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server, "tool": self.tool, "user": self.user, "policy": self.policy, "risk": self.risk,
            "rules": self.rules, "no_arguments": self.no_arguments, "integrity": self.integrity,
        }


def policy_lines(text: str) -> dict[tuple[str, int | str], int]:
    """1-based lines of ``rules[i]``, ``risk[i]`` and ``defaults.<key>`` in a policy's YAML.

    Best effort: the text has already loaded cleanly, so a shape this does not expect (a merge
    key at the top) just leaves the entry without a line."""
    found: dict[tuple[str, int | str], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return found
    if not isinstance(root, yaml.MappingNode):
        return found
    for key, value in root.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name in ("rules", "risk") and isinstance(value, yaml.SequenceNode):
            for index, item in enumerate(value.value):
                found[(name, index)] = item.start_mark.line + 1
        elif name == "defaults" and isinstance(value, yaml.MappingNode):
            for sub, _ in value.value:
                if isinstance(sub, yaml.ScalarNode):
                    found[("defaults", sub.value)] = sub.start_mark.line + 1
    return found


def show_tool(
    policy: Policy, source: str, text: str, server: str, tool: dict[str, Any], user: str,
    others: Collection[str] = frozenset(),
) -> ToolView:
    """``others``: the tool names the config's other servers list (a description naming one is shadowing)."""
    lines = policy_lines(text)
    name = str(tool["name"])
    layers, resolved = _risk_layers(policy, source, lines, server, tool)
    integrity = _integrity(policy, tool, resolved, others)
    level = integrity.get("risk", resolved["level"])
    hints = tool.get("annotations") if isinstance(tool.get("annotations"), dict) else {}
    facts = Facts(server, name, level, {}, user, annotations=hints)
    decision = decide(policy, facts)
    no_args = {**decision.to_dict(), "from": _rule_where(policy, source, lines, decision.rule),
               "hidden": decision.action == "deny" and unconditional(policy, decision.rule)}
    if integrity.get("held"):
        no_args = {"action": "held", "rule": "integrity", "reason": integrity["held"], "from": "integrity.findings"}
    risk = {**resolved, "level": level, "layers": layers}
    if "risk" in integrity:
        risk["source"] = "integrity"
    return ToolView(server, name, user, source, risk, _rules(policy, source, lines, facts), no_args, integrity)



def _where(source: str, lines: dict[tuple[str, int | str], int], key: tuple[str, int | str]) -> str:
    line = lines.get(key)
    return f"{source}:{line}" if line is not None else source


def _rule_where(policy: Policy, source: str, lines: dict[tuple[str, int | str], int], rule: str) -> str:
    if rule == "defaults":
        return _where(source, lines, ("defaults", "action")) + " defaults.action"
    for index in range(len(policy.rules)):
        if policy.rule_name(index) == rule:
            return _where(source, lines, ("rules", index)) + f" rules[{index}]"
    return source


def _risk_layers(
    policy: Policy, source: str, lines: dict[tuple[str, int | str], int], server: str, tool: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each source of risk that has something to say, in precedence order; the first one is in force."""
    name = str(tool["name"])
    resolved = resolve_risk(policy, server, tool, name)
    layers: list[dict[str, Any]] = []
    probe = Facts(server, name, "medium")
    for index, override in enumerate(policy.risk):
        if matches(policy, override.match, probe):
            where = _where(source, lines, ("risk", index)) + f" risk[{index}]"
            layers.append({"source": "policy", "level": override.risk, "from": where, "match": _match(override.match)})
    meta = tool.get("_meta") if isinstance(tool.get("_meta"), dict) else {}
    tagged = meta.get(RISK_KEY)
    if tagged is not None:
        entry: dict[str, Any] = {"source": "author", "from": f"the tool's _meta {RISK_KEY}"}
        if isinstance(tagged, str) and tagged in RISKS:
            entry["level"] = tagged
            if isinstance(meta.get(REASON_KEY), str):
                entry["reason"] = meta[REASON_KEY]
        else:
            entry["ignored"] = "not one of " + ", ".join(RISKS)
        layers.append(entry)
    annotations = tool.get("annotations")
    if isinstance(annotations, dict):
        level = resolve_risk(Policy(version=1), server, {"annotations": annotations}, name).level
        layers.append({"source": "annotations", "level": level, "from": "the tool's MCP annotations",
                       "annotations": {k: v for k, v in annotations.items() if k.endswith("Hint")}})
    layers.append({"source": "default", "level": policy.defaults.risk,
                   "from": _where(source, lines, ("defaults", "risk")) + " defaults.risk"
                   if ("defaults", "risk") in lines else "the schema's default (defaults.risk not set)"})
    in_force = False
    for layer in layers:
        layer["in_force"] = not in_force and layer.get("level") is not None and layer["source"] == resolved.source
        in_force = in_force or layer["in_force"]
    out: dict[str, Any] = {"level": resolved.level, "source": resolved.source}
    if resolved.reason:
        out["reason"] = resolved.reason
    return layers, out


def _integrity(
    policy: Policy, tool: dict[str, Any], resolved: dict[str, Any], others: Collection[str]
) -> dict[str, Any]:
    """What the guard's description scan would do to this tool (the same scan as at run time)."""
    kinds = sorted({f.kind for f in scan_definition(tool, set(others))})
    mode = policy.integrity.findings
    out: dict[str, Any] = {"findings": kinds, "mode": mode}
    if not kinds:
        return out
    if mode == "block":
        out["held"] = f"its description carries instructions to the model ({', '.join(kinds)})"
    elif mode == "raise" and resolved["source"] != "policy" and RISKS.index(resolved["level"]) < RISKS.index("high"):
        out["risk"] = "high"  # as the integrity hook raises it before the policy sees the call
    return out


def _match(match: Match) -> dict[str, Any]:
    """The fields a rule's match sets (those it leaves at their default match anything)."""
    return {f.name: getattr(match, f.name) for f in dataclasses.fields(match) if getattr(match, f.name) != f.default}


def _rules(
    policy: Policy, source: str, lines: dict[tuple[str, int | str], int], facts: Facts
) -> list[dict[str, Any]]:
    """Each rule whose server, tool, risk, user and annotations match; marks those that also need the call's content."""
    found = []
    for index, rule in enumerate(policy.rules):
        depends = [f"args {path} ~ {pattern}" for path, pattern in (rule.match.args or {}).items()]
        if rule.match.labels is not None:
            depends.append("labels " + ", ".join(rule.match.labels))
        static = dataclasses.replace(rule.match, args=None, labels=None)
        if not matches(policy, static, facts):
            continue
        found.append({
            "index": index, "name": policy.rule_name(index), "action": rule.action,
            "from": _where(source, lines, ("rules", index)) + f" rules[{index}]", "match": _match(rule.match),
            "depends_on": depends, **({"reason": rule.reason} if rule.reason else {}),
        })
    return found

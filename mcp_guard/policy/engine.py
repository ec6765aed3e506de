"""``decide()``: a pure function from a policy and the facts of one call to a decision.

Every rule whose ``match`` holds is a candidate; the strictest action wins (deny > approve >
allow), and among equals the first in the file. No matching rule means ``defaults.action``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .jsonpath import select
from .model import RISKS, STRICTNESS, Match, Policy


@dataclass(frozen=True)
class Facts:
    """What the policy may look at for one call."""

    server: str
    tool: str
    risk: str
    arguments: dict[str, Any] = field(default_factory=dict)
    user: str = ""
    labels: frozenset[str] = frozenset()
    annotations: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    action: str  # allow | deny | approve
    rule: str  # the rule's name, or "defaults"
    reason: str
    approvers: str = "user"
    timeout: float = 120.0
    scope: str = "once"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "approvers": self.approvers,
            "timeout": self.timeout,
            "scope": self.scope,
        }


def decide(policy: Policy, facts: Facts) -> Decision:
    best: tuple[int, int] | None = None  # (strictness, -index)
    for index, rule in enumerate(policy.rules):
        if not matches(policy, rule.match, facts):
            continue
        rank = (STRICTNESS[rule.action], -index)
        if best is None or rank > best:
            best = rank
    d = policy.defaults
    if best is None:
        return Decision(d.action, "defaults", f"no rule matched; the default for this policy is {d.action}", d.approvers, d.timeout, d.scope)
    index = -best[1]
    rule = policy.rules[index]
    name = policy.rule_name(index)
    reason = rule.reason or _describe(rule.action, name, facts)
    return Decision(rule.action, name, reason, rule.approvers, rule.timeout or d.timeout, rule.scope or d.scope)


def _describe(action: str, name: str, facts: Facts) -> str:
    verb = {"deny": "denies", "approve": "requires approval for", "allow": "allows"}[action]
    return f"policy rule '{name}' {verb} {facts.tool} on {facts.server} (risk {facts.risk})"


def matches(policy: Policy, match: Match, facts: Facts) -> bool:
    if not fnmatch.fnmatchcase(facts.server, match.server) or not fnmatch.fnmatchcase(facts.tool, match.tool):
        return False
    if match.risk is not None and not risk_matches(match.risk, facts.risk):
        return False
    if match.user is not None and not fnmatch.fnmatchcase(facts.user, match.user):
        return False
    if match.group is not None and facts.user not in policy.groups.get(match.group, ()):
        return False
    if match.labels is not None and not facts.labels.intersection(match.labels):
        return False
    if match.annotations is not None:
        for hint, wanted in match.annotations.items():
            if _annotation(facts.annotations, hint) is not wanted:
                return False
    if match.args is not None:
        for path, pattern in match.args.items():
            if not any(fnmatch.fnmatchcase(_text(value), pattern) for value in select(path, facts.arguments)):
                return False
    return True


# The spec's values for hints a server leaves out.
_HINT_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}


def _annotation(annotations: dict[str, Any], hint: str) -> bool:
    value = annotations.get(hint, _HINT_DEFAULTS.get(hint, False))
    return value is True


def risk_matches(spec: str | list[str], risk: str) -> bool:
    return any(_one_risk(item, risk) for item in ([spec] if isinstance(spec, str) else spec))


def _one_risk(item: str, risk: str) -> bool:
    op = item.rstrip("lowmediumhighcritical")
    level = RISKS.index(item[len(op):])
    actual = RISKS.index(risk) if risk in RISKS else RISKS.index("medium")
    return {"": actual == level, ">=": actual >= level, ">": actual > level, "<=": actual <= level, "<": actual < level}[op]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def first_override(policy: Policy, server: str, tool: str) -> str | None:
    facts = Facts(server, tool, "medium")
    for override in policy.risk:
        if matches(policy, override.match, facts):
            return override.risk
    return None


def all_rules(policy: Policy) -> Iterable[tuple[str, Any]]:
    for index, rule in enumerate(policy.rules):
        yield policy.rule_name(index), rule

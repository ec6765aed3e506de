"""``decide()``: a pure function from a policy and the facts of one call to a decision.

Every rule whose ``match`` holds is a candidate; the strictest action wins (deny > approve >
allow), and among equals the first in the file. No matching rule means ``defaults.action``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable
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
    channels: tuple[str, ...] = ("elicitation", "page", "notify", "cli")
    wait: float = 50.0
    min_human_ms: float = 300.0
    reviewers: tuple[str, ...] | None = None
    quorum: int = 1
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "approvers": self.approvers,
            "timeout": self.timeout,
            "scope": self.scope,
            "channels": list(self.channels),
            "wait": self.wait,
        }


def decide(policy: Policy, facts: Facts) -> Decision:
    compiled = _compile(policy)
    best: tuple[int, int] | None = None  # (strictness, -index)
    for index, strictness, test in compiled.rules:
        if best is not None and strictness < best[0]:
            continue  # cannot win: a stricter rule already matched
        if not test(facts):
            continue
        rank = (strictness, -index)
        if best is None or rank > best:
            best = rank
    d = policy.defaults
    if best is None:
        return Decision(
            d.action, "defaults", f"no rule matched; the default for this policy is {d.action}", d.approvers, d.timeout,
            d.scope, tuple(d.channels), d.wait, d.min_human_ms,
        )
    index = -best[1]
    rule = policy.rules[index]
    name = policy.rule_name(index)
    reason = rule.reason or _describe(rule.action, name, facts)
    return Decision(
        rule.action, name, reason, rule.approvers, rule.timeout or d.timeout, rule.scope or d.scope,
        tuple(rule.channels or d.channels), d.wait if rule.wait is None else rule.wait, d.min_human_ms,
        tuple(policy.groups.get(rule.group, ())) if rule.group is not None else None, rule.quorum, rule.group,
    )


@dataclass(frozen=True)
class _Compiled:
    policy: Policy
    rules: tuple[tuple[int, int, Callable[[Facts], bool]], ...]  # (index, strictness, test), strictest first
    overrides: tuple[tuple[Callable[[Facts], bool], str], ...]


_CACHE: dict[int, _Compiled] = {}


def _compile(policy: Policy) -> _Compiled:
    """Each match turned into one predicate, once per policy object (policies are frozen)."""
    found = _CACHE.get(id(policy))
    if found is not None and found.policy is policy:
        return found
    rules = sorted(
        ((i, STRICTNESS[r.action], _predicate(policy, r.match)) for i, r in enumerate(policy.rules)),
        key=lambda item: (-item[1], item[0]),
    )
    overrides = tuple((_predicate(policy, o.match), o.risk) for o in policy.risk)
    compiled = _Compiled(policy, tuple(rules), overrides)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[id(policy)] = compiled
    return compiled


def _glob(pattern: str) -> Callable[[str], object] | None:
    return None if pattern == "*" else re.compile(fnmatch.translate(pattern)).match


def _predicate(policy: Policy, match: Match) -> Callable[[Facts], bool]:
    server, tool = _glob(match.server), _glob(match.tool)
    risks = None if match.risk is None else frozenset(r for r in RISKS if risk_matches(match.risk, r))
    user = None if match.user is None else _glob(match.user)
    members = None if match.group is None else frozenset(policy.groups.get(match.group, ()))
    labels = None if match.labels is None else frozenset(match.labels)
    hints = match.annotations
    args = None if match.args is None else [(path, re.compile(fnmatch.translate(p)).match) for path, p in match.args.items()]

    def test(facts: Facts) -> bool:
        if server is not None and not server(facts.server):
            return False
        if tool is not None and not tool(facts.tool):
            return False
        if risks is not None and (facts.risk if facts.risk in RISKS else "medium") not in risks:
            return False
        if user is not None and (match.user != "*" and not user(facts.user)):
            return False
        if members is not None and facts.user not in members:
            return False
        if labels is not None and not labels.intersection(facts.labels):
            return False
        if hints is not None and any(_annotation(facts.annotations, h) is not w for h, w in hints.items()):
            return False
        if args is not None:
            for path, pattern in args:
                if not any(pattern(_text(value)) for value in select(path, facts.arguments)):
                    return False
        return True

    return test


def _describe(action: str, name: str, facts: Facts) -> str:
    verb = {"deny": "denies", "approve": "requires approval for", "allow": "allows", "mask": "masks the arguments of"}[action]
    return f"policy rule '{name}' {verb} {facts.tool} on {facts.server} (risk {facts.risk})"


def matches(policy: Policy, match: Match, facts: Facts) -> bool:
    return _predicate(policy, match)(facts)


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
    for test, risk in _compile(policy).overrides:
        if test(facts):
            return risk
    return None


def all_rules(policy: Policy) -> Iterable[tuple[str, Any]]:
    for index, rule in enumerate(policy.rules):
        yield policy.rule_name(index), rule

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

from .jsonpath import compile_path, select
from .model import RISKS, STRICTNESS, Match, Policy
from .paths import Host, UnresolvablePath, is_path_pattern, path_test


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
    # The filesystem roots the client gave this server (None: not known); relative paths resolve against them.
    roots: tuple[str, ...] | None = None
    # Where the server reads paths (this machine or not, its home); None: not known, links not followed.
    host: Host | None = None
    # The authenticated caller's own groups (a caller token's, or the identity provider's claim).
    groups: frozenset[str] = frozenset()


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
    key, candidates = compiled.candidates(facts)
    best: int | None = None
    for index, dynamic in candidates:
        try:
            if dynamic is None or dynamic(facts):
                best = index  # candidates come strictest first, then in file order: the first match wins
                break
        except UnresolvablePath as exc:
            return _unresolvable(policy, index, exc.value)
    found = compiled.decisions.get((key, best))
    if found is None:
        found = compiled.decisions[(key, best)] = _decision(policy, best, facts)  # depends on facts only via key
    return found


def _decision(policy: Policy, best: int | None, facts: Facts) -> Decision:
    d = policy.defaults
    if best is None:
        return Decision(
            d.action, "defaults", f"no rule matched; the default for this policy is {d.action}", d.approvers, d.timeout,
            d.scope, tuple(d.channels), d.wait, d.min_human_ms,
        )
    rule = policy.rules[best]
    name = policy.rule_name(best)
    reason = rule.reason or _describe(rule.action, name, facts)
    return Decision(
        rule.action, name, reason, rule.approvers, rule.timeout or d.timeout, rule.scope or d.scope,
        tuple(rule.channels or d.channels), d.wait if rule.wait is None else rule.wait, d.min_human_ms,
        tuple(policy.groups.get(rule.group, ())) if rule.group is not None else None, rule.quorum, rule.group,
    )


def _unresolvable(policy: Policy, index: int, value: str) -> Decision:
    name = policy.rule_name(index)
    shown = value if len(value) <= 200 else value[:200] + "..."
    reason = (
        f"policy rule '{name}' matches paths, and {shown!r} is relative while this server's roots are not known, "
        "so where it points cannot be checked; give an absolute path"
    )
    return Decision("deny", name, reason)


Test = Callable[[Facts], bool]

class _Compiled:
    """A policy's rules as predicates, strictest first, split into the part that depends only on
    which tool is called by whom (cached per server, tool, risk, user and hints) and the part
    that depends on the arguments (tested on every call)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        rules = sorted(
            (
                (i, STRICTNESS[r.action], *_predicates(policy, r.match, every=r.action == "allow"))
                for i, r in enumerate(policy.rules)
            ),
            key=lambda item: (-item[1], item[0]),
        )
        self.rules: tuple[tuple[int, Test, Test | None], ...] = tuple((i, static, dynamic) for i, _, static, dynamic in rules)
        self.overrides = tuple((_predicate(policy, o.match), o.risk) for o in policy.risk)
        # The hints any rule looks at, in a fixed order: part of the candidates' cache key.
        self.hints = tuple(sorted({h for r in policy.rules for h in (r.match.annotations or {})}))
        # The groups any rule matches on: the part of a caller's groups that is in the cache key.
        self.groups = frozenset(r.match.group for r in policy.rules if r.match.group is not None)
        self.groups |= frozenset(o.match.group for o in policy.risk if o.match.group is not None)
        self._candidates: dict[tuple[Any, ...], tuple[tuple[int, Test | None], ...]] = {}
        self.decisions: dict[tuple[Any, int | None], Decision] = {}

    def candidates(self, facts: Facts) -> tuple[tuple[Any, ...], tuple[tuple[int, Test | None], ...]]:
        hints = tuple(_annotation(facts.annotations, h) for h in self.hints) if self.hints else ()
        groups = facts.groups & self.groups if facts.groups else frozenset()
        key = (facts.server, facts.tool, facts.risk, facts.user, hints, groups)
        found = self._candidates.get(key)
        if found is None:
            found = tuple((index, dynamic) for index, static, dynamic in self.rules if static(facts))
            if len(self._candidates) >= 4096:
                self._candidates.clear()
                self.decisions.clear()
            self._candidates[key] = found
        return key, found


_CACHE: dict[int, _Compiled] = {}


def _compile(policy: Policy) -> _Compiled:
    """Compiled once per policy object (policies are frozen)."""
    found = _CACHE.get(id(policy))
    if found is not None and found.policy is policy:
        return found
    compiled = _Compiled(policy)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[id(policy)] = compiled
    return compiled


def _glob(pattern: str) -> Callable[[str], object] | None:
    return None if pattern == "*" else re.compile(fnmatch.translate(pattern)).match


def _predicate(policy: Policy, match: Match) -> Test:
    static, dynamic = _predicates(policy, match)
    if dynamic is None:
        return static
    return lambda facts: static(facts) and dynamic(facts)


def _predicates(policy: Policy, match: Match, every: bool = False) -> tuple[Test, Test | None]:
    """The match as two predicates: on who calls which tool, and on the call's content.

    ``every``: the rule loosens (allow), so each value an argument path selects must match its
    pattern; a stricter rule matches when any one does. List-valued arguments count element by
    element, so ``paths: [a, /etc/hosts]`` cannot hide a path behind a harmless one."""
    server, tool = _glob(match.server), _glob(match.tool)
    risks = None if match.risk is None else frozenset(r for r in RISKS if risk_matches(match.risk, r))
    user = None if match.user is None else _glob(match.user)
    members = None if match.group is None else frozenset(policy.groups.get(match.group, ()))
    labels = None if match.labels is None else frozenset(match.labels)
    hints = match.annotations
    args = None if match.args is None else [(_getter(path), _value_test(p)) for path, p in match.args.items()]
    # An allow on paths must hold for every path the call carries, not only the one it names.
    confine = _confinement(match) if every else None

    def static(facts: Facts) -> bool:
        if server is not None and not server(facts.server):
            return False
        if tool is not None and not tool(facts.tool):
            return False
        if risks is not None and (facts.risk if facts.risk in RISKS else "medium") not in risks:
            return False
        if user is not None and (match.user != "*" and not user(facts.user)):
            return False
        if members is not None and facts.user not in members and match.group not in facts.groups:
            return False
        if hints is not None and any(_annotation(facts.annotations, h) is not w for h, w in hints.items()):
            return False
        return True

    if labels is None and args is None:
        return static, None

    def dynamic(facts: Facts) -> bool:
        if labels is not None and not labels.intersection(facts.labels):
            return False
        if args is not None:
            for get, test in args:
                values = list(_leaves(get(facts.arguments)))
                if not values:
                    return False
                found = (test(value, facts.roots, every, facts.host) for value in values)
                if not (all(found) if every else any(found)):
                    return False
        return confine is None or confine(facts)

    return static, dynamic


def _confinement(match: Match) -> Test | None:
    """For an allow rule with path patterns: every path-like argument, under any key, must match one.

    A tool reads the keys its schema declares, not the one a rule names: ``read_multiple_files``
    with ``paths: [/etc/hosts]`` and a decoy ``path`` under the allowed folder must not pass."""
    tests = [path_test(p) for p in (match.args or {}).values() if is_path_pattern(p)]
    if not tests:
        return None

    def confine(facts: Facts) -> bool:
        return all(
            any(test(value, facts.roots, True, facts.host) for test in tests)
            for value in path_like_values(facts.arguments)
        )

    return confine


# Argument names that hold a path whatever the value looks like (a relative one included).
PATH_KEYS = frozenset({
    "path", "paths", "source", "sources", "destination", "dest", "src", "dst", "target", "file", "files",
    "filename", "filepath", "file_path", "dir", "directory", "folder", "root", "cwd", "uri", "location",
})


# Argument names whose values are text, not places (file contents, edits, search globs): a line
# like "/usr/local/bin" in an edit is not taken for a path by its look alone.
TEXT_KEYS = frozenset({
    "content", "contents", "text", "oldtext", "newtext", "old_text", "new_text", "pattern", "patterns",
    "excludepatterns", "query", "message", "body", "description",
})


def path_like_values(arguments: Any, key: str = "") -> Iterable[str]:
    """String values that name a path: under a path-named key, or (outside text keys) one line
    that starts like an absolute path or a file URI, at any depth."""
    stack: list[tuple[str, Any]] = [(key, arguments)]
    while stack:
        name, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((name, v) for v in value)
        elif isinstance(value, str) and (
            name.lower() in PATH_KEYS or (name.lower() not in TEXT_KEYS and _looks_like_path(value))
        ):
            yield value


def _looks_like_path(value: str) -> bool:
    return ("\n" not in value and value.lstrip().startswith(("/", "~/", "file:"))) or value.strip() == "~"


ValueTest = Callable[[Any, "tuple[str, ...] | None", bool, "Host | None"], bool]


def _value_test(pattern: str) -> ValueTest:
    """A path pattern normalizes the value first (policy/paths.py); any other is a glob on its text."""
    if is_path_pattern(pattern):
        return path_test(pattern)
    glob = re.compile(fnmatch.translate(pattern)).match
    return lambda value, roots, every, host=None: glob(value if isinstance(value, str) else _text(value)) is not None


def _leaves(values: Iterable[Any]) -> Iterable[Any]:
    """The selected values, with lists opened up to their elements (at any depth)."""
    stack = list(values)[::-1]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value[::-1])
        else:
            yield value


def _getter(path: str) -> Callable[[Any], list[Any]]:
    """``select`` for one path, with a shortcut for the common ``$.name``."""
    steps = compile_path(path)
    if len(steps) == 1 and steps[0][0] == "key" and steps[0][1] != "*":
        name = steps[0][1]
        return lambda data: [data[name]] if isinstance(data, dict) and name in data else []
    return lambda data: select(path, data)


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


def unconditional(policy: Policy, rule_name: str, for_caller: bool = False) -> bool:
    """Whether the rule of that name holds whatever the arguments and the user (so a deny by it
    can leave the tool out of tools/list). ``for_caller``: it was decided for the one caller the
    listing goes to, so a rule on who calls holds for all of that caller's calls too."""
    for index, rule in enumerate(policy.rules):
        if policy.rule_name(index) == rule_name:
            m = rule.match
            who = for_caller or (m.user is None and m.group is None)
            return m.args is None and m.labels is None and who
    return rule_name == "defaults"

"""The policy schema. Strict: an unknown field is an error, never a silent no-op.

::

    version: 1
    defaults: {risk: medium, action: allow, timeout: 120, scope: once}
    groups: {admins: [alice, bob]}
    risk:                                  # overrides, before the tool author's own tag
      - match: {server: files, tool: "read_*"}
        risk: low
    rules:
      - name: writes-need-approval
        match: {server: "*", tool: "write_*", risk: high, user: "*", group: admins,
                args: {"$.path": "/etc/*"}, labels: [SECRET], annotations: {openWorldHint: true}}
                                           # args: JSONPath -> glob; a glob starting with / or ~/, or
                                           # written path:<glob>, is a path pattern (policy/paths.py)
        action: approve                    # allow | mask | deny | approve  (mask: raw values the
                                           # model wrote into the arguments become placeholders)
        approvers: user                    # user (elicitation) | reviewers (queue)
        timeout: 120                       # seconds to wait for a decision
        scope: once                        # once | session | ttl:10m  (the widest a grant may be)
        reason: Writing files changes your machine.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from .jsonpath import compile_path

# The classes below are plain frozen dataclasses: the guard's start builds them from a policy
# it validated before (policy/load.py keeps that result) without importing pydantic, whose
# import and class building were a third of the start. pydantic validates them when a policy
# is new: each class's ``__pydantic_config__`` and each field's ``Check`` are what it reads
# (annotations are strings here, which pydantic evaluates in this module).

RISKS = ("low", "medium", "high", "critical")
Risk = Literal["low", "medium", "high", "critical"]
Action = Literal["allow", "mask", "deny", "approve"]
# deny beats approve beats mask beats allow when several rules match.
STRICTNESS = {"allow": 0, "mask": 1, "approve": 2, "deny": 3}
LABEL_NAMES = ("EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "PERSON", "LOCATION", "URL", "DATE", "SECRET")
OPERATORS = ("placeholder", "keep", "replace", "redact", "mask", "hash", "encrypt")
Operator = Literal["placeholder", "keep", "replace", "redact", "mask", "hash", "encrypt"]
Channel = Literal["elicitation", "page", "notify", "cli"]
CHANNELS: tuple[Channel, ...] = ("elicitation", "page", "notify", "cli")

# The behaviour hints of MCP's ToolAnnotations a rule may match.
HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
_SCOPE = re.compile(r"^(once|session|ttl:0*[1-9]\d*[smhd])$")  # (ttl:0s would be a grant that never holds)
_RISK_MATCH = re.compile(r"^(>=|<=|>|<)?(low|medium|high|critical)$")


class Check:
    """A field's own rule, run once pydantic has validated the field's type; its ValueError is
    reported at that field (``rules[0].scope: Value error, ...``). Read by pydantic only."""

    __slots__ = ("fn",)

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.fn, handler(source))


def _over(limit: float, inclusive: bool = False) -> Check:
    def check(value: Any) -> Any:
        if value is None:
            return value
        if not math.isfinite(value):  # .inf would wait forever, .nan compares as nothing
            raise ValueError(f"must be a finite number, got {value!r}")
        if value < limit or (value == limit and not inclusive):
            raise ValueError(f"must be {'at least' if inclusive else 'more than'} {limit:g}, got {value!r}")
        return value

    return Check(check)


_POSITIVE = _over(0)
_NOT_NEGATIVE = _over(0, inclusive=True)


def _risk(value: str | list[str] | None) -> str | list[str] | None:
    for item in [value] if isinstance(value, str) else value or []:
        if not _RISK_MATCH.match(item):
            raise ValueError(f"expected low, medium, high or critical (optionally with >=, >, <=, <), got {item!r}")
    return value


def _named(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("an empty name matches nothing; leave the field out to match any")
    return value


def _hints(value: dict[str, bool] | None) -> dict[str, bool] | None:
    for hint in value or {}:
        if hint not in HINTS:
            near = next((h for h in HINTS if h.lower() == hint.lower()), None)
            said = f"did you mean {near}?" if near else "MCP tools declare " + ", ".join(HINTS)
            raise ValueError(f"unknown tool annotation {hint!r}: {said}")
    return value


def _paths(value: dict[str, str] | None) -> dict[str, str] | None:
    for path, pattern in (value or {}).items():
        if not path.startswith("$"):
            raise ValueError(f"argument paths are JSONPath and start with '$', got {path!r}")
        steps = compile_path(path)  # a path no call could be checked against is a typo, said now, not at call time
        if not steps:
            raise ValueError(f"{path!r} names the arguments object itself; name a value in it, e.g. $.path or $..url")
        if steps[0][0] == "index":
            raise ValueError(f"{path!r}: a tool's arguments are an object, never a list; start with a key, e.g. $.paths[0]")
        if pattern.startswith("path:") and not pattern[len("path:"):]:
            raise ValueError(f"{path}: 'path:' needs a glob after it, e.g. path:*/.ssh/*")
    return value


def _scope(value: str | None) -> str | None:
    if value is not None and not _SCOPE.match(value):
        raise ValueError(f"expected once, session or ttl:<number><s|m|h|d> (a number above 0), got {value!r}")
    return value


def _labels(value: dict[str, Any]) -> dict[str, Any]:
    for label, op in value.items():
        if label not in LABEL_NAMES:
            raise ValueError(f"unknown label {label!r}; labels are {', '.join(LABEL_NAMES)}")
        if isinstance(op, str) and op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r} for {label}; operators are {', '.join(OPERATORS)}")
    return value


_STRICT = {"extra": "forbid"}  # an unknown field is an error, never a silent no-op


@dataclass(frozen=True)
class Match:
    __pydantic_config__ = _STRICT

    server: Annotated[str, Check(_named)] = "*"
    tool: Annotated[str, Check(_named)] = "*"
    risk: Annotated[str | list[str] | None, Check(_risk)] = None
    user: Annotated[str | None, Check(_named)] = None
    group: Annotated[str | None, Check(_named)] = None
    labels: list[str] | None = None
    args: Annotated[dict[str, str] | None, Check(_paths)] = None
    # MCP tool annotations as the server declares them, e.g. {openWorldHint: true}.
    annotations: Annotated[dict[str, bool] | None, Check(_hints)] = None


@dataclass(frozen=True)
class Rule:
    __pydantic_config__ = _STRICT

    action: Action
    name: str | None = None
    match: Match = Match()
    approvers: Literal["user", "reviewers"] = "user"
    timeout: Annotated[float | None, _POSITIVE] = None
    scope: Annotated[str | None, Check(_scope)] = None
    reason: str | None = None
    # How the user may be asked, in order of preference (default: defaults.channels).
    channels: list[Channel] | None = None
    # How long a call waits for an out-of-band decision before it returns "call again once approved".
    wait: Annotated[float | None, _NOT_NEGATIVE] = None
    # approvers: reviewers — who may decide (a name in `groups`; none: anyone but the requester),
    # and how many distinct reviewers must approve.
    group: str | None = None
    quorum: Annotated[int, _over(1, inclusive=True)] = 1


@dataclass(frozen=True)
class RiskOverride:
    __pydantic_config__ = _STRICT

    match: Match
    risk: Risk


@dataclass(frozen=True)
class Defaults:
    __pydantic_config__ = _STRICT

    risk: Risk = "medium"
    action: Action = "allow"
    timeout: Annotated[float, _POSITIVE] = 120.0
    scope: Annotated[str, Check(_scope)] = "once"
    approvers: Literal["user", "reviewers"] = "user"
    channels: list[Channel] = field(default_factory=lambda: list(CHANNELS))
    # Clients time out at 60 s by default (TypeScript SDK): answer before that, with a link.
    wait: Annotated[float, _NOT_NEGATIVE] = 50.0
    # A decline faster than this was not made by a person (clients that auto-decline).
    min_human_ms: Annotated[float, _NOT_NEGATIVE] = 300.0


@dataclass(frozen=True)
class LabelOperator:
    __pydantic_config__ = _STRICT

    operator: Operator
    # presidio-anonymizer's parameters for the operator (new_value, masking_char, chars_to_mask, key, ...).
    params: dict[str, str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerMasking:
    __pydantic_config__ = _STRICT

    enabled: bool = True
    labels: Annotated[dict[str, str | LabelOperator], Check(_labels)] = field(default_factory=dict)


@dataclass(frozen=True)
class Flow:
    """Values that came from ``source`` may be put back toward ``target`` (for these labels)."""

    # Written `from:` and `to:` in the policy (Python names cannot be those words).
    __pydantic_config__ = {**_STRICT, "alias_generator": lambda name: {"source": "from", "target": "to"}.get(name, name)}

    source: str
    target: str
    labels: list[str] | None = None


@dataclass(frozen=True)
class Masking:
    __pydantic_config__ = _STRICT

    enabled: bool = True
    # Operators per label; labels not named keep the defaults (secrets and direct identifiers
    # become placeholders; URL, IP_ADDRESS and DATE stay readable).
    labels: Annotated[dict[str, str | LabelOperator], Check(_labels)] = field(default_factory=dict)
    servers: dict[str, ServerMasking] = field(default_factory=dict)
    flows: list[Flow] = field(default_factory=list)
    # A result larger than this many tokens (cl100k) is cut, with a notice saying how much.
    max_result_tokens: Annotated[int | None, _POSITIVE] = None
    # PERSON and LOCATION through a spaCy model (pip install 'mcp-guard[ner]'): auto (the largest
    # installed English model, none if none), off, or a model package name or folder.
    ner: str = "auto"


@dataclass(frozen=True)
class Integrity:
    __pydantic_config__ = _STRICT

    # A tool seen for the first time: run it (allow), or hold it until `mcp-guard tools accept`.
    new_tools: Literal["allow", "hold"] = "allow"
    # A pinned tool whose definition changed (a rug pull): held until accepted, or only recorded.
    changed: Literal["block", "allow"] = "block"
    # Instructions to the model found in descriptions: raise the tool to high risk, hold it, or note it.
    findings: Literal["raise", "block", "allow"] = "raise"
    # Also scan what resources/read returns (costs a scan per read): note findings, or withhold.
    resources: Literal["off", "scan", "block"] = "off"


@dataclass(frozen=True)
class Policy:
    __pydantic_config__ = _STRICT

    version: Literal[1]
    defaults: Defaults = Defaults()
    masking: Masking = Masking()
    integrity: Integrity = Integrity()
    groups: dict[str, list[str]] = field(default_factory=dict)
    risk: list[RiskOverride] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    def rule_name(self, index: int) -> str:
        rule = self.rules[index]
        return rule.name or f"rules[{index}]"


# Every class of the schema, by name: what a kept, validated policy is rebuilt from (load.py).
CLASSES = {cls.__name__: cls for cls in (Match, Rule, RiskOverride, Defaults, LabelOperator, ServerMasking, Flow, Masking, Integrity, Policy)}

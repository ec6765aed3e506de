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

import re
import sys
import types
from typing import Literal

# Before its first model, pydantic looks for plugins in the entry points of every installed
# distribution, importing importlib.metadata to do so (30-50 ms of the guard's start). A plugin
# would see, and could change, how the guard's own security policy is validated; none is wanted.
# So the guard's process has no pydantic plugins: the loader is a stub that finds none (left as
# is when something already loaded the real one).
_no_plugins = types.ModuleType("pydantic.plugin._loader")
_no_plugins.get_plugins = lambda: ()  # type: ignore[attr-defined]
sys.modules.setdefault("pydantic.plugin._loader", _no_plugins)

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .jsonpath import compile_path

RISKS = ("low", "medium", "high", "critical")
Risk = Literal["low", "medium", "high", "critical"]
Action = Literal["allow", "mask", "deny", "approve"]
# deny beats approve beats mask beats allow when several rules match.
STRICTNESS = {"allow": 0, "mask": 1, "approve": 2, "deny": 3}
LABEL_NAMES = ("EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "PERSON", "LOCATION", "URL", "DATE", "SECRET")
OPERATORS = ("placeholder", "keep", "replace", "redact", "mask", "hash", "encrypt")

# The behaviour hints of MCP's ToolAnnotations a rule may match.
HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
_SCOPE = re.compile(r"^(once|session|ttl:\d+[smhd])$")
_RISK_MATCH = re.compile(r"^(>=|<=|>|<)?(low|medium|high|critical)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    server: str = "*"
    tool: str = "*"
    risk: str | list[str] | None = None
    user: str | None = None
    group: str | None = None
    labels: list[str] | None = None
    args: dict[str, str] | None = None
    # MCP tool annotations as the server declares them, e.g. {openWorldHint: true}.
    annotations: dict[str, bool] | None = None

    @field_validator("risk")
    @classmethod
    def _risk(cls, value: str | list[str] | None) -> str | list[str] | None:
        for item in [value] if isinstance(value, str) else value or []:
            if not _RISK_MATCH.match(item):
                raise ValueError(f"expected low, medium, high or critical (optionally with >=, >, <=, <), got {item!r}")
        return value

    @field_validator("server", "tool", "user", "group")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an empty name matches nothing; leave the field out to match any")
        return value

    @field_validator("annotations")
    @classmethod
    def _hints(cls, value: dict[str, bool] | None) -> dict[str, bool] | None:
        for hint in value or {}:
            if hint not in HINTS:
                near = next((h for h in HINTS if h.lower() == hint.lower()), None)
                said = f"did you mean {near}?" if near else "MCP tools declare " + ", ".join(HINTS)
                raise ValueError(f"unknown tool annotation {hint!r}: {said}")
        return value

    @field_validator("args")
    @classmethod
    def _paths(cls, value: dict[str, str] | None) -> dict[str, str] | None:
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


def _scope(value: str) -> str:
    if not _SCOPE.match(value):
        raise ValueError(f"expected once, session or ttl:<number><s|m|h|d>, got {value!r}")
    return value


Channel = Literal["elicitation", "page", "notify", "cli"]


class Rule(_Strict):
    name: str | None = None
    match: Match = Match()
    action: Action
    approvers: Literal["user", "reviewers"] = "user"
    timeout: float | None = Field(default=None, gt=0)
    scope: str | None = None
    reason: str | None = None
    # How the user may be asked, in order of preference (default: defaults.channels).
    channels: list[Channel] | None = None
    # How long a call waits for an out-of-band decision before it returns "call again once approved".
    wait: float | None = Field(default=None, ge=0)
    # approvers: reviewers — who may decide (a name in `groups`; none: anyone but the requester),
    # and how many distinct reviewers must approve.
    group: str | None = None
    quorum: int = Field(default=1, ge=1)

    _check_scope = field_validator("scope")(lambda cls, v: None if v is None else _scope(v))


class RiskOverride(_Strict):
    match: Match
    risk: Risk


class Defaults(_Strict):
    risk: Risk = "medium"
    action: Action = "allow"
    timeout: float = Field(default=120.0, gt=0)
    scope: str = "once"
    approvers: Literal["user", "reviewers"] = "user"
    channels: list[Channel] = ["elicitation", "page", "notify", "cli"]
    # Clients time out at 60 s by default (TypeScript SDK): answer before that, with a link.
    wait: float = Field(default=50.0, ge=0)
    # A decline faster than this was not made by a person (clients that auto-decline).
    min_human_ms: float = Field(default=300.0, ge=0)

    _check_scope = field_validator("scope")(lambda cls, v: _scope(v))


class LabelOperator(_Strict):
    operator: Literal["placeholder", "keep", "replace", "redact", "mask", "hash", "encrypt"]
    # presidio-anonymizer's parameters for the operator (new_value, masking_char, chars_to_mask, key, ...).
    params: dict[str, str | int | bool] = {}


def _check_labels(value: dict[str, str | LabelOperator]) -> dict[str, str | LabelOperator]:
    for label, op in value.items():
        if label not in LABEL_NAMES:
            raise ValueError(f"unknown label {label!r}; labels are {', '.join(LABEL_NAMES)}")
        if isinstance(op, str) and op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r} for {label}; operators are {', '.join(OPERATORS)}")
    return value


class ServerMasking(_Strict):
    enabled: bool = True
    labels: dict[str, str | LabelOperator] = {}

    _labels = field_validator("labels")(lambda cls, v: _check_labels(v))


class Flow(_Strict):
    """Values that came from ``source`` may be put back toward ``target`` (for these labels)."""

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    labels: list[str] | None = None


class Masking(_Strict):
    enabled: bool = True
    # Operators per label; labels not named keep the defaults (secrets and direct identifiers
    # become placeholders; URL, IP_ADDRESS and DATE stay readable).
    labels: dict[str, str | LabelOperator] = {}
    servers: dict[str, ServerMasking] = {}
    flows: list[Flow] = []
    # A result larger than this many tokens (cl100k) is cut, with a notice saying how much.
    max_result_tokens: int | None = Field(default=None, gt=0)
    # PERSON and LOCATION through a spaCy model (pip install 'mcp-guard[ner]'): auto (the largest
    # installed English model, none if none), off, or a model package name or folder.
    ner: str = "auto"

    _labels = field_validator("labels")(lambda cls, v: _check_labels(v))


class Integrity(_Strict):
    # A tool seen for the first time: run it (allow), or hold it until `mcp-guard tools accept`.
    new_tools: Literal["allow", "hold"] = "allow"
    # A pinned tool whose definition changed (a rug pull): held until accepted, or only recorded.
    changed: Literal["block", "allow"] = "block"
    # Instructions to the model found in descriptions: raise the tool to high risk, hold it, or note it.
    findings: Literal["raise", "block", "allow"] = "raise"
    # Also scan what resources/read returns (costs a scan per read): note findings, or withhold.
    resources: Literal["off", "scan", "block"] = "off"


class Policy(_Strict):
    version: Literal[1]
    defaults: Defaults = Defaults()
    masking: Masking = Masking()
    integrity: Integrity = Integrity()
    groups: dict[str, list[str]] = {}
    risk: list[RiskOverride] = []
    rules: list[Rule] = []

    def rule_name(self, index: int) -> str:
        rule = self.rules[index]
        return rule.name or f"rules[{index}]"

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
        action: approve                    # allow | deny | approve
        approvers: user                    # user (elicitation) | reviewers (queue)
        timeout: 120                       # seconds to wait for a decision
        scope: once                        # once | session | ttl:10m  (the widest a grant may be)
        reason: Writing files changes your machine.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RISKS = ("low", "medium", "high", "critical")
Risk = Literal["low", "medium", "high", "critical"]
Action = Literal["allow", "deny", "approve"]
# deny beats approve beats allow when several rules match.
STRICTNESS = {"allow": 0, "approve": 1, "deny": 2}

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

    @field_validator("args")
    @classmethod
    def _paths(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for path in value or {}:
            if not path.startswith("$"):
                raise ValueError(f"argument paths are JSONPath and start with '$', got {path!r}")
        return value


def _scope(value: str) -> str:
    if not _SCOPE.match(value):
        raise ValueError(f"expected once, session or ttl:<number><s|m|h|d>, got {value!r}")
    return value


class Rule(_Strict):
    name: str | None = None
    match: Match = Match()
    action: Action
    approvers: Literal["user", "reviewers"] = "user"
    timeout: float | None = Field(default=None, gt=0)
    scope: str | None = None
    reason: str | None = None

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

    _check_scope = field_validator("scope")(lambda cls, v: _scope(v))


class Policy(_Strict):
    version: Literal[1]
    defaults: Defaults = Defaults()
    groups: dict[str, list[str]] = {}
    risk: list[RiskOverride] = []
    rules: list[Rule] = []

    def rule_name(self, index: int) -> str:
        rule = self.rules[index]
        return rule.name or f"rules[{index}]"

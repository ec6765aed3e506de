"""A tool's risk: policy override > the author's tag in ``_meta`` > MCP annotations > default.

Tool authors tag risk in the tool definition, in any language::

    {"name": "drop_table", "_meta": {"mcp-guard/risk": "critical", "mcp-guard/reason": "deletes data"}}

Annotations are read with the spec's defaults for missing hints (readOnlyHint false,
destructiveHint true, openWorldHint true): read-only is low, destructive is high, otherwise
medium, and an open world raises one level. Annotations alone never reach critical: that
takes an explicit tag or policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .policy.engine import first_override
from .policy.model import RISKS, Policy

RISK_KEY = "mcp-guard/risk"
REASON_KEY = "mcp-guard/reason"
SOURCE_KEY = "mcp-guard/risk-source"

__all__ = ["RISK_KEY", "REASON_KEY", "ResolvedRisk", "resolve_risk", "risk_meta", "tag"]


@dataclass(frozen=True)
class ResolvedRisk:
    level: str
    source: str  # policy | author | annotations | default
    reason: str | None = None


def resolve_risk(policy: Policy, server: str, tool: dict[str, Any] | None, name: str) -> ResolvedRisk:
    override = first_override(policy, server, name)
    if override is not None:
        return ResolvedRisk(override, "policy")
    tool = tool or {}
    meta = tool.get("_meta") if isinstance(tool.get("_meta"), dict) else {}
    tagged = meta.get(RISK_KEY)
    if isinstance(tagged, str) and tagged in RISKS:
        reason = meta.get(REASON_KEY)
        return ResolvedRisk(tagged, "author", reason if isinstance(reason, str) else None)
    annotations = tool.get("annotations")
    if isinstance(annotations, dict):
        return ResolvedRisk(_from_annotations(annotations), "annotations")
    return ResolvedRisk(policy.defaults.risk, "default")


def _from_annotations(annotations: dict[str, Any]) -> str:
    if annotations.get("readOnlyHint") is True:
        level = 0
    elif annotations.get("destructiveHint", True) is not False:
        level = 2
    else:
        level = 1
    if annotations.get("openWorldHint", True) is not False:
        level += 1
    return RISKS[min(level, 2)]


def risk_meta(risk: str, reason: str | None = None) -> dict[str, str]:
    """The ``_meta`` entries that tag a tool's risk, e.g. for ``@server.tool(meta=risk_meta("high"))``."""
    if risk not in RISKS:
        raise ValueError(f"risk must be one of {', '.join(RISKS)}, got {risk!r}")
    return {RISK_KEY: risk, **({REASON_KEY: reason} if reason else {})}


def tag(tool: Any, risk: str, reason: str | None = None) -> Any:
    """Tag a tool definition with a risk level, for Python servers.

    Works on a ``mcp_types.Tool`` (returns an updated copy) or a plain dict (updated in place)::

        from mcp_guard.risk import tag
        tool = tag(types.Tool(name="drop_table", input_schema={...}), "critical", "deletes data")
    """
    extra = risk_meta(risk, reason)
    if isinstance(tool, dict):
        tool["_meta"] = {**(tool.get("_meta") or {}), **extra}
        return tool
    meta = dict(getattr(tool, "meta", None) or {})
    meta.update(extra)
    return tool.model_copy(update={"meta": meta})

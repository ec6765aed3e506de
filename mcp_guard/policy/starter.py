"""A starting policy from the tools the configured servers list (``policy init``).

One rule per listed tool, suggested from its resolved risk (allow for low and medium, approve
for high and critical), under a catch-all that asks before anything high or critical, so a tool
added later, or raised by the description scan, is asked about rather than run.

The text is built from names and descriptions an upstream server chose, so nothing it sends may
shape the YAML: names are written as double-quoted scalars with glob characters escaped (a tool
named ``*`` must not become a rule on every tool), and descriptions only appear in comments
stripped of anything YAML reads as a line break, with any secret in them replaced by ``<SECRET>``
(the file is kept and shared like any config).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ..integrity import scan_definition
from ..masking.detect import detect
from ..risk import resolve_risk
from .model import RISKS, Policy

__all__ = ["SUGGESTED", "starter_policy", "suggest"]

# The rule suggested for each resolved risk.
SUGGESTED = {"low": "allow", "medium": "allow", "high": "approve", "critical": "approve"}
COMMENT_CHARS = 160

_HEADER = """\
# A starting policy for the servers in {config}, written by `mcp-guard policy init`.
# Each tool below has the risk the guard resolves for it today and a suggested rule; edit freely.
# Risk comes from, in order: this file's `risk:` overrides, the tool author's tag in `_meta`,
# the tool's MCP annotations, then defaults.risk. The strictest matching rule wins
# (deny > approve > mask > allow), so the catch-all below still asks before anything that
# becomes high or critical, whatever the per-tool rules say.
# Check it with: mcp-guard policy check --config {config} FILE
# See one tool's rules with: mcp-guard policy show --config {config} --server S --tool T --policy FILE
version: 1
defaults: {{risk: medium, action: allow, timeout: 120, scope: once}}
rules:
  # Tools added after this file was written, or raised to high by the description scan.
  - name: high-and-critical-need-approval
    match: {{risk: ">=high"}}
    action: approve
    approvers: user
"""


def suggest(risk: str) -> str:
    return SUGGESTED.get(risk, "approve")


def starter_policy(config: str, listed: Mapping[str, Sequence[dict[str, Any]] | str]) -> str:
    """The YAML text; ``listed`` maps each server to its tool definitions, or why they could not be listed."""
    base = Policy(version=1)
    out = [_HEADER.format(config=_comment(config))]
    for server, tools in listed.items():
        if isinstance(tools, str):
            out.append(f"  # Server {_comment(server)}: could not be listed ({_comment(tools)});\n"
                       "  # its tools get the catch-all above and the defaults. Run init again once it starts.\n")
            continue
        by_name = _by_name(tools)
        out.append(f"\n  # Server {_comment(server)}: {len(by_name)} tool(s).\n")
        others = {t["name"] for name, found in listed.items() if name != server and not isinstance(found, str)
                  for t in found}
        out.extend(_tool_rule(base, server, same, others) for same in by_name.values())
    return "".join(out)


def _by_name(tools: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Definitions grouped by name, in the order first listed: a name listed twice gets one rule."""
    found: dict[str, list[dict[str, Any]]] = {}
    for tool in tools:
        found.setdefault(tool["name"], []).append(tool)
    return found


def _assess(base: Policy, server: str, tool: dict[str, Any], others: set[str]) -> tuple[str, str]:
    """The tool's level and why, as the guard would resolve it (the description scan raises to high)."""
    risk = resolve_risk(base, server, tool, str(tool["name"]))
    kinds = sorted({f.kind for f in scan_definition(tool, others)})  # a description naming one of others shadows it
    if kinds and RISKS.index(risk.level) < RISKS.index("high"):
        why = f"raised from {risk.level}: its description carries instructions to the model ({', '.join(kinds)})"
        return "high", why
    return risk.level, _why(risk.source, risk.reason)


def _tool_rule(base: Policy, server: str, same: list[dict[str, Any]], others: set[str]) -> str:
    # A server listing one name twice may be hiding a risky definition behind a harmless one: the riskiest counts.
    assessed = [(_assess(base, server, tool, others), tool) for tool in same]
    (level, why), tool = max(assessed, key=lambda item: RISKS.index(item[0][0]))
    if len(same) > 1:
        why += f"; listed {len(same)} times, the riskiest definition counts"
    name = str(tool["name"])
    action = suggest(level)
    lines = [f"  # {_comment(name)}: {level} risk ({_comment(why)})"]
    description = _comment(str(tool.get("description") or ""))
    if description:
        lines.append(f"  #   {description}")
    lines.append(f"  - name: {_quote(f'{server}/{name}')}")
    lines.append(f"    match: {{server: {_quote(_literal_glob(server))}, tool: {_quote(_literal_glob(name))}}}")
    lines.append(f"    action: {action}")
    if action == "approve":
        lines.append("    approvers: user")
        lines.append("    scope: once" + ("  # critical: consider action: deny" if level == "critical" else ""))
    return "\n".join(lines) + "\n"


def _why(source: str, reason: str | None) -> str:
    text = {"author": "the author's tag", "annotations": "its annotations", "default": "untagged: the default",
            "policy": "a policy override"}.get(source, source)
    return f"{text}: {reason}" if reason else text


def _literal_glob(name: str) -> str:
    """The glob that matches exactly ``name``: fnmatch's ``*``, ``?`` and ``[`` each put in a class."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _quote(text: str) -> str:
    """A double-quoted YAML scalar: every character escaped that YAML would read as structure."""
    clean = "".join(c if not 0xD800 <= ord(c) <= 0xDFFF else "\ufffd" for c in text)
    return yaml.safe_dump(clean, default_style='"', width=float("inf"), allow_unicode=False).strip()


def _comment(text: str) -> str:
    """One line fit for a YAML comment: no control or line-separator characters, at most COMMENT_CHARS long."""
    flat = _without_secrets(text)
    flat = "".join(" " if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") else c
                   for c in flat)
    flat = " ".join(flat.split())
    return flat if len(flat) <= COMMENT_CHARS else flat[: COMMENT_CHARS - 3] + "..."


def _without_secrets(text: str) -> str:
    for span in reversed(detect(text, frozenset({"SECRET"}))):
        text = text[: span.start] + "<SECRET>" + text[span.end :]
    return text

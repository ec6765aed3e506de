"""Rules that can never match, given the servers a config names and the tools they list.

A rule can be valid and still dead: its ``server`` names no configured server, or its ``tool``
names nothing those servers list. The commonest case is a namespaced name (``files__write_file``):
with several servers the client sees tools as ``server__tool``, but rules match the server's own
name (``server: files, tool: write_file``). A dead deny is a hole nobody sees, so
``policy check --config`` reports each one. Pure: the listing is done by the caller.

Two more kinds are found: a ``risk`` condition no level meets (``>critical``, ``<low``), which
needs no config; and a rule on an argument that no tool it matches declares in its
``inputSchema`` (a deny on ``$.path`` for ``move_file``, which reads ``source`` and
``destination``): the server never reads that argument, so the rule never stops what it does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .jsonpath import compile_path
from .model import RISKS, Match, Policy

__all__ = ["dead_matches", "impossible_risks", "unread_arguments"]

SEPARATOR = "__"


def dead_matches(policy: Policy, servers: Mapping[str, Sequence[str] | None]) -> list[str]:
    """One sentence per rule or risk override that can never match.

    ``servers`` maps each configured server to the tool names it lists, or None when it could not
    be listed (its tools are then not judged: the caller reports why it could not list them)."""
    problems = []
    for where, match in _matches(policy):
        problem = _dead(match, servers)
        if problem is not None:
            problems.append(f"{where}: {problem}")
    return problems


def impossible_risks(policy: Policy) -> list[str]:
    """One sentence per rule or override whose ``risk`` condition no level meets."""
    return [f"{where}: {problem}" for where, match in _matches(policy) if (problem := _no_risk(match)) is not None]


def _no_risk(match: Match) -> str | None:
    from .engine import risk_matches

    if match.risk is None or any(risk_matches(match.risk, level) for level in RISKS):
        return None
    return f"risk {match.risk!r} is met by no level ({', '.join(RISKS)}), so it never matches"


def unread_arguments(policy: Policy, servers: Mapping[str, Sequence[Mapping[str, Any]] | None]) -> list[str]:
    """One sentence per rule on an argument that none of the tools it matches declares.

    ``servers`` maps each server to its tool definitions (None: not listed, no verdict). A tool
    without ``inputSchema.properties`` may take anything, so it keeps the rule alive."""
    problems = []
    for where, match in _matches(policy):
        for name in _argument_names(match):
            tools = _matched_tools(match, servers)
            if tools is None or not tools or any(_may_take(tool, name) for tool in tools):
                continue
            shown = ", ".join(f"{server}/{tool.get('name')}" for server, tool in _pairs(match, servers))
            problems.append(
                f"{where}: argument {name!r} is not in the inputSchema of {shown}, so the server never reads it "
                "and the rule never matches what the tool does"
            )
    return problems


def _argument_names(match: Match) -> list[str]:
    """The top-level argument each ``args`` path starts with (``$.path`` -> ``path``; ``$.*`` names none)."""
    names = []
    for path in match.args or {}:
        steps = compile_path(path)
        if steps and steps[0][0] == "key" and steps[0][1] != "*":
            names.append(str(steps[0][1]))
    return names


def _pairs(match: Match, servers: Mapping[str, Sequence[Mapping[str, Any]] | None]) -> list[tuple[str, Any]]:
    server_glob, tool_glob = _glob(match.server), _glob(match.tool)
    return [
        (server, tool)
        for server, tools in servers.items()
        if server_glob.fullmatch(server)
        for tool in tools or ()
        if tool_glob.fullmatch(str(tool.get("name")))
    ]


def _matched_tools(match: Match, servers: Mapping[str, Sequence[Mapping[str, Any]] | None]) -> list[Any] | None:
    server_glob = _glob(match.server)
    if any(tools is None for name, tools in servers.items() if server_glob.fullmatch(name)):
        return None  # a server the rule may match could not be listed: no verdict
    return [tool for _, tool in _pairs(match, servers)]


def _may_take(tool: Mapping[str, Any], name: str) -> bool:
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return not isinstance(properties, dict) or name in properties


def _matches(policy: Policy) -> Iterator[tuple[str, Match]]:
    for index, rule in enumerate(policy.rules):
        name = policy.rule_name(index)
        yield (f"rules[{index}]" if name == f"rules[{index}]" else f"rules[{index}] ({name!r})"), rule.match
    for index, override in enumerate(policy.risk):
        yield f"risk[{index}]", override.match


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _dead(match: Match, servers: Mapping[str, Sequence[str] | None]) -> str | None:
    no_risk = _no_risk(match)
    if no_risk is not None:
        return no_risk
    server_glob = _glob(match.server)
    chosen = [name for name in servers if server_glob.fullmatch(name)]
    if not chosen:
        known = ", ".join(sorted(servers)) or "none"
        return f"server {match.server!r} matches no configured server (configured: {known}), so it never matches"
    if match.tool == "*":
        return None
    listed = [servers[name] for name in chosen]
    if any(tools is None for tools in listed):
        return None  # not every server could be listed: no verdict on the tool
    tool_glob = _glob(match.tool)
    if any(tool_glob.fullmatch(tool) for tools in listed for tool in tools or ()):
        return None
    where = match.server if match.server != "*" else "any configured server"
    problem = f"tool {match.tool!r} is not listed by {where}, so it never matches"
    prefix, sep, rest = match.tool.partition(SEPARATOR)
    if sep and rest and prefix in servers:
        problem += (
            f"; rules see the server's own tool names, not the namespaced ones the client sees: "
            f"write server: {prefix}, tool: {rest}"
        )
    return problem

"""Rules that can never match, given the servers a config names and the tools they list.

A rule can be valid and still dead: its ``server`` names no configured server, or its ``tool``
names nothing those servers list. The commonest case is a namespaced name (``files__write_file``):
with several servers the client sees tools as ``server__tool``, but rules match the server's own
name (``server: files, tool: write_file``). A dead deny is a hole nobody sees, so
``policy check --config`` reports each one. Pure: the listing is done by the caller.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence

from .model import Match, Policy

__all__ = ["dead_matches"]

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


def _matches(policy: Policy) -> Iterator[tuple[str, Match]]:
    for index, rule in enumerate(policy.rules):
        name = policy.rule_name(index)
        yield (f"rules[{index}]" if name == f"rules[{index}]" else f"rules[{index}] ({name!r})"), rule.match
    for index, override in enumerate(policy.risk):
        yield f"risk[{index}]", override.match


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _dead(match: Match, servers: Mapping[str, Sequence[str] | None]) -> str | None:
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

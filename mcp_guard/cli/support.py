"""What the command-line front ends share: names, paths, and opening the home's stores."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
from typing import Any

from .. import settings
from ..errors import ConfigError

logger = logging.getLogger("mcp_guard")

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def requester_name(args: argparse.Namespace) -> str:
    """Who asks: --user, $MCP_GUARD_USER, or the OS user, under the rules for reviewer names.

    A name with escape codes or invisible characters (``bob\x1b[0m``) would be shown as one
    person and compared as another, so a requester could decide their own call: it is refused."""
    from ..reviewers import valid_name

    if args.user:
        name, where = str(args.user), "--user"
    elif settings.current().user:
        name, where = settings.current().user, "MCP_GUARD_USER"
    else:
        try:
            name, where = getpass.getuser(), "the OS user name"
        except (KeyError, OSError):
            return "unknown"
    try:
        return valid_name(name, "user name")
    except ValueError as exc:
        raise ConfigError(f"{where} {ascii(name)} cannot name a requester: {exc}") from None


def one_line(text: str) -> str:
    """approval.escape.one_line, imported when first used: building the parser, which every command
    does, then does not load unicodedata."""
    from ..approval.escape import one_line as escaped

    return escaped(text)


def secret_file(path: str, option: str) -> str:
    """The secret in the file ``option`` names (surrounding whitespace stripped); ConfigError when
    it cannot be read or is empty. Messages name the option and the path, never the content."""
    from pathlib import Path

    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable as UTF-8 text"
        raise ConfigError(f"{option} {path}: {reason}") from exc
    if not secret:
        raise ConfigError(f"{option} {path}: the file is empty")
    return secret


def policy_path(explicit: str | None, from_config: str | None = None) -> str:
    if explicit:
        return explicit
    if settings.current().policy:
        return settings.current().policy
    if from_config:
        return from_config
    from .. import policies  # beside its package file (importlib.resources costs ~10 ms of start)

    return os.path.join(os.path.dirname(policies.__file__), "default.yaml")


def open_audit(writer: bool = False):  # type: ignore[no-untyped-def]
    from ..audit import Audit
    from ..store import StoreError, open_store

    try:
        # A reader never makes the seal key: a missing one is reported, not replaced. A writer
        # makes one only for an empty chain (the audit refuses to replace a lost key).
        return Audit(open_store(), create_key=writer)
    except StoreError as exc:
        # Fail closed: a guard that cannot keep its record does not run calls.
        raise ConfigError(f"{exc}. Fix MCP_GUARD_HOME, or run with --no-policy to relay without checks.") from exc


def open_grants():  # type: ignore[no-untyped-def]
    from ..grants import Grants
    from ..store import StoreError, open_store

    try:
        return Grants(open_store())
    except StoreError as exc:
        # Approvals still work, one call at a time: nothing wider can be remembered.
        logger.error("%s; approvals will not be remembered beyond one call", exc)
        return None


_GENERIC = {"index", "main", "__main__", "server", "dist", "build", "lib", "src", "bin", "app", "cli"}


_RUNNERS = {"node", "npx", "python", "python3", "uv", "uvx", "pipx", "bun", "bunx", "deno", "docker", "env", "sh", "bash"}


def default_name(command: list[str]) -> str:
    """A stable server name from its command line, so that policies, pins and audit records of
    different servers do not share one: `npx -y @mcp/server-files` -> server-files."""
    import re
    from pathlib import PurePath

    for word in command:
        if word.startswith("-") or "=" in word and not word.startswith("/"):
            continue
        path = PurePath(word)
        parts = [re.sub(r"\.(?:py|js|mjs|cjs|ts|exe)$", "", p) for p in path.parts]
        meaningful = [p for p in parts if p and p not in _GENERIC and p != "/" and not p.startswith("@")]
        if not meaningful:
            continue
        candidate = meaningful[-1]
        if path.name in ("index.js", "main.py", "__main__.py", "index.mjs") and len(meaningful) >= 1:
            candidate = meaningful[-1]
        if candidate in _RUNNERS:
            continue
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", candidate).replace("__", "_")[:48] or "upstream"
    return "upstream"


def approvals_for(args: argparse.Namespace, audited: bool = False):  # type: ignore[no-untyped-def]
    """The approval queue; ``audited``: one that decides, chaining each vote and decision."""
    from ..approvals import Approvals

    grants = grants_for(args)
    if grants is None:
        raise ConfigError("the mcp-guard store cannot be opened")
    return Approvals(grants.store, audit_for(args, writer=True) if audited else None)


def audit_for(args: argparse.Namespace, writer: bool = False):  # type: ignore[no-untyped-def]
    """The audit for a reader (or a ``writer``): first chained up to the last record any guard spooled."""
    audit = open_audit(writer)
    audit.fold_spools()
    return audit


def pins_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ..integrity import Pins

    return Pins(approvals_for(args).store)


def grants_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return open_grants()


def upstream_command(args: argparse.Namespace) -> list[str]:
    """The server command given after ``--``, if any."""
    command = list(args.command)
    return command[1:] if command and command[0] == "--" else command


def command_spec(args: argparse.Namespace, command: list[str]) -> Any:
    from ..guard import UpstreamSpec

    return UpstreamSpec(name=args.name or default_name(command), command=command[0], args=command[1:], protocol=args.protocol)


def config_specs(config: Any) -> list[Any]:
    """One upstream spec per enabled entry of a loaded config."""
    from ..guard import UpstreamSpec

    return [
        UpstreamSpec(
            name=name, command=e.command, args=e.args, env=e.env, cwd=e.cwd, url=e.url, headers=e.headers,
            protocol=e.protocol, request_timeout=config.request_timeout(e), isolation=e.isolation,
        )
        for name, e in config.enabled().items()
    ]


def config_policy(config: Any, config_path: str) -> str | None:
    """The config's policy file; a relative path is read from the config file's folder."""
    policy_file = config.guard.policy
    if policy_file is not None and not os.path.isabs(policy_file):
        policy_file = os.path.join(os.path.dirname(os.path.abspath(config_path)), policy_file)
    return policy_file


def reviewer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-file", default=None, help="a file holding the reviewer token (default: $MCP_GUARD_REVIEW_TOKEN, or asked)")
    p.add_argument("--url", default=None, help="a running serve's address: go through its review API, not the store")


def state(p: argparse.ArgumentParser) -> None:
    """--home and --store: where the state lives."""
    p.add_argument("--home", help="state directory (default: $MCP_GUARD_HOME or the user's data dir)")
    p.add_argument(
        "--store", help="postgresql://... to share approvals, grants and audit between instances (default: $MCP_GUARD_STORE or SQLite in the home)"
    )


def common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON file in the mcpServers shape (command/args/env or url/headers)")
    state(p)
    p.add_argument("--user", default=None, help="the requester's name (default: $MCP_GUARD_USER or the OS user)")
    p.add_argument("--name", default=None, help="name of the upstream given after -- (default: taken from its command)")
    p.add_argument(
        "--protocol", choices=("auto", "legacy", "2026-07-28"), default="auto", help="era to speak to the upstream after --"
    )
    p.add_argument("--allow-method", action="append", default=[], help="relay this non-MCP method (glob), e.g. 'vendor/*'")
    p.add_argument("--policy", help="policy YAML (default: $MCP_GUARD_POLICY, the config's, or the shipped default.yaml)")
    p.add_argument("--no-policy", action="store_true", help="relay only: no risk, no decisions, no approvals")

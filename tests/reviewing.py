"""Reviewers for tests: each with their own token, minted through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_TOKENS: dict[tuple[str, str], str] = {}


def reviewer_token(home: Path, name: str, role: str = "secops") -> str:
    """A live reviewer token for ``name`` in ``home`` (created once per home and name)."""
    key = (str(home), name)
    if key not in _TOKENS:
        made = subprocess.run(
            [sys.executable, "-m", "mcp_guard", "review", "token", "create", name, "--role", role, "--home", str(home)],
            capture_output=True, text=True, timeout=30,
        )
        assert made.returncode == 0, made.stderr
        _TOKENS[key] = made.stdout.strip()
    return _TOKENS[key]


def review(home: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """`mcp-guard review ARGS --home HOME`; with ``--as NAME`` in ARGS, run by NAME holding their own token."""
    env = dict(os.environ)
    env.pop("MCP_GUARD_REVIEW_TOKEN", None)
    if "--as" in args and token is None:
        token = reviewer_token(home, args[args.index("--as") + 1])
    if token is not None:
        env["MCP_GUARD_REVIEW_TOKEN"] = token
    argv = [sys.executable, "-m", "mcp_guard", "review", *args, "--home", str(home)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)

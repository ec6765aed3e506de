"""Settings: argv, the environment and the config file, read once into one frozen object.

This is the only module that reads ``os.environ`` for configuration (the stdio transport still
hands the environment on to the upstream processes it starts, as clients expect). Nothing
writes to the environment to carry settings between layers: the command line builds a
:class:`Settings` and installs it once; lower layers ask :func:`current`.

Library users who never install settings get them from the environment as it is at each use.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["Settings", "current", "install"]


@dataclass(frozen=True)
class Settings:
    """Where the guard keeps its state and who it acts for; every field has its source below."""

    home: Path  # --home, $MCP_GUARD_HOME, else the user's data directory
    store_url: str = ""  # --store, $MCP_GUARD_STORE, the config's mcpGuard.store; "" is SQLite in home
    user: str = ""  # --user, $MCP_GUARD_USER; "" means the OS user
    policy: str = ""  # $MCP_GUARD_POLICY: the policy when neither --policy nor the config names one
    log_level: str = "warning"  # --log-level, $MCP_GUARD_LOG_LEVEL
    log_format: str = ""  # $MCP_GUARD_LOG_FORMAT: "json" or "text"; "" picks by whether stderr is a terminal
    # The review page's address ($MCP_GUARD_REVIEW_URL), for `run` beside `review serve`;
    # `serve` offers its own page when this is empty.
    review_url: str = ""
    # How long a call waiting on PostgreSQL may miss a notification ($MCP_GUARD_PG_POLL_S).
    pg_poll_s: float = 1.0
    # This instance's name behind a load balancer ($MCP_GUARD_INSTANCE, its server name there):
    # written into each requestState so a 2026-07-28 retry can be sent back to it.
    instance: str = ""
    # Where compiled pattern databases are kept ($MCP_GUARD_CACHE); empty: the home's cache/.
    # They are made from the code alone (no call data), so homes of one user may share them.
    cache: str = ""
    # A reviewer's credential for `review approve|deny` ($MCP_GUARD_REVIEW_TOKEN); never shown.
    review_token: str = field(default="", repr=False)
    # The environment as it was read: channel secrets (Slack, webhooks) and client config paths.
    environ: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **given: Any) -> Settings:
        """Settings from ``environ`` (default: the process's), with ``given`` (argv) winning."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {
            "home": Path(env["MCP_GUARD_HOME"]) if env.get("MCP_GUARD_HOME") else _data_dir(env),
            "store_url": env.get("MCP_GUARD_STORE", ""),
            "user": env.get("MCP_GUARD_USER", ""),
            "policy": env.get("MCP_GUARD_POLICY", ""),
            "log_level": env.get("MCP_GUARD_LOG_LEVEL", "warning"),
            "log_format": env.get("MCP_GUARD_LOG_FORMAT", ""),
            "review_url": env.get("MCP_GUARD_REVIEW_URL", ""),
            "pg_poll_s": _float(env.get("MCP_GUARD_PG_POLL_S"), 1.0),
            "instance": env.get("MCP_GUARD_INSTANCE", "").strip(),
            "review_token": env.get("MCP_GUARD_REVIEW_TOKEN", "").strip(),
            "cache": env.get("MCP_GUARD_CACHE", ""),
            "environ": MappingProxyType(env),
        }
        for name, value in given.items():
            if value is not None and value != "":
                values[name] = Path(value) if name == "home" else value
        return cls(**values)

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else self.home / "cache"

    def with_store(self, url: str | None) -> Settings:
        """These settings with the config file's store, unless argv or the environment named one."""
        if not url or self.store_url:
            return self
        return dataclasses.replace(self, store_url=url)


def _data_dir(env: Mapping[str, str]) -> Path:
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "mcp-guard"
    if sys.platform == "win32":
        return Path(env.get("LOCALAPPDATA", home)) / "mcp-guard"
    return Path(env.get("XDG_DATA_HOME", home / ".local" / "share")) / "mcp-guard"


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


_current: Settings | None = None


def install(settings: Settings) -> Settings:
    """Make ``settings`` the process's settings (the command line does this once)."""
    global _current
    _current = settings
    return settings


def current() -> Settings:
    """The installed settings; without any, the environment as it is now (library use, tests)."""
    return _current if _current is not None else Settings.from_environment()

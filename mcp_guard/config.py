"""The guard's configuration: the ``mcpServers`` JSON users already have, plus ``mcpGuard``.

::

    {
      "mcpServers": {
        "files": {"command": "npx", "args": ["@modelcontextprotocol/server-filesystem", "/tmp"]},
        "remote": {"url": "http://127.0.0.1:3001/mcp", "headers": {"Authorization": "Bearer ..."}}
      },
      "mcpGuard": {"allowMethods": ["vendor/*"], "hooks": ["mypkg.hooks:Redact"], "requestTimeout": 120}
    }

``requestTimeout`` (seconds, in ``mcpGuard`` or per server, the server's own winning) bounds
how long an upstream may take to answer one request; each progress notification from it
restarts the clock. The time a call spends waiting for a human approval is not counted: the
deadline starts when the call is forwarded.

VS Code's ``servers`` key is read as ``mcpServers``. Fields a client uses that the guard does
not (``type``, ``disabled``, ...) are accepted; ``disabled`` servers are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError
from .relay.lines import DEFAULT_MAX_MESSAGE_BYTES
from .relay.upstream import DEFAULT_REQUEST_TIMEOUT_S

__all__ = ["ServerEntry", "GuardSection", "GuardConfig", "load_config"]


class ServerEntry(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    disabled: bool = False
    # Which era to speak to this server; "auto" follows the client's era where the server can.
    protocol: Literal["auto", "legacy", "2026-07-28"] = "auto"
    # Under `serve`: "session" starts this server once per client session (its own process or
    # HTTP session, that client's capabilities); "shared" keeps one for every client, for servers
    # the operator knows hold no per-client state. Server-to-client requests of a shared server
    # that cannot be tied to exactly one call are refused.
    isolation: Literal["session", "shared"] = "session"
    request_timeout: float | None = Field(default=None, alias="requestTimeout", gt=0)
    # Fields holding ${NAME} references, read from the guard's environment at start ("url",
    # "headers.<Name>"): `wrap` moves a client's own references into the entry's env this way.
    expand_env: list[str] = Field(default=[], alias="expandEnv")

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("expandEnv"):
            from .envrefs import expand_fields

            data = expand_fields(data, data["expandEnv"])
        return data

    @model_validator(mode="after")
    def _one_transport(self) -> ServerEntry:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (a streamable HTTP server)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self


class GuardSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    allow_methods: list[str] = Field(default=[], alias="allowMethods")
    hooks: list[str] = []
    # Policy YAML; a relative path is read from the config file's folder.
    policy: str | None = None
    # postgresql://... for instances that share approvals, grants and audit ($MCP_GUARD_STORE and
    # --store win). A password here sits in a plain file: prefer PGPASSWORD or ~/.pgpass.
    store: str | None = None
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, alias="maxMessageBytes", ge=1024)
    # `serve`: close a client session (and its upstream processes) after this many seconds without a request.
    session_idle_timeout: float = Field(default=1800.0, alias="sessionIdleTimeout", gt=0)
    request_timeout: float = Field(default=DEFAULT_REQUEST_TIMEOUT_S, alias="requestTimeout", gt=0)


class GuardConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    mcp_servers: dict[str, ServerEntry] = Field(alias="mcpServers")
    guard: GuardSection = Field(default=GuardSection(), alias="mcpGuard")

    @model_validator(mode="before")
    @classmethod
    def _vscode_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and "mcpServers" not in data and isinstance(data.get("servers"), dict):
            data = {**data, "mcpServers": data["servers"]}
        return data

    @model_validator(mode="after")
    def _names(self) -> GuardConfig:
        for name in self.mcp_servers:
            if not name or "__" in name:
                raise ValueError(f"server name {name!r} must be non-empty and must not contain '__'")
        if not self.enabled():
            raise ValueError("no enabled server in mcpServers")
        return self

    def enabled(self) -> dict[str, ServerEntry]:
        return {name: entry for name, entry in self.mcp_servers.items() if not entry.disabled}

    def request_timeout(self, entry: ServerEntry) -> float:
        """The server's own deadline, else the guard-wide one."""
        return entry.request_timeout if entry.request_timeout is not None else self.guard.request_timeout


def load_config(path: str | Path) -> GuardConfig:
    """Read and validate a config file. Raises :class:`ConfigError` naming the file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    try:
        return GuardConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(top level)"
            problems.append(f"{path}: {where}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from None


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON keeps the last of two equal keys: a second "mcpGuard" or server entry would silently
    replace the first (its policy, its arguments), so a repeated key is an error."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object; write it once")
        out[key] = value
    return out

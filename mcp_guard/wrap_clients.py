"""Where each MCP client keeps its servers, and how one of its entries is put behind the guard.

A client's file is read into a document (JSON, or TOML through tomlkit so that Codex's comments
and layout survive); each client names the server maps inside it (a path of keys) and knows the
shape of its entries. ``wrapped_entry`` turns one entry into the guard's, or says why it cannot.

Variables: an HTTP entry's url and headers move to a file the guard reads, so the client no
longer expands them. Any value that refers to a variable (``${VAR}``, ``${env:VAR}``, ``$VAR``,
``{env:VAR}``) is therefore moved into the wrapped entry's environment instead, which each client
expands with its own syntax when it starts the guard; the guard's file names that variable, and
the guard reads it at start (``expandEnv`` in :mod:`mcp_guard.config`). Codex names variables
directly (``bearer_token_env_var``, ``env_http_headers``) and forwards them with ``env_vars``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import settings
from .errors import ConfigError

MapPath = tuple[str, ...]

CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode", "gemini", "codex", "opencode")

# Anything a client may expand: ${VAR}, ${env:VAR}, ${workspaceFolder}, $VAR, {env:VAR}, {file:path}.
_REFERENCE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_]|\{(?:env|file):[^}]*\}")


@dataclass(frozen=True)
class Upstream:
    """What one client entry asks for, in the client's own terms."""

    kind: str  # "stdio", "http", or "skip" (with why)
    command: list[str]
    url: str = ""
    headers: dict[str, str] | None = None
    why: str = ""


def default_path(client: str) -> Path:
    """Where each client keeps its (user-level) MCP config on this OS."""
    home = Path.home()
    environ = settings.current().environ
    if client == "claude-desktop":
        if sys.platform == "darwin":
            return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        if sys.platform == "win32":
            return Path(environ.get("APPDATA", home)) / "Claude" / "claude_desktop_config.json"
        return Path(environ.get("XDG_CONFIG_HOME", home / ".config")) / "Claude" / "claude_desktop_config.json"
    if client == "claude-code":
        return home / ".claude.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if client == "vscode":
        return Path.cwd() / ".vscode" / "mcp.json"
    if client == "gemini":
        return home / ".gemini" / "settings.json"
    if client == "codex":
        return Path(environ.get("CODEX_HOME", home / ".codex")) / "config.toml"
    if client == "opencode":
        return Path(environ.get("XDG_CONFIG_HOME", home / ".config")) / "opencode" / "opencode.json"
    raise ConfigError(f"unknown client {client!r}; expected one of {', '.join(CLIENTS)}")


def is_toml(client: str) -> bool:
    return client == "codex"


def load(text: str, client: str, path: Path) -> Any:
    if is_toml(client):
        import tomlkit
        from tomlkit.exceptions import ParseError

        try:
            return tomlkit.parse(text)
        except ParseError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc


def dump(doc: Any, client: str, text: str) -> str:
    if is_toml(client):
        import tomlkit

        return tomlkit.dumps(doc)
    match = re.search(r"\n([ \t]+)\S", text)
    return json.dumps(doc, indent=match.group(1) if match else 2, ensure_ascii=False) + "\n"


def plain(value: Any) -> Any:
    """A JSON-comparable copy (tomlkit items become dicts, lists and strings)."""
    return json.loads(json.dumps(value.unwrap() if hasattr(value, "unwrap") else value))


def server_maps(doc: Any, client: str) -> list[MapPath]:
    """The paths of every server map in a client's document."""
    candidates: list[MapPath]
    if client == "codex":
        candidates = [("mcp_servers",)]
    elif client == "opencode":
        candidates = [("mcp",)]
    elif client == "vscode":
        candidates = [("servers",), ("mcp", "servers")]
    else:
        candidates = [("mcpServers",)]
    if client == "claude-code" and isinstance(doc.get("projects"), dict):
        # The local scope: one map per project folder in ~/.claude.json.
        candidates += [("projects", p, "mcpServers") for p in doc["projects"]]
    return [p for p in candidates if isinstance(lookup(doc, p), dict)]


def lookup(doc: Any, path: MapPath) -> Any:
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def is_wrapped(entry: dict[str, Any], client: str) -> bool:
    command = entry.get("command")
    words = [str(w) for w in command] if isinstance(command, list) else [str(command or ""), *map(str, entry.get("args") or [])]
    name = Path(words[0]).name if words else ""
    return name in ("mcp-guard", "mcp-guard.exe") or words[1:3] == ["-m", "mcp_guard"]


def read_upstream(entry: dict[str, Any], client: str) -> Upstream:
    """Classify one entry; "skip" names a transport the guard cannot relay."""
    kind = str(entry.get("type", "")).lower()
    for key in ("url", "httpUrl"):
        if key in entry and not (isinstance(entry[key], str) and entry[key].startswith(("http://", "https://"))):
            return Upstream("skip", [], why=f"its {key} is not an http(s) address")
    headers = entry.get("http_headers" if client == "codex" else "headers")
    if headers is not None and not (isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())):
        return Upstream("skip", [], why="its headers are not a map of strings")
    if client == "opencode":
        if kind == "remote" or "url" in entry:
            return Upstream("http", [], str(entry.get("url", "")), dict(entry.get("headers") or {}))
        command = entry.get("command")
        if isinstance(command, list) and command:
            return Upstream("stdio", [str(w) for w in command])
        return Upstream("skip", [], why="no command")
    if isinstance(entry.get("command"), str):
        return Upstream("stdio", [entry["command"], *[str(a) for a in entry.get("args") or []]])
    if client == "codex" and "url" in entry:
        return Upstream("http", [], str(entry["url"]), dict(entry.get("http_headers") or {}))
    if client == "gemini" and "httpUrl" in entry:
        return Upstream("http", [], str(entry["httpUrl"]), dict(entry.get("headers") or {}))
    if "url" in entry:
        # Gemini reads a bare `url` as SSE; Claude Code and others say so with type "sse".
        if kind == "sse" or (client == "gemini" and kind not in ("http", "streamable-http")):
            return Upstream("skip", [], why="an SSE server (the guard relays stdio and streamable HTTP)")
        return Upstream("http", [], str(entry["url"]), dict(entry.get("headers") or {}))
    return Upstream("skip", [], why="neither a command nor a url")


def env_key(client: str) -> str:
    return "environment" if client == "opencode" else "env"


def sidecar_entry(upstream: Upstream, entry: dict[str, Any], client: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The guard's own entry for an HTTP server, the variables the client must hand it, and the
    names of the user's variables Codex must forward (``env_vars``)."""
    headers = dict(upstream.headers or {})
    expand: list[str] = []
    to_env: dict[str, str] = {}
    forward: list[str] = []
    if client == "codex":
        for header, var in dict(entry.get("env_http_headers") or {}).items():
            headers[str(header)] = f"${{{var}}}"
            expand.append(f"headers.{header}")
            forward.append(str(var))
        if entry.get("bearer_token_env_var"):
            var = str(entry["bearer_token_env_var"])
            headers["Authorization"] = f"Bearer ${{{var}}}"
            expand.append("headers.Authorization")
            forward.append(var)
    url = upstream.url
    if client != "codex":
        if _REFERENCE.search(url):
            to_env["MCP_GUARD_URL"], url = url, "${MCP_GUARD_URL}"
            expand.append("url")
        for i, (header, value) in enumerate(sorted(headers.items()), 1):
            if _REFERENCE.search(str(value)):
                var = f"MCP_GUARD_HEADER_{i}"
                to_env[var], headers[header] = str(value), f"${{{var}}}"
                expand.append(f"headers.{header}")
    guard_entry: dict[str, Any] = {"url": url}
    if headers:
        guard_entry["headers"] = headers
    if expand:
        guard_entry["expandEnv"] = expand
    return guard_entry, to_env, forward


_HTTP_KEYS = {
    "codex": ("url", "http_headers", "env_http_headers", "bearer_token_env_var"),
    "opencode": ("url", "headers", "oauth"),
    "gemini": ("url", "httpUrl", "headers"),
}


def wrapped_entry(
    entry: dict[str, Any], client: str, argv_head: list[str], upstream: Upstream, sidecar: Path | None,
    to_env: dict[str, str], forward: list[str],
) -> dict[str, Any]:
    """The entry after wrapping: the guard's command, every key the client owns kept."""
    if upstream.kind == "stdio":
        argv = [*argv_head, "--", *upstream.command]
    else:
        argv = [*argv_head, "--config", str(sidecar)]
    wrapped = dict(entry)
    if upstream.kind == "http":
        for key in _HTTP_KEYS.get(client, ("url", "headers")):
            wrapped.pop(key, None)
        if client == "opencode":
            wrapped["type"] = "local"
        elif "type" in entry:
            wrapped["type"] = "stdio"
        if to_env:
            wrapped[env_key(client)] = {**dict(entry.get(env_key(client)) or {}), **to_env}
        if forward:
            wrapped["env_vars"] = sorted({*map(str, entry.get("env_vars") or []), *forward})
    if client == "opencode":
        wrapped["command"] = argv
    else:
        wrapped["command"], wrapped["args"] = argv[0], argv[1:]
    return wrapped

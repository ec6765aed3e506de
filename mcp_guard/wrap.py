"""`mcp-guard wrap` / `unwrap`: put every server in a client's MCP config behind the guard.

Shapes: Claude Desktop, Cursor and Claude Code keep servers under ``mcpServers`` (Claude Code
also per project, under ``projects.<path>.mcpServers``); VS Code under ``servers`` (``.vscode/
mcp.json``) or ``mcp.servers`` (settings.json). A stdio entry becomes
``mcp-guard run --name NAME -- <its command and args>`` with its env and other keys kept; an
HTTP entry becomes ``mcp-guard run --name NAME --config <file>`` where the file, under
``MCP_GUARD_HOME/wrapped/``, holds its url and headers. Entries already wrapped are left alone,
so wrapping twice changes nothing. The original file is saved byte for byte beside it
(``<file>.mcp-guard-backup``) on the first wrap, and ``unwrap`` puts those bytes back.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from . import settings
from .errors import ConfigError
from .store import guard_home

BACKUP_SUFFIX = ".mcp-guard-backup"
CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode")


def default_path(client: str) -> Path:
    """Where each client keeps its MCP config on this OS."""
    home = Path.home()
    if client == "claude-desktop":
        if sys.platform == "darwin":
            return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        if sys.platform == "win32":
            return Path(settings.current().environ.get("APPDATA", home)) / "Claude" / "claude_desktop_config.json"
        config_home = settings.current().environ.get("XDG_CONFIG_HOME", home / ".config")
        return Path(config_home) / "Claude" / "claude_desktop_config.json"
    if client == "claude-code":
        return home / ".claude.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if client == "vscode":
        return Path.cwd() / ".vscode" / "mcp.json"
    raise ConfigError(f"unknown client {client!r}; expected one of {', '.join(CLIENTS)}")


def _server_maps(data: Any) -> list[dict[str, Any]]:
    """Every server map in a config, in whichever shape it uses."""
    maps: list[dict[str, Any]] = []
    if not isinstance(data, dict):
        return maps
    for key in ("mcpServers", "servers"):
        if isinstance(data.get(key), dict):
            maps.append(data[key])
    if isinstance(data.get("mcp"), dict) and isinstance(data["mcp"].get("servers"), dict):
        maps.append(data["mcp"]["servers"])
    projects = data.get("projects")
    if isinstance(projects, dict):
        for project in projects.values():
            if isinstance(project, dict) and isinstance(project.get("mcpServers"), dict):
                maps.append(project["mcpServers"])
    return maps


def _is_wrapped(entry: dict[str, Any]) -> bool:
    command = Path(str(entry.get("command", ""))).name
    args = [str(a) for a in entry.get("args", [])]
    return command in ("mcp-guard", "mcp-guard.exe") or args[:2] == ["-m", "mcp_guard"]


def _wrap_entry(name: str, entry: dict[str, Any], guard: str, client: str, extra: list[str]) -> dict[str, Any]:
    if _is_wrapped(entry):
        return entry
    wrapped = dict(entry)
    if "command" in entry:
        wrapped["command"] = guard
        wrapped["args"] = ["run", "--name", name, *extra, "--", str(entry["command"]), *[str(a) for a in entry.get("args", [])]]
        return wrapped
    if "url" in entry:
        folder = guard_home() / "wrapped"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = folder / f"{client}-{name}.json"
        upstream = {k: v for k, v in entry.items() if k in ("url", "headers")}
        target.write_text(json.dumps({"mcpServers": {name: upstream}}, indent=2) + "\n")
        os.chmod(target, 0o600)  # headers may hold credentials
        for key in ("url", "headers", "type"):
            wrapped.pop(key, None)
        wrapped.update({"type": "stdio"} if "type" in entry else {})
        wrapped["command"] = guard
        wrapped["args"] = ["run", "--name", name, *extra, "--config", str(target)]
        return wrapped
    return entry


def wrap_text(text: str, client: str, guard: str = "mcp-guard", extra: list[str] | None = None) -> str:
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ConfigError(f"the client config is not valid JSON: {exc}") from exc
    changed = False
    for servers in _server_maps(data):
        for name, entry in list(servers.items()):
            if isinstance(entry, dict):
                wrapped = _wrap_entry(name, entry, guard, client, list(extra or []))
                changed = changed or wrapped is not entry
                servers[name] = wrapped
    if not changed:
        return text  # nothing to wrap (or wrapped already): the file stays as it is
    match = re.search(r"\n([ \t]+)\S", text)
    indent: str | int = match.group(1) if match else 2
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def wrap(path: Path, client: str, *, dry_run: bool = False, guard: str | None = None) -> tuple[str, str]:
    """Wrap the file; returns (old text, new text). The first wrap keeps a byte-exact backup."""
    if not path.exists():
        raise ConfigError(f"{path}: no such file (give --file for a config in another place)")
    raw = path.read_bytes()
    old = raw.decode("utf-8")
    new = wrap_text(old, client, guard or _guard_command())
    if not dry_run and new != old:
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        if not backup.exists():
            backup.write_bytes(raw)
            shutil.copymode(path, backup)
        path.write_text(new, encoding="utf-8")
    return old, new


def unwrap(path: Path, *, dry_run: bool = False) -> tuple[str, str]:
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if not backup.exists():
        raise ConfigError(f"{path}: there is no backup ({backup.name}) to restore; was it wrapped by mcp-guard?")
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = backup.read_bytes()
    if not dry_run:
        path.write_bytes(new)
        backup.unlink()
    return old, new.decode("utf-8")


def diff(old: str, new: str, path: Path) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(path), f"{path} (wrapped)"))


def _guard_command() -> str:
    """An absolute path to mcp-guard when one can be found: clients start servers without a shell."""
    found = shutil.which("mcp-guard")
    if found:
        return found
    beside = Path(sys.executable).parent / "mcp-guard"
    return str(beside) if beside.exists() else "mcp-guard"

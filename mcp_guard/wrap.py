"""`mcp-guard wrap` / `unwrap`: put every server in a client's MCP config behind the guard, and
take exactly that back out.

``wrap`` rewrites each entry it can (formats in :mod:`mcp_guard.wrap_clients`) and records, per
config file, which entry it changed (its map, e.g. a Claude Code project, and its name) with the
entry before and after. ``unwrap`` is a three-way merge against that record: an entry still as
wrap left it gets its old form back; an entry edited by hand since is reported and left alone;
servers added since, and every key the client owns (Claude Code's counters, VS Code's inputs),
stay as they are now. When the file is still exactly what wrap wrote after a single wrap, the
original bytes come back. ``--dry-run`` computes the same change and writes nothing at all.

HTTP entries point at a guard config under ``MCP_GUARD_HOME/wrapped/``, one file per config
file, map and server (two projects' ``api`` servers never share one), mode 0600 since headers may
hold credentials; unwrap removes them with the record.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import wrap_clients as clients
from .errors import ConfigError
from .owner_only import write_own
from .store import guard_home
from .wrap_clients import CLIENTS, default_path

__all__ = ["CLIENTS", "Outcome", "default_path", "diff", "unwrap", "wrap"]

BACKUP_SUFFIX = ".mcp-guard-backup"


@dataclass
class Outcome:
    """What a wrap or unwrap did (or, with --dry-run, would do)."""

    old: str
    new: str
    changed: list[str] = field(default_factory=list)  # "project/name" of each entry changed
    notes: list[str] = field(default_factory=list)  # entries left as they are, and why


def wrap(path: Path, client: str, *, dry_run: bool = False, guard: str | None = None) -> Outcome:
    old = _read(path)
    doc = clients.load(old, client, path)
    head = guard or _guard_command()
    record = _load_record(path)
    if record["client"] not in (None, client):
        raise ConfigError(f"{path} was wrapped as a {record['client']} config; unwrap it first, or give --client {record['client']}")
    record["client"] = client
    outcome = Outcome(old, old)
    sidecars: dict[Path, dict[str, Any]] = {}
    for map_path in clients.server_maps(doc, client):
        servers = clients.lookup(doc, map_path)
        for name in list(servers):
            entry = clients.plain(servers[name])
            if not isinstance(entry, dict) or clients.is_wrapped(entry, client):
                continue
            label = _label(map_path, name)
            upstream = clients.read_upstream(entry, client)
            if upstream.kind == "skip":
                outcome.notes.append(f"{label}: left as is: {upstream.why}")
                continue
            wrapped, sidecar = _wrap_one(path, client, map_path, name, entry, upstream, head)
            if sidecar is not None:
                sidecars[sidecar[0]] = sidecar[1]
            _replace(servers, name, wrapped, client)
            record["entries"].append({
                "map": list(map_path), "name": name, "before": entry, "after": wrapped,
                "sidecar": str(sidecar[0]) if sidecar else None,
            })
            outcome.changed.append(label)
    if not outcome.changed:
        return outcome
    outcome.new = clients.dump(doc, client, old)
    if not dry_run:
        _commit_wrap(path, record, outcome, sidecars)
    return outcome


def unwrap(path: Path, *, dry_run: bool = False) -> Outcome:
    record = _load_record(path)
    if not record["entries"]:
        if _backup(path).exists():  # wrapped by an mcp-guard that kept only a byte copy
            raise ConfigError(f"{path}: no wrap record, only {_backup(path).name} from an older mcp-guard; "
                              "compare and restore it by hand (it predates every edit since)")
        raise ConfigError(f"{path}: mcp-guard has no record of wrapping this file; nothing to unwrap")
    client = record["client"]
    old = _read(path)
    outcome = Outcome(old, old)
    backup = _backup(path)
    kept: list[dict[str, Any]] = []
    if record.get("exact") and _digest(old) == record.get("wrote") and backup.exists():
        outcome.new = backup.read_bytes().decode("utf-8")  # untouched since a single wrap: the very bytes
        outcome.changed = [_label(tuple(e["map"]), e["name"]) for e in record["entries"]]
    else:
        doc = clients.load(old, client, path)
        for item in record["entries"]:
            if not _revert(doc, item, client, outcome):
                kept.append(item)
        if outcome.changed:
            outcome.new = clients.dump(doc, client, old)
    if not dry_run:
        _commit_unwrap(path, record, kept, outcome)
    return outcome


def diff(old: str, new: str, path: Path) -> str:
    """A unified diff of the file before and after. A last line with no newline (Claude Code writes
    ``~/.claude.json`` so) is marked as diff(1) and patch(1) do, so it does not run into the next line."""
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(path), f"{path} (after)")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _wrap_one(
    path: Path, client: str, map_path: clients.MapPath, name: str, entry: dict[str, Any],
    upstream: clients.Upstream, head: str,
) -> tuple[dict[str, Any], tuple[Path, dict[str, Any]] | None]:
    argv_head = [head, "run", "--name", _guard_name(name)]
    if upstream.kind == "stdio":
        return clients.wrapped_entry(entry, client, argv_head, upstream, None, {}, []), None
    target = _sidecar_path(path, client, map_path, name)
    guard_entry, to_env, forward = clients.sidecar_entry(upstream, entry, client)
    wrapped = clients.wrapped_entry(entry, client, argv_head, upstream, target, to_env, forward)
    return wrapped, (target, {"mcpServers": {_guard_name(name): guard_entry}})


def _revert(doc: Any, item: dict[str, Any], client: str, outcome: Outcome) -> bool:
    """Put one entry back if it is as wrap left it; False keeps it in the record."""
    label = _label(tuple(item["map"]), item["name"])
    servers = clients.lookup(doc, tuple(item["map"]))
    current = servers.get(item["name"]) if isinstance(servers, dict) else None
    if current is None:
        outcome.notes.append(f"{label}: removed since the wrap; nothing to restore")
        return True
    if clients.plain(current) != item["after"]:
        outcome.notes.append(f"{label}: changed by hand since the wrap; left as it is (restore it yourself)")
        return False
    _replace(servers, item["name"], item["before"], client)
    outcome.changed.append(label)
    return True


def _replace(servers: Any, name: str, entry: dict[str, Any], client: str) -> None:
    if not clients.is_toml(client):
        servers[name] = entry  # the same place in the map; the entry's keys in its own order
        return
    table = servers[name]  # edit the TOML table in place so its comments stay
    for key in [k for k in table if k not in entry]:
        del table[key]
    for key, value in entry.items():
        if key not in table or clients.plain(table[key]) != value:
            table[key] = value


def _commit_wrap(path: Path, record: dict[str, Any], outcome: Outcome, sidecars: dict[Path, dict[str, Any]]) -> None:
    first = record.get("wrote") is None
    for target, body in sidecars.items():
        write_own(target, (json.dumps(body, indent=2) + "\n").encode())  # headers may hold credentials
    backup = _backup(path)
    if first and not backup.exists():
        backup.write_bytes(outcome.old.encode("utf-8"))
        shutil.copymode(path, backup)
    _write_keeping_mode(path, outcome.new)
    record.update(wrote=_digest(outcome.new), exact=first)
    _save_record(path, record)


def _commit_unwrap(path: Path, record: dict[str, Any], kept: list[dict[str, Any]], outcome: Outcome) -> None:
    if outcome.new != outcome.old:
        _write_keeping_mode(path, outcome.new)
    for item in record["entries"]:
        if item not in kept and item.get("sidecar"):
            Path(item["sidecar"]).unlink(missing_ok=True)
    if kept:
        record.update(entries=kept, exact=False, wrote=_digest(outcome.new))
        _save_record(path, record)
        return
    _record_path(path).unlink(missing_ok=True)
    _backup(path).unlink(missing_ok=True)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (give --file for a config in another place)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def _write_keeping_mode(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".mcp-guard-tmp")
    tmp.write_text(text, encoding="utf-8")
    shutil.copymode(path, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves the client half a file


def _key(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def _record_path(path: Path) -> Path:
    return guard_home() / "wrapped" / f"{_key(path)}.record.json"


def _load_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(_record_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"file": str(path.resolve()), "client": None, "entries": []}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{_record_path(path)}: the wrap record cannot be read: {exc}") from None
    return record


def _save_record(path: Path, record: dict[str, Any]) -> None:
    # The "before" entries are the client's own, credentials included: private like the sidecars.
    write_own(_record_path(path), (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode())


def _backup(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def _sidecar_path(path: Path, client: str, map_path: clients.MapPath, name: str) -> Path:
    key = hashlib.sha256("\0".join([str(path.resolve()), *map_path, name]).encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:40]
    return guard_home() / "wrapped" / f"{client}-{safe}-{key}.json"


def _guard_name(name: str) -> str:
    """The guard refuses '__' in a server name (it separates server and tool)."""
    return re.sub(r"_{2,}", "_", name) or "upstream"


def _label(map_path: clients.MapPath, name: str) -> str:
    return f"{map_path[1]}: {name}" if len(map_path) == 3 and map_path[0] == "projects" else name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _guard_command() -> str:
    """An absolute path to mcp-guard when one can be found: clients start servers without a shell."""
    found = shutil.which("mcp-guard")
    if found:
        return found
    beside = Path(sys.executable).parent / "mcp-guard"
    return str(beside) if beside.exists() else "mcp-guard"

"""The guard's SQLite database under ``MCP_GUARD_HOME``: connection, schema, migrations.

WAL mode lets several guard processes and a reviewer's CLI share one file. Calls are short
and run in a worker thread from async code (``anyio.to_thread``); domain rules live in the
modules that use the store, not here.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import GuardError

__all__ = ["Store", "StoreError", "guard_home"]

# Each entry upgrades the schema by one version; never edit a released entry, append.
MIGRATIONS = [
    """
    CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        session TEXT,
        server TEXT NOT NULL,
        tool TEXT NOT NULL,
        scope TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL,
        approver TEXT NOT NULL,
        channel TEXT NOT NULL,
        revoked REAL
    );
    CREATE INDEX grants_lookup ON grants (server, tool, user);
    """,
    """
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE audit_heads (
        seq INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        ts REAL NOT NULL,
        mac TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        user TEXT NOT NULL,
        session TEXT NOT NULL,
        server TEXT NOT NULL,
        tool TEXT NOT NULL,
        binding TEXT NOT NULL,
        rule TEXT NOT NULL,
        risk TEXT NOT NULL,
        preview TEXT NOT NULL,
        preview_sha256 TEXT NOT NULL,
        page_token TEXT NOT NULL,
        page_url TEXT,
        max_scope TEXT NOT NULL,
        state TEXT NOT NULL,
        decided_at REAL,
        decided_by TEXT,
        channel TEXT,
        scope TEXT,
        reason TEXT,
        consumed REAL,
        approvers TEXT NOT NULL DEFAULT 'user',
        reviewers TEXT,
        quorum INTEGER NOT NULL DEFAULT 1,
        grp TEXT,
        owner_pid INTEGER
    );
    CREATE INDEX approvals_binding ON approvals (binding, state);
    CREATE TABLE approval_votes (
        request TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        decision TEXT NOT NULL,
        at REAL NOT NULL,
        channel TEXT NOT NULL,
        reason TEXT,
        PRIMARY KEY (request, reviewer)
    );
    CREATE TABLE pins (
        server TEXT NOT NULL,
        tool TEXT NOT NULL,
        hash TEXT NOT NULL,
        definition TEXT NOT NULL,
        first_seen REAL NOT NULL,
        accepted REAL,
        pending_hash TEXT,
        pending_definition TEXT,
        changed REAL,
        findings TEXT,
        PRIMARY KEY (server, tool)
    );
    CREATE TABLE reviewer_tokens (
        hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        created REAL NOT NULL,
        revoked REAL
    )
    """,
]


class StoreError(GuardError):
    """The database is missing, locked or corrupt."""


def guard_home() -> Path:
    """``MCP_GUARD_HOME``, or the user's data directory."""
    env = os.environ.get("MCP_GUARD_HOME")
    if env:
        return Path(env)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "mcp-guard"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "mcp-guard"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "mcp-guard"


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else guard_home() / "guard.db"
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            # WAL + NORMAL: a commit survives the process being killed (the OS has it); only a
            # power cut may lose the last few. fsync on every audit record would cost ~0.3 ms.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the mcp-guard store at {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute("PRAGMA user_version").fetchone()[0] < number:
                    for statement in filter(str.strip, script.split(";")):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def transaction(self) -> Any:
        """``with store.transaction() as db:`` — one IMMEDIATE transaction, rolled back on error."""
        return _Transaction(self)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        try:
            with self._lock:
                return self._db.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"mcp-guard store error at {self.path}: {exc}") from exc

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                cursor = self._db.execute(sql, params)
                cursor.row_factory = sqlite3.Row
                return cursor.fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"mcp-guard store error at {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store._lock.acquire()
        try:
            self.store._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self.store._lock.release()
            raise StoreError(f"mcp-guard store error at {self.store.path}: {exc}") from exc
        return self.store._db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.store._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except sqlite3.Error as error:
            if exc_type is None:
                raise StoreError(f"mcp-guard store error at {self.store.path}: {error}") from error
        finally:
            self.store._lock.release()

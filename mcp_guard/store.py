"""The guard's database: SQLite under ``MCP_GUARD_HOME`` (the default), or PostgreSQL for
several guard instances that share one review queue, one set of grants and one audit chain.

Both stores offer the same small interface (``transaction``, ``execute``, ``query``, ``notify``,
``wait_changed``) over the same SQL, written with ``?`` placeholders; the PostgreSQL store
rewrites what differs. Writers are serialized in both: SQLite takes its write lock at
``BEGIN IMMEDIATE``, PostgreSQL an advisory lock at the start of each transaction, so the code
above can read-then-write (the audit chain's head, a vote count) without races. Domain rules
live in the modules that use the store, not here.

Pick the store with ``--store URL``, the config's ``mcpGuard.store``, or ``MCP_GUARD_STORE``:
``postgresql://user@host/db`` or a SQLite file path. Key files (the audit seal key, the web
cookie key) stay in ``MCP_GUARD_HOME`` either way: instances sharing a PostgreSQL store must
share those files too.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from . import settings
from .errors import GuardError
from .owner_only import private_file, private_home

__all__ = ["PostgresStore", "Store", "StoreError", "guard_home", "open_store"]

logger = logging.getLogger(__name__)

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
    """
    ALTER TABLE approvals ADD COLUMN owner_host TEXT;
    CREATE TABLE audit_spools (
        name TEXT PRIMARY KEY,
        folded INTEGER NOT NULL
    )
    """,
    # Reviewer web sessions live here, not only in a signed cookie: logout and token revocation
    # end them at once, and the web key alone cannot mint one.
    """
    CREATE TABLE reviewer_sessions (
        hash TEXT PRIMARY KEY,
        token TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        ended REAL
    )
    """,
    # Grants bind the rule, policy version and approver kind that made them, and the guard
    # process whose session a session grant belongs to (ended at crash recovery).
    """
    ALTER TABLE grants ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
    ALTER TABLE grants ADD COLUMN rule TEXT NOT NULL DEFAULT '';
    ALTER TABLE grants ADD COLUMN policy_version TEXT NOT NULL DEFAULT '';
    ALTER TABLE grants ADD COLUMN owner_pid INTEGER;
    ALTER TABLE grants ADD COLUMN owner_host TEXT
    """,
    # Caller tokens of `serve --auth tokens`: only their SHA-256 is kept, like reviewer tokens.
    """
    CREATE TABLE caller_tokens (
        hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        groups_json TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL,
        last_used REAL,
        revoked REAL
    )
    """,
    # Reviewers who sign in through the identity provider (web/idp_sessions.py): a login's
    # single-use state until its callback, and the session with the provider's tokens, sealed.
    """
    CREATE TABLE reviewer_logins (
        hash TEXT PRIMARY KEY,
        browser TEXT NOT NULL,
        created REAL NOT NULL,
        used REAL
    );
    CREATE TABLE reviewer_idp_sessions (
        hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        roles TEXT NOT NULL,
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        checked REAL NOT NULL,
        tokens TEXT NOT NULL,
        ended REAL
    )
    """,
]


class StoreError(GuardError):
    """The database is missing, locked, unreachable or corrupt."""


def guard_home() -> Path:
    """Where the store, audit and keys live (``--home``, ``MCP_GUARD_HOME`` or the data dir)."""
    return settings.current().home


def open_store(url: str | None = None) -> Store:
    """The store named by ``url``, else the settings' store URL, else SQLite in the home."""
    url = url or settings.current().store_url
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite://"):]
    return Store(url or None)


def redact_url(url: str) -> str:
    """A connection URL fit for messages: the password replaced."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


# How often a waiting call looks at its request in SQLite, where nothing wakes it sooner.
POLL_S = 0.1


class Store:
    """SQLite in WAL mode: several guard processes and a reviewer's CLI share one file."""

    dialect = "sqlite"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else guard_home() / "guard.db"
        self.home = self.path.parent  # key files and audit spools live beside the database
        self.where = str(self.path)
        self._lock = threading.Lock()
        try:
            self._private_files(path is None)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            # WAL + NORMAL: a commit survives the process being killed (the OS has it); only a
            # power cut may lose the last few. fsync on every audit record would cost ~0.3 ms.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the mcp-guard store at {self.path}: {exc}") from exc

    def _private_files(self, default_path: bool) -> None:
        """The home (when the store is in it) owner-only, the database and its companions 0600."""
        if default_path or self.path.parent.resolve() == guard_home().resolve():
            private_home(self.path.parent)
        else:  # a store path of the user's choosing: its folder may be shared (/tmp), leave it be
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        private_file(self.path)
        for companion in ("-wal", "-shm", "-journal"):
            extra = self.path.with_name(self.path.name + companion)
            if extra.exists():
                private_file(extra)

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

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """``with store.transaction() as db:`` — one writer at a time, rolled back on error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"mcp-guard store error at {self.where}: {exc}") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"mcp-guard store error at {self.where}: {exc}") from exc
                raise

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        try:
            with self._lock:
                return self._db.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"mcp-guard store error at {self.where}: {exc}") from exc

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                cursor = self._db.execute(sql, params)
                cursor.row_factory = sqlite3.Row
                return cursor.fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"mcp-guard store error at {self.where}: {exc}") from exc

    def notify(self, db: Any, topic: str) -> None:
        """Tell waiters in other processes that ``topic`` changed (SQLite: they poll)."""

    async def wait_changed(self, topic: str, timeout: float) -> None:
        """Return when ``topic`` may have changed, or after ``timeout`` seconds."""
        await anyio.sleep(min(timeout, POLL_S))

    def close(self) -> None:
        self._db.close()


class _Row(tuple):  # type: ignore[type-arg]
    """A result row read by position or by column name, as ``sqlite3.Row`` is."""

    names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


_ROW_TYPES: dict[tuple[str, ...], type[_Row]] = {}


def _row_factory(cursor: Any) -> Any:
    key = tuple(column.name for column in cursor.description or ())
    row_type = _ROW_TYPES.get(key)
    if row_type is None:
        row_type = _ROW_TYPES[key] = type("Row", (_Row,), {"names": {n: i for i, n in enumerate(key)}, "__slots__": ()})
    return row_type


_STRING = re.compile(r"('(?:[^']|'')*')")
_ADVISORY_KEY = 0x6D6370  # one lock for all writers of one database: "mcp"


def _pg_sql(sql: str, ddl: bool = False) -> str:
    """Our SQLite-flavoured SQL for PostgreSQL: placeholders, the reserved word ``user``, types."""
    parts = _STRING.split(sql)
    for i in range(0, len(parts), 2):
        part = re.sub(r"\buser\b", '"user"', parts[i]).replace("?", "%s")
        if ddl:
            part = re.sub(r"\bREAL\b", "DOUBLE PRECISION", re.sub(r"\bINTEGER\b", "BIGINT", part))
        parts[i] = part
    return "".join(parts)


class PostgresStore:
    """PostgreSQL (psycopg 3), for several guard instances sharing one store.

    A decision written by one instance wakes the calls waiting on every other at once: writers
    ``NOTIFY`` in the committing transaction, and each instance keeps one ``LISTEN``
    connection whose thread wakes the waiting tasks.
    """

    dialect = "postgresql"
    CHANNEL = "mcp_guard"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError("a PostgreSQL store needs psycopg: pip install 'mcp-guard[postgres]'") from exc
        self._psycopg = psycopg
        self.url = url
        self.where = redact_url(url)
        self.home = guard_home()
        self._lock = threading.Lock()
        self._sql: dict[tuple[str, bool], str] = {}
        self._waiters: dict[str, set[tuple[Any, anyio.Event]]] = {}
        self._waiters_lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._closed = False
        try:
            self._db = self._connect()
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the mcp-guard store at {self.where}: {exc}") from exc
        self._migrate()

    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, autocommit=True, row_factory=_row_factory, connect_timeout=10)

    def _translate(self, sql: str, ddl: bool = False) -> str:
        found = self._sql.get((sql, ddl))
        if found is None:
            found = self._sql[(sql, ddl)] = _pg_sql(sql, ddl)
        return found

    def _migrate(self) -> None:
        with self.transaction():  # under the writers' lock: instances starting together migrate once
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                self._db.execute("INSERT INTO schema_version (version) VALUES (0)")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    self._db.execute(self._translate(statement, ddl=True))
                self._db.execute("UPDATE schema_version SET version=%s", (number,))

    def _usable(self) -> Any:
        """The connection, opened again if the server dropped it (a restart, a failover): the
        operation that met the drop failed closed; the ones after it work again."""
        if self._db.broken or self._db.closed:
            logger.warning("the connection to %s was lost; reconnecting", self.where)
            self._db = self._connect()
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._lock:
            try:
                with self._usable().transaction():
                    self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_KEY,))
                    yield _PgConnection(self)
            except self._psycopg.Error as exc:
                raise StoreError(f"mcp-guard store error at {self.where}: {exc}") from exc

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self.transaction() as db:
            return int(db.execute(sql, params).rowcount)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._usable().execute(self._translate(sql), params).fetchall()
        except self._psycopg.Error as exc:
            raise StoreError(f"mcp-guard store error at {self.where}: {exc}") from exc

    def notify(self, db: Any, topic: str) -> None:
        db.execute("SELECT pg_notify(?, ?)", (self.CHANNEL, topic))

    async def wait_changed(self, topic: str, timeout: float) -> None:
        self._listen()
        entry = (anyio.lowlevel.current_token(), anyio.Event())
        with self._waiters_lock:
            self._waiters.setdefault(topic, set()).add(entry)
        try:
            # A missed notification (the listener reconnecting) costs at most this fallback poll.
            with anyio.move_on_after(min(timeout, settings.current().pg_poll_s)):
                await entry[1].wait()
        finally:
            with self._waiters_lock:
                self._waiters.get(topic, set()).discard(entry)

    def _listen(self) -> None:
        if self._listener is None:
            self._listener = threading.Thread(target=self._listen_loop, name="mcp-guard-listen", daemon=True)
            self._listener.start()

    def _listen_loop(self) -> None:
        while not self._closed:
            try:
                with self._psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {self.CHANNEL}")
                    while not self._closed:
                        for note in conn.notifies(timeout=1.0):
                            self._wake(note.payload)
            except self._psycopg.Error as exc:
                logger.warning("listening for store changes at %s failed (%s); retrying", self.where, exc)
                time.sleep(1.0)

    def _wake(self, topic: str) -> None:
        with self._waiters_lock:
            waiting = list(self._waiters.get(topic, ()))
        for token, event in waiting:
            try:
                anyio.from_thread.run_sync(event.set, token=token)
            except RuntimeError:
                pass  # that event loop has ended

    def close(self) -> None:
        self._closed = True
        self._db.close()


class _PgConnection:
    """What ``transaction()`` yields: ``execute`` with our SQL, as on a sqlite3 connection."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._store._db.execute(self._store._translate(sql), params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._store._db.cursor() as cursor:
            cursor.executemany(self._store._translate(sql), rows)

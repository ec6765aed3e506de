"""The audit trail: append-only records, each carrying the SHA-256 of the one before.

``hash = sha256(prev_hash + canonical JSON of {seq, ts, kind, body})``. Editing, deleting,
inserting or reordering any record breaks a link that :func:`verify` names. Cutting records off
the end leaves a shorter chain that still links; to catch that, the head is sealed every
``SEAL_EVERY`` records with an HMAC under a key in ``MCP_GUARD_HOME`` (``audit.key``), and
``verify`` fails when the chain no longer reaches a sealed head.

Records hold no raw sensitive values: callers pass masked data and digests only.

A running guard does not chain its call records on the call's path. :meth:`Audit.record`
appends the record as one line to the process's spool file (a single ``write``: it survives the
process being killed) and a writer thread chains spooled records into the store in batches,
one transaction each. Any process may fold any spool (a reader does so before it reads, and a
guard at start folds those of guards that died): each spool's last folded line is kept in the
store and checked in the folding transaction, so no record is chained twice or lost. A spool
whose owner is gone (its ``flock`` is free) is deleted once folded.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import Store, StoreError, guard_home

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
SEAL_EVERY = 100

__all__ = ["Audit", "Problem", "digest"]


@dataclass(frozen=True)
class Problem:
    seq: int | None
    reason: str


def _canonical(seq: int, ts: float, kind: str, body: Any) -> bytes:
    return json.dumps({"seq": seq, "ts": ts, "kind": kind, "body": body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev: str, seq: int, ts: float, kind: str, body: Any) -> str:
    return hashlib.sha256(prev.encode() + _canonical(seq, ts, kind, body)).hexdigest()


def load_key(home: Path | None = None, name: str = "audit.key") -> bytes:
    """A key file of the home, readable by the owner only; created on first use.

    The key is written to a private temporary file and linked into place, so a key file is
    never seen half-written and, when guards start together, one key wins and all use it."""
    path = (home or guard_home()) / name
    for _ in range(3):
        try:
            key = bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            _create_key(path)
            continue
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read the key at {path}: {exc}") from exc
        if len(key) < 16:
            raise StoreError(f"the key at {path} is damaged (too short); restore it from a backup")
        return key
    raise StoreError(f"cannot create the key at {path}")


def _create_key(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_bytes(32).hex())
        try:
            os.link(partial, path)  # fails if another process was first: its key is the key
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    except OSError as exc:
        raise StoreError(f"cannot create the key at {path}: {exc}") from exc


def digest(key: bytes, value: Any) -> str:
    """A keyed digest (BLAKE2b-128) of a (masked) value: proves what was seen without storing it."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return hashlib.blake2b(data, digest_size=16, key=key[:64]).hexdigest()


class Audit:
    def __init__(self, store: Store, key: bytes | None = None) -> None:
        self.store = store
        self.key = key if key is not None else load_key(store.home)
        self.spool: Spool | None = None

    def append(self, kind: str, body: dict[str, Any]) -> int:
        """Chain one record now; returns its sequence number. Raises StoreError if it cannot be written."""
        with self.store.transaction() as db:
            return self._chain(db, [(round(time.time(), 6), kind, body)])

    def record(self, kind: str, body: dict[str, Any]) -> str:
        """Keep one record: spooled when this process has a spool, else chained now. Returns its id."""
        if self.spool is not None:
            return self.spool.write(kind, body)
        return str(self.append(kind, body))

    def _chain(self, db: Any, entries: list[tuple[float, str, Any]]) -> int:
        row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0], row[1]) if row else (0, GENESIS)
        rows = []
        for ts, kind, body in entries:
            seq += 1
            prev_hash, prev = prev, link(prev, seq, ts, kind, body)
            rows.append((seq, ts, kind, json.dumps(body, sort_keys=True, ensure_ascii=False), prev_hash, prev))
            if seq % SEAL_EVERY == 0:
                self._seal_row(db, seq, prev)
        db.executemany("INSERT INTO audit (seq, ts, kind, body, prev, hash) VALUES (?,?,?,?,?,?)", rows)
        return seq

    def seal(self) -> int | None:
        """Seal the current head now (also done every SEAL_EVERY records)."""
        with self.store.transaction() as db:
            row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            if row is None:
                return None
            self._seal_row(db, row[0], row[1])
            return int(row[0])

    def _seal_mac(self, seq: int, head: str) -> str:
        return hmac.new(self.key, f"{seq}:{head}".encode(), hashlib.sha256).hexdigest()

    def _seal_row(self, db: Any, seq: int, head: str) -> None:
        mac = self._seal_mac(seq, head)
        db.execute(
            "INSERT INTO audit_heads (seq, hash, ts, mac) VALUES (?,?,?,?)"
            " ON CONFLICT (seq) DO UPDATE SET hash=excluded.hash, ts=excluded.ts, mac=excluded.mac",
            (seq, head, time.time(), mac),
        )

    # -- spools ---------------------------------------------------------------------------------

    def spool_dir(self) -> Path:
        return self.store.home / "audit-spool"

    def start_spool(self) -> Spool:
        """Spool this process's records from now on (a guard serving calls)."""
        self.fold_spools()
        self.spool = Spool(self, self.spool_dir())
        return self.spool

    def fold(self, name: str, entries: list[dict[str, Any]]) -> int:
        """Chain the entries of spool ``name`` not chained yet, in one transaction."""
        with self.store.transaction() as db:
            row = db.execute("SELECT folded FROM audit_spools WHERE name=?", (name,)).fetchone()
            done = row[0] if row else 0
            todo = [e for e in entries if e["n"] > done]
            if not todo:
                return 0
            self._chain(db, [(e["ts"], e["kind"], e["body"]) for e in todo])
            db.execute(
                "INSERT INTO audit_spools (name, folded) VALUES (?,?) ON CONFLICT (name) DO UPDATE SET folded=excluded.folded",
                (name, todo[-1]["n"]),
            )
        return len(todo)

    def fold_spools(self) -> int:
        """Chain what every spool in the home holds; delete the spools of processes that are gone."""
        folded = 0
        directory = self.spool_dir()
        for path in sorted(directory.glob("*.jsonl")) if directory.is_dir() else ():
            if self.spool is not None and path == self.spool.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # its owner closed it meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    gone = True
                except BlockingIOError:
                    gone = False  # a live guard: fold what is there, leave the file to it
                with os.fdopen(os.dup(fd), "rb") as spool_file:
                    entries = _read_spool(spool_file.read(), path)
                name = path.stem
                count = self.fold(name, entries)
                folded += count
                if gone:
                    if count:
                        logger.warning("chained %d audit records left by a guard that stopped (%s)", count, name)
                    self.forget_spool(path)
            finally:
                os.close(fd)
        return folded

    def forget_spool(self, path: Path) -> None:
        """A spool whose every line is chained: its file and its row go."""
        path.unlink(missing_ok=True)
        self.store.execute("DELETE FROM audit_spools WHERE name=?", (path.stem,))

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def records(self, since: float | None = None, until: float | None = None) -> Iterator[dict[str, Any]]:
        sql, args = "SELECT seq, ts, kind, body, prev, hash FROM audit", []
        where = []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts <= ?")
            args.append(until)
        if where:
            sql += " WHERE " + " AND ".join(where)
        for row in self.store.query(sql + " ORDER BY seq", tuple(args)):
            yield {"seq": row["seq"], "ts": row["ts"], "kind": row["kind"], "body": json.loads(row["body"]), "prev": row["prev"], "hash": row["hash"]}

    def verify(self) -> Problem | None:
        """None when the chain is whole; else the first record where it breaks, and why."""
        prev, expected_seq, last_seq = GENESIS, 1, 0
        hashes: dict[int, str] = {}
        for row in self.store.query("SELECT seq, ts, kind, body, prev, hash FROM audit ORDER BY seq"):
            seq = row["seq"]
            if seq != expected_seq:
                return Problem(seq, f"record {seq} follows record {expected_seq - 1}: a record was deleted, inserted or moved")
            if row["prev"] != prev:
                return Problem(seq, f"record {seq} does not link to the record before it: records were removed, inserted or reordered")
            try:
                body = json.loads(row["body"])
            except ValueError:
                return Problem(seq, f"record {seq} is not valid JSON: it was edited")
            if link(prev, seq, row["ts"], row["kind"], body) != row["hash"]:
                return Problem(seq, f"record {seq} does not match its hash: it was edited")
            prev, expected_seq, last_seq = row["hash"], seq + 1, seq
            hashes[seq] = row["hash"]
        for head in self.store.query("SELECT seq, hash, mac FROM audit_heads ORDER BY seq"):
            if not hmac.compare_digest(self._seal_mac(head["seq"], head["hash"]), head["mac"]):
                return Problem(head["seq"], f"the seal of record {head['seq']} is not valid: the seals were tampered with")
            if head["seq"] > last_seq:
                return Problem(last_seq + 1, f"the chain ends at record {last_seq}, but record {head['seq']} was sealed: records were cut off the end")
            if hashes.get(head["seq"]) != head["hash"]:
                return Problem(head["seq"], f"record {head['seq']} differs from the sealed one")
        return None


def _read_spool(data: bytes, path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in data.split(b"\n")[:-1]:  # a last line without its newline is still being written
        try:
            entry = json.loads(line)
            if isinstance(entry, dict) and isinstance(entry.get("n"), int) and isinstance(entry.get("kind"), str):
                entries.append(entry)
                continue
        except ValueError:
            pass
        logger.error("skipped a damaged line in the audit spool %s", path)
    return entries


class Spool:
    """This process's audit records on their way into the chain (see the module's docstring)."""

    ROTATE_BYTES = 8 * 1024 * 1024
    BATCH_S = 0.02

    def __init__(self, audit: Audit, directory: Path) -> None:
        self.audit = audit
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = directory / f"{self.name}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # held while this process lives: readers know it is alive
        self._n = 0
        self._folded = 0
        self._pending: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._error: str | None = None
        self._closing = False
        self._urgent = False
        self._thread = threading.Thread(target=self._run, name="mcp-guard-audit", daemon=True)
        self._thread.start()

    def write(self, kind: str, body: dict[str, Any]) -> str:
        """Spool one record; raises StoreError while the store refuses records (fail closed)."""
        if self._error is not None:
            raise StoreError(f"the audit trail cannot be written ({self._error}), so calls are not run")
        with self._cond:
            self._n += 1
            entry = {"n": self._n, "ts": round(time.time(), 6), "kind": kind, "body": body}
            data = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            try:
                written = os.write(self._fd, data)
            except OSError as exc:
                self._n -= 1
                raise StoreError(f"cannot write the audit spool {self.path}: {exc}") from exc
            if written != len(data):  # a full disk: the line is torn; never run the call
                self._n -= 1
                raise StoreError(f"cannot write the audit spool {self.path}: short write")
            self._pending.append(entry)
            if len(self._pending) == 1:
                self._cond.notify()  # only the first of a batch: the writer then waits for more
        return f"{self.name}:{entry['n']}"

    @property
    def backlog(self) -> int:
        """Records spooled and not chained yet."""
        return self._n - self._folded

    @property
    def failing(self) -> bool:
        return self._error is not None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything spooled so far is chained."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._n
            self._urgent = True
            self._cond.notify_all()
            while self._folded < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._closing and not self._urgent:
                    # Let records gather: one transaction for many, and this thread takes the
                    # interpreter from the calls' path once per batch, not once per record.
                    self._cond.wait(self.BATCH_S)
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
                self._urgent = False
            try:
                self.audit.fold(self.name, batch)
            except Exception as exc:  # the store is down or locked: keep the records, refuse calls
                logger.error("cannot chain %d audit records: %s", len(batch), exc)
                with self._cond:
                    self._error = str(exc)
                    self._pending[:0] = batch
                    if self._closing:
                        return  # the spool file keeps them; the next reader or guard chains them
                time.sleep(0.5)
                continue
            with self._cond:
                self._error = None
                self._folded = batch[-1]["n"]
                if not self._pending and os.fstat(self._fd).st_size > self.ROTATE_BYTES:
                    os.ftruncate(self._fd, 0)  # all chained; lines are numbered, so folding stays exact
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        with self._cond:
            clean = not self._pending and self._error is None
        if clean:
            try:
                self.audit.forget_spool(self.path)
            except (OSError, StoreError) as exc:
                logger.warning("could not remove the audit spool %s: %s", self.path, exc)
        os.close(self._fd)


def export(records: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    if fmt == "jsonl":
        for record in records:
            yield json.dumps(record, ensure_ascii=False) + "\n"
        return
    columns = ["seq", "time", "kind", "session", "user", "server", "tool", "risk", "rule", "decision", "approver", "reason", "grant", "outcome", "latency_ms", "argument_tokens", "result_tokens", "hash"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield buffer.getvalue()
    for record in records:
        body = record["body"]
        buffer.seek(0)
        buffer.truncate()
        row = {"seq": record["seq"], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record["ts"])), "kind": record["kind"], "hash": record["hash"], **body}
        writer.writerow([row.get(c, "") for c in columns])
        yield buffer.getvalue()

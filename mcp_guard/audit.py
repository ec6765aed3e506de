"""The audit trail: append-only records, each carrying the SHA-256 of the one before.

``hash = sha256(prev_hash + canonical JSON of {seq, ts, kind, body})``. Editing, deleting,
inserting or reordering any record breaks a link that :func:`verify` names. Cutting records off
the end leaves a shorter chain that still links; to catch that, the head is sealed every
``SEAL_EVERY`` records with an HMAC under a key in ``MCP_GUARD_HOME`` (``audit.key``), and
``verify`` fails when the chain no longer reaches a sealed head.

Records hold no raw sensitive values: callers pass masked data and digests only.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import Store, StoreError, guard_home

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
    """A key file of the home (created on first use, readable by the owner only)."""
    path = (home or guard_home()) / name
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key.hex())
        return key
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read the audit key at {path}: {exc}") from exc


def digest(key: bytes, value: Any) -> str:
    """A keyed digest of a (masked) value: proves what was seen without storing it."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


class Audit:
    def __init__(self, store: Store, key: bytes | None = None) -> None:
        self.store = store
        self.key = key if key is not None else load_key(store.path.parent)

    def append(self, kind: str, body: dict[str, Any]) -> int:
        """Add one record; returns its sequence number. Raises StoreError if it cannot be written."""
        ts = round(time.time(), 6)
        try:
            with self.store.transaction() as db:
                row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
                db.execute(
                    "INSERT INTO audit (seq, ts, kind, body, prev, hash) VALUES (?,?,?,?,?,?)",
                    (seq, ts, kind, json.dumps(body, sort_keys=True, ensure_ascii=False), prev, link(prev, seq, ts, kind, body)),
                )
                if seq % SEAL_EVERY == 0:
                    self._seal(db, seq)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the audit record: {exc}") from exc
        return seq

    def seal(self) -> int | None:
        """Seal the current head now (also done every SEAL_EVERY records)."""
        with self.store.transaction() as db:
            row = db.execute("SELECT seq FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            if row is None:
                return None
            self._seal(db, row[0])
            return int(row[0])

    def _seal(self, db: sqlite3.Connection, seq: int) -> None:
        head = db.execute("SELECT hash FROM audit WHERE seq=?", (seq,)).fetchone()[0]
        ts = time.time()
        mac = hmac.new(self.key, f"{seq}:{head}".encode(), hashlib.sha256).hexdigest()
        db.execute("INSERT OR REPLACE INTO audit_heads (seq, hash, ts, mac) VALUES (?,?,?,?)", (seq, head, ts, mac))

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
        for row in self.store.query("SELECT seq, ts, kind, body, prev, hash FROM audit ORDER BY rowid"):
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
            mac = hmac.new(self.key, f"{head['seq']}:{head['hash']}".encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, head["mac"]):
                return Problem(head["seq"], f"the seal of record {head['seq']} is not valid: the seals were tampered with")
            if head["seq"] > last_seq:
                return Problem(last_seq + 1, f"the chain ends at record {last_seq}, but record {head['seq']} was sealed: records were cut off the end")
            if hashes.get(head["seq"]) != head["hash"]:
                return Problem(head["seq"], f"record {head['seq']} differs from the sealed one")
        return None


def export(records: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    if fmt == "jsonl":
        for record in records:
            yield json.dumps(record, ensure_ascii=False) + "\n"
        return
    columns = ["seq", "time", "kind", "session", "user", "server", "tool", "risk", "rule", "decision", "approver", "reason", "grant", "outcome", "latency_ms", "hash"]
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

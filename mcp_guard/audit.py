"""The audit trail: append-only records, each carrying the SHA-256 of the one before.

``hash = sha256(prev_hash + canonical JSON of {seq, ts, kind, body})``. Editing, deleting,
inserting or reordering any record breaks a link that :func:`verify` names. Cutting records off
the end leaves a shorter chain that still links; to catch that, the head is sealed with an HMAC
under a key in ``MCP_GUARD_HOME`` (``audit.key``) at every close, every ``SEAL_EVERY`` records
and at most ``SEAL_INTERVAL_S`` after a record arrives, and ``verify`` fails when the chain no
longer reaches a sealed head. Someone who can rewrite the store and the key can rewrite the
seals too: ``audit head`` prints the sealed head for keeping elsewhere, and ``verify --expect``
proves the chain still holds it. Each seal is also written to ``audit.head`` beside the key, so
cutting whole sessions with their seals out of the store is caught without an outside anchor by
anyone who lacks the key. The key is never silently made anew while records exist.

Each spool is announced in the chain when it opens (``audit.spool_opened``) and when it is done
(``audit.spool_closed``), so a spool that vanished before its records were chained is named.

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
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audit_spool import read_spool, spool_prefix
from .owner_only import write_own
from .scrub import scrub_body
from .store import Store, StoreError, guard_home

if TYPE_CHECKING:
    from .audit_spool import Spool

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
SEAL_EVERY = 100
# A record is sealed no later than this after it was chained (a running guard's writer seals).
SEAL_INTERVAL_S = 2.0
# The newest sealed head, also kept outside the store (beside audit.key): "SEQ:HASH:HMAC".
HEAD_FILE = "audit.head"

__all__ = ["Audit", "KeyMissing", "Problem", "digest", "parse_head"]


@dataclass(frozen=True)
class Problem:
    seq: int | None
    reason: str


_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _canonical(seq: int, ts: float, kind: str, body: Any) -> bytes:
    return _canonical_json({"seq": seq, "ts": ts, "kind": kind, "body": body}).encode()


def link(prev: str, seq: int, ts: float, kind: str, body: Any) -> str:
    return hashlib.sha256(prev.encode() + _canonical(seq, ts, kind, body)).hexdigest()


def _link_encoded(prev: str, seq: int, ts: float, kind: str, body_json: str) -> str:
    """:func:`link` from the body's canonical JSON, already made (it is also what the store keeps):
    the same bytes, as the sorted keys put ``body`` first, then ``kind``, ``seq`` and ``ts``."""
    tail = f',"kind":{_canonical_json(kind)},"seq":{_canonical_json(seq)},"ts":{_canonical_json(ts)}}}'
    return hashlib.sha256(f'{prev}{{"body":{body_json}{tail}'.encode()).hexdigest()


def load_key(home: Path | None = None, name: str = "audit.key", create: bool = True) -> bytes:
    """A key file of the home, readable by the owner only; created on first use (``create``).

    The key is written to a private temporary file and linked into place, so a key file is
    never seen half-written and, when guards start together, one key wins and all use it."""
    path = (home or guard_home()) / name
    for _ in range(3):
        try:
            key = bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            if not create:
                raise
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


# Built once: ``json.dumps`` with options makes a new encoder on every call (twice a tool call here).
_digest_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode


def digest(key: bytes, value: Any) -> str:
    """A keyed digest (BLAKE2b-128) of a (masked) value: proves what was seen without storing it."""
    return hashlib.blake2b(_digest_json(value).encode(), digest_size=16, key=key[:64]).hexdigest()


class KeyMissing(StoreError):
    """The seal key is gone while the chain has records: the seals cannot be checked."""


class Audit:
    def __init__(self, store: Store, key: bytes | None = None, create_key: bool = True) -> None:
        self.store = store
        if key is not None:
            self.key, self.key_existed = key, True
        else:
            self.key, self.key_existed = _key_for(store, create_key)
        self.spool: Spool | None = None
        self._sealed_at = float("-inf")  # when this process last sealed the head
        self.unsealed = False  # records chained here since that seal
        self._unpublished: tuple[int, str, str] | None = None  # sealed in a transaction, not yet in HEAD_FILE

    def append(self, kind: str, body: dict[str, Any]) -> int:
        """Chain one record now; returns its sequence number. Raises StoreError if it cannot be written."""
        with self.store.transaction() as db:
            seq = self._chain(db, [(round(time.time(), 6), kind, scrub_body(body))])
        self._publish_head()
        return seq

    def append_within(self, db: Any, kind: str, body: dict[str, Any]) -> int:
        """Chain one record inside the caller's open transaction ``db``: it is kept exactly when
        what the caller writes beside it is (a decision is never made without its record).
        Call ``published()`` once that transaction has committed."""
        return self._chain(db, [(round(time.time(), 6), kind, scrub_body(body))])

    def published(self) -> None:
        """After a transaction that chained records through ``append_within`` committed."""
        self._publish_head()

    def record(self, kind: str, body: dict[str, Any]) -> str:
        """Keep one record: spooled when this process has a spool, else chained now. Returns its id."""
        if self.spool is not None:
            return self.spool.write(kind, scrub_body(body))
        return str(self.append(kind, body))

    def _chain(self, db: Any, entries: list[tuple[float, str, Any]]) -> int:
        if not self.key:
            # A reader opened without a key (an empty home) must not start a chain no seal can check.
            raise StoreError(f"the audit in {self.store.where} was opened read-only; nothing was recorded")
        row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0], row[1]) if row else (0, GENESIS)
        rows = []
        for ts, kind, body in entries:
            seq += 1
            body_json = _canonical_json(body)  # encoded once: hashed in the link and kept as the row's body
            prev_hash, prev = prev, _link_encoded(prev, seq, ts, kind, body_json)
            rows.append((seq, ts, kind, body_json, prev_hash, prev))
            if seq % SEAL_EVERY == 0:
                self._seal_row(db, seq, prev)
        db.executemany("INSERT INTO audit (seq, ts, kind, body, prev, hash) VALUES (?,?,?,?,?,?)", rows)
        if rows and seq % SEAL_EVERY:
            if time.monotonic() - self._sealed_at >= SEAL_INTERVAL_S:
                self._seal_row(db, seq, prev)  # the first record after a quiet spell is sealed at once
            else:
                self.unsealed = True  # sealed by the writer (or at close) within SEAL_INTERVAL_S
        return seq

    def seal(self) -> int | None:
        """Seal the current head now (also done at close, every SEAL_EVERY records and every few seconds)."""
        with self.store.transaction() as db:
            row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            if row is None:
                return None
            self._seal_row(db, row[0], row[1])
        self._publish_head()
        return int(row[0])

    def head(self) -> tuple[int, str] | None:
        """The newest sealed head (seq, hash), or None when nothing was sealed."""
        rows = self.store.query("SELECT seq, hash FROM audit_heads ORDER BY seq DESC LIMIT 1")
        return (int(rows[0]["seq"]), str(rows[0]["hash"])) if rows else None

    def seal_due(self) -> float | None:
        """Seconds until the unsealed records must be sealed (0: now), or None when all are sealed."""
        if not self.unsealed:
            return None
        return max(0.0, SEAL_INTERVAL_S - (time.monotonic() - self._sealed_at))

    def _seal_mac(self, seq: int, head: str) -> str:
        return hmac.new(self.key, f"{seq}:{head}".encode(), hashlib.sha256).hexdigest()

    def _seal_row(self, db: Any, seq: int, head: str) -> None:
        self._sealed_at = time.monotonic()
        self.unsealed = False
        mac = self._seal_mac(seq, head)
        db.execute(
            "INSERT INTO audit_heads (seq, hash, ts, mac) VALUES (?,?,?,?)"
            " ON CONFLICT (seq) DO UPDATE SET hash=excluded.hash, ts=excluded.ts, mac=excluded.mac",
            (seq, head, time.time(), mac),
        )
        self._unpublished = (seq, head, mac)

    def _publish_head(self) -> None:
        """After the sealing transaction committed: the sealed head also goes to HEAD_FILE.

        A file beside audit.key, outside the store: cutting whole sessions off the store together
        with their seals no longer leaves a chain that verifies, unless the file is rewritten too,
        which needs the key for its HMAC. Never lowered: a slower guard does not undo a newer head."""
        if self._unpublished is None:
            return
        seq, head, mac = self._unpublished
        self._unpublished = None
        path = self.store.home / HEAD_FILE
        current = _read_head_file(path)
        if current is not None and self._seal_mac(current[0], current[1]) == current[2]:
            if current[0] > seq:
                return
            held = self.store.query("SELECT hash FROM audit WHERE seq=?", (current[0],))
            if not held or held[0]["hash"] != current[1]:
                # The chain no longer holds the head this file proves (the store was deleted or
                # replaced): keep the proof, so verify goes on saying so, rather than seal over it.
                logger.error("the audit chain no longer holds the sealed head in %s (record %d); it is kept as evidence", path, current[0])
                return
        try:
            write_own(path, f"{seq}:{head}:{mac}\n".encode(), sync=True)
        except OSError as exc:
            logger.error("could not write the sealed audit head to %s: %s", path, exc)

    # -- spools ---------------------------------------------------------------------------------

    def spool_dir(self) -> Path:
        return self.store.home / "audit-spool"

    def start_spool(self) -> Spool:
        """Spool this process's records from now on (a guard serving calls)."""
        from .audit_spool import Spool

        self.fold_spools()
        self.spool = Spool(self, self.spool_dir())
        return self.spool

    def spool_closed(self, name: str, records: int, by: str) -> None:
        self.append("audit.spool_closed", {"spool": name, "records": records, "by": by})

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
        self._publish_head()
        return len(todo)

    def fold_spools(self) -> int:
        """Chain what every spool in the home holds; delete the spools of processes that are gone."""
        folded = 0
        # Every guard announces its spool in the chain before writing to it: a spool never
        # announced holds records nobody sealed; verify names it, and it is never chained.
        announced, _ = self._spools()
        for path in announced:
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
                    entries = read_spool(spool_file.read(), path)
                name = path.stem
                count = self.fold(name, entries)
                folded += count
                if gone:
                    if count:
                        logger.warning("chained %d audit records left by a guard that stopped (%s)", count, name)
                    self.spool_closed(name, entries[-1]["n"] if entries else 0, "recovery")
                    self.forget_spool(path)
            finally:
                os.close(fd)
        return folded

    def _spools(self) -> tuple[list[Path], list[Path]]:
        """The spool files in this home: those a chained announcement vouches for, and the others."""
        directory = self.spool_dir()
        paths = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
        if not paths:
            return [], []
        rows = self.store.query("SELECT body FROM audit WHERE kind='audit.spool_opened'")
        names = {str(json.loads(row["body"]).get("spool")) for row in rows}
        return [p for p in paths if p.stem in names], [p for p in paths if p.stem not in names]

    def unannounced_spools(self) -> list[str]:
        """Spool files in this home with records that no chained announcement vouches for."""
        _, unannounced = self._spools()
        return [path.name for path in unannounced if _holds_bytes(path)]

    def forget_spool(self, path: Path) -> None:
        """A spool whose every line is chained: its file and its row go."""
        path.unlink(missing_ok=True)
        self.store.execute("DELETE FROM audit_spools WHERE name=?", (path.stem,))

    def close(self) -> None:
        """Stop the spool's writer and seal the head: the last records cannot be cut unseen."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        try:
            self.seal()
        except StoreError as exc:
            logger.error("could not seal the audit head at close: %s", exc)

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

    def verify(self, expect: tuple[int, str] | None = None) -> Problem | None:
        """None when the chain is whole; else the first record where it breaks, and why.

        ``expect`` (seq, hash): a head printed by ``audit head`` and kept elsewhere; the chain
        must still hold it (catches cutting below it and wholesale replacement)."""
        prev, expected_seq, last_seq = GENESIS, 1, 0
        hashes: dict[int, str] = {}
        spools: dict[str, int] = {}  # announced and not closed: name -> the announcing record
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
            _track_spool(spools, seq, row["kind"], body)
        return (
            self._check_heads(hashes, last_seq)
            or self._check_head_file(hashes, last_seq)
            or _check_expected(hashes, last_seq, expect)
            or self._check_spools(spools)
            or self._check_unannounced()
        )

    def _check_unannounced(self) -> Problem | None:
        stray = self.unannounced_spools()
        if stray:
            return Problem(None, f"the spool {stray[0]} in {self.spool_dir()} was never announced in the chain: "
                                 "its records were not written by a guard of this home, and were not chained")
        return None

    def _check_heads(self, hashes: dict[int, str], last_seq: int) -> Problem | None:
        heads = self.store.query("SELECT seq, hash, mac FROM audit_heads ORDER BY seq")
        if last_seq == 0 and not heads and self.key_existed:
            # A guard writes its first record as soon as it makes the key: records were expected.
            return Problem(None, "the chain is empty, but this home's audit key exists: its records were removed")
        for head in heads:
            if not hmac.compare_digest(self._seal_mac(head["seq"], head["hash"]), head["mac"]):
                return Problem(head["seq"], f"the seal of record {head['seq']} is not valid: the seals were tampered with")
            if head["seq"] > last_seq:
                return Problem(last_seq + 1, f"the chain ends at record {last_seq}, but record {head['seq']} was sealed: records were cut off the end")
            if hashes.get(head["seq"]) != head["hash"]:
                return Problem(head["seq"], f"record {head['seq']} differs from the sealed one")
        return None

    def _check_head_file(self, hashes: dict[int, str], last_seq: int) -> Problem | None:
        """The chain must reach the head last sealed to HEAD_FILE (see :meth:`_publish_head`)."""
        path = self.store.home / HEAD_FILE
        sealed = _read_head_file(path)
        if sealed is None:
            # A shared (PostgreSQL) chain may be sealed only by other hosts: there, a missing file proves nothing.
            if last_seq and self.key and getattr(self.store, "dialect", "sqlite") == "sqlite":
                return Problem(None, f"the chain has {last_seq} records, but the sealed head file {path} is missing "
                                     "or unreadable: it was removed, perhaps with records cut off the end")
            return None
        seq, head, mac = sealed
        if not hmac.compare_digest(self._seal_mac(seq, head), mac):
            return Problem(seq, f"the sealed head in {path} is not valid: it was tampered with")
        if seq > last_seq:
            return Problem(last_seq + 1, f"the chain ends at record {last_seq}, but record {seq} was sealed "
                                         f"(in {path.name}): records and their seals were cut off the end")
        if hashes.get(seq) != head:
            return Problem(seq, f"record {seq} differs from the head sealed in {path.name}")
        return None

    def _check_spools(self, spools: dict[str, int]) -> Problem | None:
        """A spool of this home announced, never closed, and gone: its unchained records are lost.

        Another home's spools (another host's, or another instance's on this host) are its
        guard's to fold; from here they cannot be seen, so they prove nothing either way."""
        mine = spool_prefix(self.spool_dir())
        for name, seq in sorted(spools.items(), key=lambda item: item[1]):
            ours = name.startswith(mine) or _unowned_spool_name(name)
            if ours and not (self.spool_dir() / f"{name}.jsonl").exists():
                return Problem(seq, f"the audit spool {name} (opened at record {seq}) vanished before it was closed: "
                                    "records in it may be lost")
        return None


def _unowned_spool_name(name: str) -> bool:
    """A spool of this host named before names said whose home it was ("HOST-PID-HEX"): checked
    as this home's, as it was then."""
    return re.fullmatch(re.escape(socket.gethostname()) + r"-\d+-[0-9a-f]{8}", name) is not None


def _read_head_file(path: Path) -> tuple[int, str, str] | None:
    """(seq, hash, mac) from HEAD_FILE, or None when it is missing or not one."""
    try:
        seq, head, mac = path.read_text().strip().split(":")
        return int(seq), head, mac
    except (OSError, ValueError):
        return None


def _track_spool(spools: dict[str, int], seq: int, kind: str, body: Any) -> None:
    name = body.get("spool") if isinstance(body, dict) else None
    if not isinstance(name, str):
        return
    if kind == "audit.spool_opened":
        spools[name] = seq
    elif kind == "audit.spool_closed":
        spools.pop(name, None)


def _check_expected(hashes: dict[int, str], last_seq: int, expect: tuple[int, str] | None) -> Problem | None:
    if expect is None:
        return None
    seq, head = expect
    if seq > last_seq:
        return Problem(last_seq + 1, f"the chain ends at record {last_seq}, but the expected head is record {seq}: "
                                     "records were cut off or the chain replaced")
    if hashes.get(seq) != head:
        return Problem(seq, f"record {seq} is not the expected head {seq}:{head[:16]}…: the chain was rewritten")
    return None


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as printed by ``audit head``; ValueError when it is not one."""
    seq, sep, head = text.strip().partition(":")
    hexdigits = set("0123456789abcdef")
    if not sep or not seq.isdigit() or int(seq) < 1 or len(head) != 64 or not set(head) <= hexdigits:
        raise ValueError(f"not a sealed head (SEQ:HASH, e.g. 42:{'0' * 64}): {text!r}")
    return int(seq), head


def _key_for(store: Store, create: bool = True) -> tuple[bytes, bool]:
    """The seal key and whether it existed before. A missing key is made only for an empty chain.

    With records present a new key would make every seal look forged, and a silently made one
    would hide that the old was removed: the guard stops and says how to recover instead."""
    path = store.home / "audit.key"
    try:
        return load_key(store.home, create=False), True
    except FileNotFoundError:
        pass
    rows = store.query("SELECT COUNT(*) AS n FROM audit")
    count = int(rows[0]["n"]) if rows else 0
    if count:
        raise KeyMissing(
            f"the audit key {path} is missing, but the audit chain in {store.where} has {count} records. "
            "Restore audit.key from a backup of this home (without it the seals cannot be checked); "
            "mcp-guard never makes a new key while records exist. To start a new chain on purpose, "
            "move the store and the audit-spool folder aside first"
        )
    if not create:
        return b"", False
    return load_key(store.home), False


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
        writer.writerow([_cell(row.get(c, "")) for c in columns])
        yield buffer.getvalue()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a string from a call that starts like a formula
    (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) gets a leading quote, and control characters (an ANSI
    escape in a tool name) are written as ``\\xNN``."""
    if not isinstance(value, str):
        return value
    value = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _holds_bytes(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False

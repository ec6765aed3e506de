"""A running guard's audit spool: records on their way into the chain (see mcp_guard.audit)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .store import StoreError

if TYPE_CHECKING:
    from .audit import Audit

logger = logging.getLogger(__name__)

_line_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # built once, not per record


def read_spool(data: bytes, path: Path) -> list[dict[str, Any]]:
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


def spool_prefix(directory: Path) -> str:
    """How the names of the spools in ``directory`` start: this host, then a tag of that folder.

    Several instances on one host, each with a home of its own, share one chain in PostgreSQL;
    the tag lets each tell its own spools (which it can check for) from its neighbours'."""
    folder = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{folder}-"


class Spool:
    """This process's audit records on their way into the chain (see the module's docstring)."""

    ROTATE_BYTES = 8 * 1024 * 1024
    BATCH_S = 0.02

    def __init__(self, audit: Audit, directory: Path) -> None:
        self.audit = audit
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.name = f"{spool_prefix(directory)}{os.getpid()}-{secrets.token_hex(4)}"
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
        # Announced before anything is spooled: a spool that vanishes unchained is then named by verify.
        audit.append("audit.spool_opened", {"spool": self.name})
        self._thread = threading.Thread(target=self._run, name="mcp-guard-audit", daemon=True)
        self._thread.start()

    def write(self, kind: str, body: dict[str, Any]) -> str:
        """Spool one record; raises StoreError while the store refuses records (fail closed)."""
        if self._error is not None:
            raise StoreError(f"the audit trail cannot be written ({self._error}), so calls are not run")
        with self._cond:
            self._n += 1
            entry = {"n": self._n, "ts": round(time.time(), 6), "kind": kind, "body": body}
            data = (_line_json(entry) + "\n").encode()
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
                seal_now = self._idle()
                if not seal_now:
                    if not self._closing and not self._urgent:
                        # Let records gather: one transaction for many, and this thread takes the
                        # interpreter from the calls' path once per batch, not once per record.
                        self._cond.wait(self.BATCH_S)
                    if not self._pending:
                        return
                    batch, self._pending = self._pending, []
                    self._urgent = False
            if seal_now:
                self._seal()
            elif self._fold(batch):
                return

    def _idle(self) -> bool:
        """Wait for records; True when, meanwhile, the chained ones are due to be sealed."""
        while not self._pending and not self._closing:
            due = self.audit.seal_due()
            if due is not None and due <= 0:
                return True
            self._cond.wait(due)
        return False

    def _seal(self) -> None:
        try:
            self.audit.seal()
        except Exception as exc:  # the store is down: the records stay chained, sealed later or at close
            logger.error("cannot seal the audit head: %s", exc)
            time.sleep(0.5)

    def _fold(self, batch: list[dict[str, Any]]) -> bool:
        """Chain one batch; True when the writer should stop (closing with the store down)."""
        try:
            self.audit.fold(self.name, batch)
        except Exception as exc:  # the store is down or locked: keep the records, refuse calls
            logger.error("cannot chain %d audit records: %s", len(batch), exc)
            with self._cond:
                self._error = str(exc)
                self._pending[:0] = batch
                if self._closing:
                    return True  # the spool file keeps them; the next reader or guard chains them
            time.sleep(0.5)
            return False
        with self._cond:
            self._error = None
            self._folded = batch[-1]["n"]
            if not self._pending and os.fstat(self._fd).st_size > self.ROTATE_BYTES:
                os.ftruncate(self._fd, 0)  # all chained; lines are numbered, so folding stays exact
            self._cond.notify_all()
        return False

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        with self._cond:
            clean = not self._pending and self._error is None
        if clean:
            try:
                self.audit.spool_closed(self.name, self._n, "close")  # before the file goes
                self.audit.forget_spool(self.path)
            except (OSError, StoreError) as exc:
                logger.warning("could not remove the audit spool %s: %s", self.path, exc)
        os.close(self._fd)

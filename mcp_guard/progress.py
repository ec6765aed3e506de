"""A line on stderr while something waits (a probe, an approval), for a person at a terminal.

It is for eyes only: when stderr is not a terminal (a pipe, a client's log file) it writes
nothing at all, so logs and scripts see exactly what they saw before."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """One stderr line per wait, on a terminal only: a live count of seconds while it lasts, then
    how long it took. Elsewhere (a pipe, a log file) it writes nothing at all."""

    TICK_S = 1.0

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.on = bool(getattr(self.stream, "isatty", lambda: False)())

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        if not self.on:
            yield
            return
        start = time.monotonic()
        done = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(label, start, done), daemon=True)
        self._write(f"{label} ...")
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            self._write(f"{label}: {time.monotonic() - start:.1f} s\n")

    def _tick(self, label: str, start: float, done: threading.Event) -> None:
        while not done.wait(self.TICK_S):
            self._write(f"{label} ... {time.monotonic() - start:.0f} s")

    def _write(self, text: str) -> None:
        # \r and erase-line: the live line is redrawn in place, never scrolls.
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()

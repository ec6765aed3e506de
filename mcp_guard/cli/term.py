"""What the admin commands add for a person at a terminal: colour, and a line while they wait.

Both are for eyes only. Colour goes to a stream that is a terminal when ``NO_COLOR`` is unset
(https://no-color.org); progress lines go to stderr when it is a terminal. Piped or redirected
output stays exactly as it was, so scripts and tests that read it see no escape codes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from .. import settings

__all__ = ["Progress", "painter"]

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}


def _wants_colour(stream: TextIO) -> bool:
    if settings.current().environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def painter(stream: TextIO | None = None) -> Callable[[str, str], str]:
    """``paint(text, style)``: the text in that style on a colour terminal, else the text unchanged."""
    if not _wants_colour(stream or sys.stdout):
        return lambda text, style: text
    return lambda text, style: f"\x1b[{_CODES[style]}m{text}\x1b[0m"


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

"""What the admin commands add for a person at a terminal: colour, and a line while they wait.

Both are for eyes only. Colour goes to a stream that is a terminal when ``NO_COLOR`` is unset
(https://no-color.org); progress lines go to stderr when it is a terminal. Piped or redirected
output stays exactly as it was, so scripts and tests that read it see no escape codes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from .. import settings
from ..progress import Progress

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

"""What the admin commands add for a person at a terminal: colour, tables, and a line while they wait.

All three are for eyes only. Colour goes to a stream that is a terminal when ``NO_COLOR`` is unset
(https://no-color.org); tables to a stream that is a terminal; progress lines to stderr when it is
a terminal. Piped or redirected output stays exactly as it was, so scripts and tests that read it
see no escape codes and the same lines.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, TextIO

from .. import settings
from ..progress import Progress

__all__ = ["RISK_STYLE", "STATE_STYLE", "Column", "Progress", "Table", "moment", "on_terminal", "painter", "print_records",
           "print_table", "table_lines"]

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}
_GAP = "  "
# The colour of a risk level, and of a token's or grant's state, in a table.
RISK_STYLE = {"low": "green", "medium": "yellow", "high": "red", "critical": "red"}.get
STATE_STYLE = {"live": "green", "active": "green", "expired": "dim", "revoked": "red"}.get
_NARROWEST = 6  # a cut or wrapped column keeps at least this many cells (or its title's)


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stdout) is a terminal: a person reads it, not a script."""
    return bool(getattr(stream or sys.stdout, "isatty", lambda: False)())


def _wants_colour(stream: TextIO) -> bool:
    if settings.current().environ.get("NO_COLOR"):
        return False
    return on_terminal(stream)


def painter(stream: TextIO | None = None) -> Callable[[str, str], str]:
    """``paint(text, style)``: the text in that style on a colour terminal, else the text unchanged."""
    if not _wants_colour(stream or sys.stdout):
        return lambda text, style: text
    return lambda text, style: f"\x1b[{_CODES[style]}m{text}\x1b[0m"


class Column(NamedTuple):
    """One column of a table.

    ``fit`` says what happens when the rows are wider than the terminal: ``keep`` (ids, times: never
    shortened), ``cut`` (shortened, ending in an ellipsis), ``wrap`` (continued on the next lines),
    or ``below`` (not a column at all: the whole value on a line of its own under the row, for a link
    that must stay whole). ``style`` gives a cell's colour from its text (``{"high": "red"}.get``).
    ``width`` is the least width, for rows that arrive after the widths were chosen (``audit tail -f``).
    """

    title: str
    fit: str = "cut"
    style: Callable[[str], str | None] | None = None
    right: bool = False
    width: int = 0


def _cells(char: str) -> int:
    """How many terminal cells ``char`` takes: two for wide East Asian letters, none for a mark."""
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _width(text: str) -> int:
    return sum(_cells(c) for c in text)


def _head(text: str, room: int) -> tuple[str, str]:
    """``text`` split where its first part fills at most ``room`` cells."""
    used = 0
    for i, char in enumerate(text):
        used += _cells(char)
        if used > room:
            return text[:i], text[i:]
    return text, ""


def _wrapped(text: str, room: int) -> list[str]:
    """``text`` in lines of at most ``room`` cells, broken at a space where there is one."""
    lines: list[str] = []
    while _width(text) > room:
        first, rest = _head(text, room)
        if not first:  # a wide letter in a column narrower than it: it goes on a line of its own
            first, rest = text[0], text[1:]
        space = first.rfind(" ")
        if space > 0:
            first, rest = first[:space], first[space + 1:] + rest
        lines.append(first)
        text = rest
    return [*lines, text]


def _safe(value: object) -> str:
    """A cell's text: every character that could move the cursor, clear the screen or reorder what
    follows is shown as an escape (approval.escape.one_line), whatever the command passed in."""
    from ..approval.escape import one_line

    return one_line("" if value is None else str(value))


class Table:
    """Aligned rows under a header, fitted to the terminal's width, coloured by ``painter``.

    The widths are chosen from the rows given here; :meth:`row` lays out later rows in the same
    widths, so rows printed as they come (``audit tail -f``) stay aligned with the header."""

    def __init__(self, columns: Sequence[Column], rows: Iterable[Sequence[object]] = (), stream: TextIO | None = None):
        self.columns = list(columns)
        self.paint = painter(stream)
        self._shown = [i for i, c in enumerate(self.columns) if c.fit != "below"]
        widths = {i: max(self.columns[i].width, _width(self.columns[i].title)) for i in self._shown}
        for row in rows:
            for i in self._shown:
                widths[i] = max(widths[i], _width(_safe(row[i])))
        import shutil  # only for a table: a piped listing does not load it

        self.widths = self._fitted(widths, shutil.get_terminal_size().columns)

    def _fitted(self, widths: dict[int, int], room: int) -> dict[int, int]:
        """The widths, the widest shortenable column narrowed first, until a row fits in ``room``."""
        floor = {i: max(_NARROWEST, _width(self.columns[i].title)) for i in widths}
        over = sum(widths.values()) + len(_GAP) * (len(widths) - 1) - room
        while over > 0:
            narrowable = [i for i in widths if self.columns[i].fit != "keep" and widths[i] > floor[i]]
            if not narrowable:
                break
            widest = max(narrowable, key=lambda i: widths[i])
            widths[widest] -= 1
            over -= 1
        return widths

    def header(self) -> str:
        titles = [self._cell(self.columns[i].title, i) for i in self._shown]
        return self.paint(_GAP.join(titles).rstrip(), "bold")

    def row(self, row: Sequence[object]) -> list[str]:
        """The terminal lines of one row: more than one when a cell wraps or a column goes below."""
        pieces: dict[int, list[str]] = {}
        for i in self._shown:
            text, room = _safe(row[i]), self.widths[i]
            if _width(text) <= room or self.columns[i].fit == "keep":
                pieces[i] = [text]
            elif self.columns[i].fit == "wrap":
                pieces[i] = _wrapped(text, room)
            else:
                pieces[i] = [_head(text, room - 1)[0] + "\u2026"]
        lines = []
        for n in range(max(len(p) for p in pieces.values())):
            cells = [self._cell(pieces[i][n] if n < len(pieces[i]) else "", i, row) for i in self._shown]
            lines.append(_GAP.join(cells).rstrip())
        indent = " " * (self.widths[self._shown[0]] + len(_GAP))
        below = [indent + _safe(row[i]) for i, c in enumerate(self.columns) if c.fit == "below" and row[i]]
        return lines + below

    def _cell(self, text: str, i: int, row: Sequence[object] | None = None) -> str:
        """One cell padded to its width; coloured (the text only, so the padding keeps the alignment)."""
        style = self.columns[i].style
        chosen = style(_safe(row[i])) if style and row is not None and text else None
        shown = self.paint(text, chosen) if chosen else text
        room = " " * max(0, self.widths[i] - _width(text))
        return room + shown if self.columns[i].right else shown + room


def table_lines(columns: Sequence[Column], rows: Sequence[Sequence[object]], stream: TextIO | None = None) -> list[str]:
    """The rows as a table under a header, as lines for ``stream`` (default stdout); none for no rows."""
    if not rows:
        return []
    table = Table(columns, rows, stream)
    return [table.header(), *(line for row in rows for line in table.row(row))]


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[object]], stream: TextIO | None = None) -> None:
    """The rows as a table under a header on ``stream`` (default stdout); nothing when there are none."""
    for line in table_lines(columns, rows, stream):
        print(line, file=stream or sys.stdout)


def print_records(
    records: list[dict[str, Any]], columns: Sequence[Column], row: Callable[[dict[str, Any]], Sequence[object]],
    empty: str,
) -> None:
    """Stored records as JSON for a script; for a person at a terminal, a table of ``row`` of
    each under ``columns``, or ``empty`` on stderr when there are none."""
    if not on_terminal():
        print(json.dumps(records))
        return
    if not records:
        print(empty, file=sys.stderr)
    print_table(columns, [row(record) for record in records])


def moment(ts: float | None) -> str:
    """A stored time for a table cell, in local time to the minute; ``-`` for none."""
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if isinstance(ts, (int, float)) else "-"

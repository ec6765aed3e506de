"""The normalized view: the text as a reader sees it, for the detectors, with a way back.

Text can hide a value from patterns without changing what a person (or a model) reads in it:
zero-width spaces and joiners inside a word, soft hyphens, a byte-order mark, fullwidth forms
of ASCII (ｐａｓｓｗｏｒｄ＝...), an ``@`` written ``%40``. The detectors also read this view, and
each span found in it is mapped back to the characters of the original it came from.
"""

from __future__ import annotations

import re

from .spans import Span

__all__ = ["View", "normalized"]

# URL-encoded printable ASCII but the space ("%40" for "@", "%3D" for "="): a decoded space would
# join words a URL keeps apart ("jo:a%20secret@host" holds no address "secret@host").
_PRINTABLE_ESCAPE = "%(?:2[1-9A-Fa-f]|[3-6][0-9A-Fa-f]|7[0-9A-Ea-e])"
_PERCENT = re.compile(_PRINTABLE_ESCAPE)
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
# What is rewritten: invisible marks (dropped), fullwidth ASCII (to ASCII), URL-encoded printable
# ASCII (%21 to %7E: "%40" to "@", "%3D" to "=").
_EVASION = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]+|[\uff01-\uff5e]+|" + _PRINTABLE_ESCAPE)
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


class View:
    """A normalized text and, for each of its characters, where it came from in the original."""

    __slots__ = ("ends", "starts", "text")

    def __init__(self, text: str, starts: list[int], ends: list[int]) -> None:
        self.text, self.starts, self.ends = text, starts, ends

    def original(self, span: Span) -> Span:
        return Span(self.starts[span.start], self.ends[span.end - 1], span.label)


def normalized(text: str) -> View | None:
    """The normalized view of ``text``, or ``None`` when it has nothing to normalize."""
    if text.isascii() and ("%" not in text or _PERCENT.search(text) is None):
        return None
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    at = 0
    for m in _EVASION.finditer(text):
        pieces.append(text[at : m.start()])
        starts.extend(range(at, m.start()))
        ends.extend(range(at + 1, m.start() + 1))
        raw = m.group()
        if raw[0] == "%":
            pieces.append(chr(int(raw[1:], 16)))
            starts.append(m.start())
            ends.append(m.end())
        elif raw[0] not in _INVISIBLE:
            pieces.append(raw.translate(_FULLWIDTH))
            starts.extend(range(m.start(), m.end()))
            ends.extend(range(m.start() + 1, m.end() + 1))
        at = m.end()
    if at == 0:
        return None
    pieces.append(text[at:])
    starts.extend(range(at, len(text)))
    ends.extend(range(at + 1, len(text) + 1))
    return View("".join(pieces), starts, ends)

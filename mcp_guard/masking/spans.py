"""Sets of spans: which of overlapping spans stays, and every copy of a value found once.

Both run on every text the detectors read, so both are linear in the text and the spans:
overlaps are settled inside each cluster of mutually overlapping spans (a cluster is as small
as the overlaps are, never the whole text), and the copies of many distinct values are found
in one pass over the unclaimed stretches of the text, not in one pass per value.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["PRIORITY", "Span", "Taken", "outermost", "resolve", "with_repeats"]

# Which label keeps overlapping text: lower is stronger.
PRIORITY = {
    "SECRET": 0, "CREDIT_CARD": 1, "IBAN": 2, "US_SSN": 3, "EMAIL": 4, "PHONE": 5,
    "IP_ADDRESS": 6, "PERSON": 7, "LOCATION": 7, "DATE": 8, "URL": 9,
}
# A value shorter than this may recur by chance; its copies are not masked for it.
MIN_REPEAT = 6
# Up to this many distinct values, one str.find pass per value (in C) beats the q-gram pass.
FEW_VALUES = 16


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str

    def text(self, source: str) -> str:
        return source[self.start : self.end]


class Taken:
    """Sorted, non-overlapping intervals, fixed once built, with an O(log n) overlap test."""

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        ordered = sorted(spans, key=lambda s: s.start)
        self.starts = [s.start for s in ordered]
        self.ends = [s.end for s in ordered]

    def free(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self.starts, end)  # intervals starting before `end`
        return i == 0 or self.ends[i - 1] <= start


def _rank(s: Span) -> tuple[int, int, int, int]:
    tier = 0 if s.label == "SECRET" else 2 if s.label == "URL" else 1
    return (tier, -(s.end - s.start), PRIORITY.get(s.label, 9), s.start)


def _clusters(spans: list[Span]) -> Iterator[list[Span]]:
    """Runs of spans (sorted by start) that overlap one another, directly or through others."""
    group: list[Span] = []
    reach = -1
    for span in spans:
        if group and span.start >= reach:
            yield group
            group = []
        group.append(span)
        reach = max(reach, span.end) if len(group) > 1 else span.end
    if group:
        yield group


def _settle(group: list[Span]) -> list[Span]:
    """The greedy choice by rank inside one cluster; a byte per character marks what is kept,
    so each test costs the span's length, and the cluster's cost is the sum of its spans'.
    A URL that lost to what lies inside it is then kept around it (see `_around`)."""
    lo = group[0].start
    claimed = bytearray(max(s.end for s in group) - lo)
    kept, lost_urls = [], []
    for span in sorted(group, key=_rank):
        a, b = span.start - lo, span.end - lo
        if claimed.find(1, a, b) < 0:
            claimed[a:b] = b"\x01" * (b - a)
            kept.append(span)
        elif span.label == "URL":
            lost_urls.append(span)
    if lost_urls:
        kept.extend(_around(lost_urls, kept, lo, len(claimed)))
    kept.sort(key=_order)
    return kept


def _order(s: Span) -> tuple[int, int]:
    return (s.start, -s.end)  # a URL before the spans inside it


def _around(urls: list[Span], kept: list[Span], lo: int, size: int) -> list[Span]:
    """The URLs (in rank order) that wholly hold every kept span they overlap, none of them a URL
    or one of the same extent, and overlap no URL kept before them. A reset link's token stays a
    SECRET and the link is still reported as a URL; maskers take the outer span where they mask
    the URL too (Vault.replace), the inner ones where they do not ask for URLs at all.
    ``interior`` marks the positions strictly inside a kept span: a URL may not start or end there."""
    interior = bytearray(size + 1)
    taken_by_urls = bytearray(size)
    extents = set()
    for span in kept:
        a, b = span.start - lo, span.end - lo
        interior[a + 1 : b] = b"\x01" * (b - a - 1)
        extents.add((a, b))
        if span.label == "URL":
            taken_by_urls[a:b] = b"\x01" * (b - a)
    out = []
    for span in urls:
        a, b = span.start - lo, span.end - lo
        if interior[a] or interior[b] or (a, b) in extents or taken_by_urls.find(1, a, b) >= 0:
            continue
        taken_by_urls[a:b] = b"\x01" * (b - a)
        out.append(span)
    return out


def resolve(spans: list[Span]) -> list[Span]:
    """Keep one of overlapping spans: a SECRET first; then the longest (an IBAN over the card
    number its digits resemble); a URL last, so what is inside it stays visible to masking.
    The one nesting allowed: a URL around the spans it holds wholly (sorted before them)."""
    if len(spans) < 2 or all(a.end <= b.start for a, b in itertools.pairwise(spans)):
        return spans  # in order and apart already (the usual case): each span is a cluster of its own
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    kept: list[Span] = []
    for group in _clusters(ordered):
        kept.extend(group if len(group) == 1 else _settle(group))
    return kept


def outermost(spans: list[Span]) -> list[Span]:
    """``spans`` (as `resolve` orders them) without those inside an earlier one: for a caller
    that replaces spans in text, where a URL masked whole already hides the secret in it."""
    out: list[Span] = []
    for span in spans:
        if not out or span.start >= out[-1].end:
            out.append(span)
    return out


def with_repeats(text: str, spans: list[Span]) -> list[Span]:
    """``spans`` plus every other occurrence of a value they cover.

    Once a value is known to be sensitive, each copy of it is: a phone number glued to the
    next word, which the detector's boundaries refuse, must not survive masking by that."""
    if not spans:
        return spans
    values: dict[str, str] = {}
    for span in spans:
        value = text[span.start : span.end]
        if len(value) >= MIN_REPEAT:
            values.setdefault(value, span.label)
    if not values:
        return spans
    finder = _copies_few if len(values) <= FEW_VALUES else _copies_many
    extra = list(finder(text, values, spans))
    return resolve(spans + extra) if extra else spans


def _copies_few(text: str, values: dict[str, str], spans: list[Span]) -> Iterator[Span]:
    taken = Taken(spans)
    for value, label in values.items():
        at = text.find(value)
        while at >= 0:
            if taken.free(at, at + len(value)):
                yield Span(at, at + len(value), label)
            at = text.find(value, at + len(value))


def _gaps(text: str, spans: list[Span]) -> Iterator[tuple[int, int]]:
    """The stretches no span covers: a copy lies wholly inside one, or it is not a new span."""
    at = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start > at:
            yield at, span.start
        at = max(at, span.end)
    if at < len(text):
        yield at, len(text)


def _copies_many(text: str, values: dict[str, str], spans: list[Span]) -> Iterator[Span]:
    """Every copy of any of ``values`` in one pass: each position whose character begins some
    value (found by a search in C) has its first MIN_REPEAT characters looked up once, and only
    where they begin some value are that value's lengths tried."""
    lengths: dict[str, set[int]] = {}
    for value in values:
        lengths.setdefault(value[:MIN_REPEAT], set()).add(len(value))
    by_prefix = {prefix: sorted(sizes) for prefix, sizes in lengths.items()}
    if not by_prefix:
        return
    first = re.compile("[" + "".join(sorted({re.escape(prefix[0]) for prefix in by_prefix})) + "]")
    for lo, hi in _gaps(text, spans):
        if hi - lo < MIN_REPEAT:
            continue  # (most gaps, between values a space apart)
        for start in first.finditer(text, lo, hi - MIN_REPEAT + 1):
            at = start.start()
            sizes = by_prefix.get(text[at : at + MIN_REPEAT])
            if sizes is None:
                continue
            for size in sizes:
                if at + size <= hi and (label := values.get(text[at : at + size])) is not None:
                    yield Span(at, at + size, label)

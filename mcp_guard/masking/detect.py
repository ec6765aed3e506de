"""The runner: every detector of the registry (detectors/) over a text, as spans.

Every pattern has bounded repetitions and no nested unbounded quantifiers, and each runs only
after a cheap test found what it needs (an ``@`` for emails, a digit for numbers, a known
prefix for tokens), so hostile input costs linear time (tests/masking/test_linear.py counts
it). Validators (Luhn, IBAN mod-97, SSN ranges, ``ipaddress``) keep ordinary numbers,
versions, UUIDs and hashes out.

``detect(text)`` returns non-overlapping spans, in order; where two detectors claim the same
text the more sensitive label wins (a password inside a URL is a SECRET, not a URL).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from . import fast
from .detectors import REGISTRY, Detector
from .detectors.secrets import secret_for_key
from .normal import normalized
from .spans import PRIORITY, Span, Taken, resolve, with_repeats

__all__ = ["LABELS", "Span", "detect", "secret_for_key"]

LABELS = (
    "EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "PERSON", "LOCATION", "URL", "DATE", "SECRET"
)
assert set(PRIORITY) == set(LABELS)

Finder = Callable[[str], Iterator[Span]]

def detect(
    text: str, labels: frozenset[str] | None = None, ner: Callable[[str], list[Span]] | None = None, *, prefilter: bool = True,
    repeats: bool = True,
) -> list[Span]:
    """Non-overlapping spans of sensitive data in ``text``, in order of position.

    ``labels`` limits the search (``None``: every label this module knows). ``ner`` finds
    PERSON and LOCATION (see ``ner.py``); where its spans overlap a structured one, the
    structured one stays. ``prefilter=False`` reads the text whole, without the Hyperscan
    pre-pass; the spans are the same. ``repeats=False`` leaves out the other copies of the values
    found (for a caller reading a text a window at a time, which looks for copies once, in the whole).
    """
    if not text:
        return []
    want = frozenset(FINDERS) if labels is None else labels
    found = _find(text, want, prefilter)
    view = normalized(text)
    if view is not None:  # what zero-width marks, fullwidth forms or %40 hid from the patterns
        found = resolve(found + [view.original(s) for s in _find(view.text, want, prefilter)])
    named = _NAMED if labels is None else labels & _NAMED
    if ner is not None and named:
        found = _with_named(found, ner(text), named)
    return with_repeats(text, found) if repeats else found


def _find(text: str, want: frozenset[str], prefilter: bool) -> list[Span]:
    if prefilter and fast.AVAILABLE:
        if len(text) >= FAST_FROM:
            return _zoned(text, want)
        # Most short texts (a tool's arguments, a one-line result) hold nothing: Hyperscan says so
        # in 2-5 us, where every detector's pass takes 25-50. Where it finds anything, the text
        # is read whole, as without it.
        whole: dict[str, list[int]] = {}
        if fast.zones(text, want, whole) == [] and not whole:
            return []
    return _structured(text, want)


def _with_named(found: list[Span], named_spans: list[Span], named: frozenset[str]) -> list[Span]:
    """The model's spans where no structured span is; of its own overlapping ones, the first."""
    taken = Taken(found)
    added: list[Span] = []
    reach = -1
    for span in sorted(named_spans, key=lambda s: (s.start, s.start - s.end)):
        if span.label in named and span.start >= reach and taken.free(span.start, span.end):
            added.append(span)
            reach = span.end
    return sorted(found + added, key=lambda s: s.start) if added else found


# Below this length one pass of each detector costs less than asking Hyperscan where to look.
FAST_FROM = 512


def _zoned(text: str, want: frozenset[str]) -> list[Span]:
    """The detectors run only on the zones Hyperscan found (see fast.py); a span is taken from a
    zone only away from its cut edges, where the whole text's context is all there."""
    found: list[Span] = []
    size = len(text)
    whole: dict[str, list[int]] = {}
    present: set[str] = set()
    zones = fast.zones(text, want, whole, present)
    # Dense text is read whole, by the detectors whose hints match somewhere in it (a detector
    # finds nothing where none does).
    if zones is None:
        return _structured(text, want, only=present)
    for lo, hi in zones:
        first, last = (lo + fast.MARGIN if lo else 0), (hi - fast.MARGIN if hi < size else size)
        for span in _structured(text[lo:hi], want, zoned=True):
            start, end = span.start + lo, span.end + lo
            if start >= first and end <= last:
                found.append(Span(start, end, span.label))
    if whole:  # tables: a header labels rows any distance below it, so they are read whole
        found = resolve(found + _structured(text, want, whole=whole))
    return found


def _structured(
    text: str, want: frozenset[str], *, zoned: bool = False, whole: dict[str, list[int]] | None = None,
    only: set[str] | None = None,
) -> list[Span]:
    """Every detector for ``want`` over ``text`` (with ``only``, those named in it); inside a
    zone (``zoned``), not those that read the whole text; with ``whole``, only those of them
    named in it, each told where the pre-pass matched its hints."""
    low = text.lower()
    if len(low) != len(text):  # a few characters change length when lowered; keep offsets true
        low = text.translate(_ASCII_LOWER)
    if not low.isascii() and any(c in low for c in _FOLDED):  # what case-insensitive matching takes for "s" and "i"
        low = low.translate(_FOLD_LOWER)  # (a translate of non-ASCII text costs ~200 ns a character: only when needed)
    found: list[Span] = []
    finders, runs = _plan(want)
    if only is not None:
        finders, runs = [d for d in finders if d.name in only], [d for d in runs if d.name in only]
    for detector in finders:
        if (zoned and detector.whole) or (whole is not None and detector.name not in whole):
            continue
        if whole is not None:
            found.extend(detector.find(text, low, whole[detector.name]))  # type: ignore[call-arg,misc]
        elif detector.when is None or detector.when(text, low):
            found.extend(detector.find(text, low))  # type: ignore[misc]
    if runs and whole is None:
        found.extend(_numbers(text, runs))
    found = [s for s in found if s.label in want]
    if "\\" in text:
        found = [_after_escape(text, s) for s in found]
    return resolve(found)


_plans: dict[frozenset[str], tuple[list[Detector], list[Detector]]] = {}


def _plan(want: frozenset[str]) -> tuple[list[Detector], list[Detector]]:
    """The detectors a label set needs, finders and run checks apart; worked out once per set."""
    plan = _plans.get(want)
    if plan is None:
        wanted = [d for d in REGISTRY if d.labels & want]
        plan = _plans[want] = ([d for d in wanted if d.run is None], [d for d in wanted if d.run is not None])
    return plan


# Runs of digits and separators long enough to be a phone, card, SSN, date or IPv4 address:
# one pass over the text finds them; each kind's own check then runs on a small window.
_NUM_RUN = re.compile(r"\d[\d ().+/:-]{4,40}\d")
_RUN_SEPARATORS = str.maketrans("", "", " ().+/:-")
_RUN_MARGIN = 12  # context the checks look at around a run (country codes, "SSN:", lookarounds)


def _numbers(text: str, detectors: list[Detector]) -> Iterator[Span]:
    checks = [d.run for d in detectors if d.run is not None]
    for run in _NUM_RUN.finditer(text):
        seg = run.group()
        digits = len(seg.translate(_RUN_SEPARATORS))
        if digits < 4:
            continue
        lo = max(0, run.start() - _RUN_MARGIN)
        window = ""
        for check in checks:
            if not check.accepts(digits, seg):
                continue
            window = window or text[lo : run.end() + _RUN_MARGIN]
            for span in check.check(window):
                start, end = span.start + lo, span.end + lo
                if end > run.start() and start < run.end():  # found in this run, not in the margin
                    yield Span(start, end, span.label)


_ESCAPE = re.compile(r"\\(?:u[0-9A-Fa-f]{4}|[nrtbf])")


def _after_escape(text: str, span: Span) -> Span:
    """A span that begins inside an escape sequence (``\\njane@...``) starts after it."""
    for back in (1, 5):
        m = _ESCAPE.match(text, span.start - back) if span.start >= back else None
        if m is not None and m.end() > span.start:
            return Span(m.end(), span.end, span.label) if m.end() < span.end else span
    return span


_NAMED = frozenset({"PERSON", "LOCATION"})  # found by a model (ner.py), not by patterns
FINDERS = {label: None for label in LABELS if any(label in d.labels for d in REGISTRY)}
_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}
_FOLD_LOWER = {0x017F: "s", 0x0131: "i", 0x212A: "k", 0x0130: "i"}
_FOLDED = tuple(map(chr, _FOLD_LOWER))

"""Where to look: one Hyperscan pass finds every place a detector could match.

The detectors in ``detect.py`` are Python regular expressions, a dozen passes over the text.
Most text holds nothing sensitive, so this module asks Hyperscan, in one pass, where any of them
*could* match, and the Python detectors then run only on those stretches (zones), with enough
text around each that their lookarounds and their runs see what they would see in the whole
text. Hyperscan gets each detector's own pattern, loosened so that it matches wherever the
original does: lookarounds and back-references removed, inner bounded repeats opened, a final
repeat cut to its minimum (the zone then reaches as far as the original could). Nothing is
decided here; every span still comes from the Python detectors.

Without the ``hyperscan`` package (it is installed where wheels exist) the detectors read the
whole text, with the same results.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

from . import databases
from .detectors import REGISTRY, Hint

__all__ = ["AVAILABLE", "present", "warm", "zones"]

try:
    import hyperscan
except ImportError:  # the extra is not installed: detect.py runs its passes on the whole text
    hyperscan = None

AVAILABLE = hyperscan is not None

# Context kept on each side of a zone, beyond how far a match can reach: lookarounds, the
# number runs of detect._numbers (up to 42 characters, looked at with a margin of 12).
MARGIN = 64
MAX_REACH = 20_000
# Zones closer than this are read as one.
JOIN = 256
ZONE_COST = 100


def _strip_lookarounds(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith(("(?<!", "(?<=", "(?!", "(?="), i):
            depth, j = 0, i
            while j < len(pattern):
                c = pattern[j]
                if c == "\\":
                    j += 2
                    continue
                if c == "[":
                    j += 1
                    while pattern[j] != "]" or pattern[j - 1] == "\\":
                        j += 1
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            i = j + 1
            continue
        out.append(pattern[i])
        i += 1
    return "".join(out)


_BOUNDED = re.compile(r"\{(\d+),(\d+)\}")


# A class the match must not follow or precede: "(?<![...])" at the start and "(?![...])" or
# "(?![...]|\.\d)" at the end become the same condition on one consumed character, which keeps
# Hyperscan from reporting places the detector would refuse (inside hashes, inside dates).
_HEAD_GUARD = re.compile(r"^\(\?<!(\[[^\]]*\])\)")
_TAIL_GUARD = re.compile(r"\(\?!(\[[^\]]*\])(\|\\\.\\d)?\)$")


def _guards(pattern: str) -> tuple[str, str, str]:
    head = tail = ""
    m = _HEAD_GUARD.match(pattern)
    if m is not None:
        cls = m.group(1)[1:-1]
        head, pattern = f"(?:^|[^{cls}]{_also(cls)})", pattern[m.end() :]
    m = _TAIL_GUARD.search(pattern)
    if m is not None:
        cls = m.group(1)[1:-1]
        tail = f"(?:$|[^.{cls}]{_also(cls)}|\\.(?:$|\\D))" if m.group(2) else f"(?:$|[^{cls}]{_also(cls)})"
        pattern = pattern[: m.start()]
    return head, pattern, tail


def _also(cls: str) -> str:
    # A class without \w names ASCII letters or digits one by one: a stand-in for a non-ASCII
    # word character may be among them while the original is not, so the guard lets it pass.
    return "" if "\\w" in cls else f"|[{_STAND_INS}]"


def _loosen(pattern: str) -> tuple[str, bool]:
    """A pattern that matches wherever ``pattern`` does, for Hyperscan; and whether its final
    repeat was cut (the original's match can then reach as far as its whole width)."""
    head, body, tail = _guards(pattern)
    p = _strip_lookarounds(body)
    p = re.sub(r"(\{\d+(?:,\d+)?\})\+", r"\1", p)  # possessive repeats (Python's, not Hyperscan's) match no more
    p = re.sub(r"\\(\d)", lambda m: "[- ]", p)  # detect.py's only back-reference: an SSN's separator
    cut = False
    last = re.search(r"\{(\d+),(\d+)\}$", p)
    if last is not None and int(last.group(1)) > 0:
        # Cut the final repeat to its minimum: the match is then reported once, where the
        # original's could still go on; the zone reaches that far (however the repeated part is
        # built, no further than the whole match). What follows says nothing.
        cut = True
        p = p[: last.start()] + "{%s}" % last.group(1)
        tail = ""
    p = _BOUNDED.sub(lambda m: m.group(0) if int(m.group(2)) - int(m.group(1)) <= 8 else ("*" if m.group(1) == "0" else "{%s,}" % m.group(1)), p)
    return head + p + tail, cut


def _width(pattern: str) -> int:
    """The longest text ``pattern`` can match (capped): how far back a zone must reach."""
    parser: Any = getattr(re, "_parser", None) or sys.modules.get("sre_parse")
    return min(int(parser.parse(pattern).getwidth()[1]), MAX_REACH)


class _Family:
    """One detector's hint for Hyperscan, and the zone around a match: ``back`` characters
    before its end (or, with ``som``, from its reported start) and ``fwd`` after it."""

    __slots__ = ("_loose", "back", "detector", "flags", "fwd", "hint", "labels", "som", "whole")

    def __init__(self, labels: frozenset[str], hint: Hint, whole: str | None = None, detector: str = "") -> None:
        caseless = hint.pattern.startswith("(?i)")
        self.hint = hint
        self.labels = labels
        self.whole = whole  # the name of a detector that reads the whole text: a match only says it must run
        self.detector = detector
        self._loose: tuple[bytes, bool] | None = None  # see loosened()
        self.flags = (hyperscan.HS_FLAG_CASELESS if caseless else 0) | (hyperscan.HS_FLAG_SOM_LEFTMOST if hint.som else 0)
        self.som = hint.som
        # See reach(): worked out at this family's first match (it parses the detector's pattern,
        # ~0.1 ms; for all of them, a tenth of the guard's start). -1: not yet.
        self.back = self.fwd = -1

    def loosened(self) -> tuple[bytes, bool]:
        """The hint as Hyperscan compiles it, and whether its final repeat was cut (_loosen).
        Worked out when first asked: a compiled database loaded from the cache needs neither."""
        if self._loose is None:
            pattern = self.hint.pattern
            loose, cut = _loosen(pattern[4:] if pattern.startswith("(?i)") else pattern)
            self._loose = (loose.encode(), cut)
        return self._loose

    def reach(self) -> None:
        """Work out the zone around a match. The same values in whichever thread gets here
        first; ``back`` is set last, and is what says they are known."""
        hint = self.hint
        back = hint.back if hint.back is not None else _width(hint.pattern)
        fwd = hint.fwd if hint.fwd is not None else (_width(hint.pattern) if self.loosened()[1] else 0)
        if hint.run:  # a check on detect._numbers' runs: the zone holds the whole run it sees
            back, fwd = back + _RUN_REACH, _RUN_REACH
        # Without `som` the zone is measured back from the match's end, and a tail guard (see
        # _guards) may have consumed up to two characters past the original's end.
        self.fwd = fwd + MARGIN
        self.back = MARGIN if hint.som else back + _GUARD_REACH + MARGIN


# How many characters a tail guard consumes at most ("\.(?:$|\D)").
_GUARD_REACH = 2
# How far a number run (detect._NUM_RUN, up to 42 characters) reaches past a match in it.
_RUN_REACH = 60


def _families() -> list[_Family]:
    """Every hint of every detector in the registry: what the runner can find, this looks for."""
    return [
        _Family(detector.labels, hint, detector.name if detector.whole else None, detector.name)
        for detector in REGISTRY
        for hint in detector.hints
    ]


_built: list[_Family] | None = None
_wanted: dict[frozenset[str], tuple[list[bool], frozenset[int] | None]] = {}


def warm(label_sets: Iterable[frozenset[str]] = ()) -> None:
    """Load (or compile) the databases now, not on the first text: the one of every family, and
    both of each of ``label_sets`` (the label sets the caller will mask). Loading a compiled
    database is a read of the cache; compiling one takes a second or more, once per machine."""
    if not AVAILABLE:
        return
    databases.database(_family_list())
    if not label_sets:
        return
    families = _family_list()
    for want in label_sets:
        _, subset = _wanted_families(families, want)
        if subset is None or subset:
            databases.database(families, subset)
            databases.database(families, subset, single=True)


def _family_list() -> list[_Family]:
    global _built
    if _built is None:
        _built = _families()
    return _built


# Python's patterns read \d, \w, \s and \b the Unicode way; Hyperscan's here read ASCII. So
# Hyperscan scans a copy where each other character stands in for its class (the same length,
# so offsets hold): "0" for a decimal digit, "q" for any other word character ("Q" for a
# capital: detectors/names.py reads capitals), a form feed for whitespace and \x01 for the rest;
# and the four characters Python's case-insensitive matching takes for ASCII letters (dotted and
# dotless i, long s, Kelvin sign) become those letters. Stand-ins that no pattern spells out
# (form feed, \x01) fall in or out of an explicit class as the original does; the letter and
# digit ones may fall in an explicit ASCII class the original is outside of ("é" is no
# [A-Za-z0-9]), which a guard on such a class allows for (_STAND_INS). So may the folded letters:
# a Kelvin sign is no [A-Za-z0-9] either, but its "k" is.
_FOLDS = {0x0130: "i", 0x0131: "i", 0x017F: "s", 0x212A: "k"}
_STAND_INS = "qQ0" + "".join(sorted(set(_FOLDS.values())))


def _stand_in(code: int) -> str:
    char = chr(code)
    if code in _FOLDS:
        return _FOLDS[code]
    if char.isdecimal():
        return "0"
    if char.isalnum() or char == "_":
        return "Q" if char.isupper() else "q"
    return "\f" if char.isspace() else "\x01"


# What _asciify rewrites. It rewrites each run of them apart: str.translate is fast on ASCII
# only, so a mostly-ASCII text costs a regex pass and a few short translations, not ~200 ns a character.
_REWRITTEN = re.compile("[^\x00-\x1b\x20-\x7f]+")


def _asciify(text: str) -> str:
    table = {ord(c): _stand_in(ord(c)) for c in set(text) if ord(c) > 127 or "\x1c" <= c <= "\x1f"}
    return _REWRITTEN.sub(lambda m: m.group().translate(table), text)


# After this many characters, a text whose zones already cover most of what was read is read
# whole (detect.py does that for dense text anyway): asking on would only cost callbacks.
DENSE_AFTER = 512
DENSE_SHARE = 0.8


class _Zones:
    """Collects Hyperscan's matches as zones, and halts the scan once the text proves dense.

    Matches arrive in order of their end, so the stretch covered so far is kept as one
    running count; each costs a zone's width plus ``ZONE_COST`` characters, as in detect.py."""

    ZONE_COST = 100

    __slots__ = ("cost", "dense", "families", "reach", "size", "spans", "wanted", "whole")

    def __init__(self, families: list[_Family], wanted: list[bool], size: int) -> None:
        self.families, self.wanted, self.size = families, wanted, size
        self.spans: list[tuple[int, int]] = []
        self.cost = 0
        self.reach = -JOIN - 1
        self.dense = False
        self.whole: dict[str, list[int]] = {}

    def hit(self, index: int, start: int, end: int, flags: int, context: Any) -> bool:
        if not self.wanted[index]:
            return False
        family = self.families[index]
        if family.whole is not None:  # that detector reads the whole text; it has no zone
            self.whole.setdefault(family.whole, []).append(end)
            return False
        if family.back < 0:
            family.reach()
        lo, hi = max(0, (start if family.som else end) - family.back), min(self.size, end + family.fwd)
        self.spans.append((lo, hi))
        if hi > self.reach:
            self.cost += hi - max(lo, self.reach) + (self.ZONE_COST if lo > self.reach + JOIN else 0)
            self.reach = hi
        if self.cost > self.size or (end > DENSE_AFTER and self.cost > end * DENSE_SHARE):
            self.dense = True
            return True  # halts the scan
        return False


def zones(
    text: str, want: frozenset[str], whole: dict[str, list[int]] | None = None, present: set[str] | None = None
) -> list[tuple[int, int]] | None:
    """Stretches of ``text`` outside of which no detector for ``want`` can match; ``None``
    when they would cover so much of it that reading it whole costs less. ``whole`` gets the
    detectors that read the whole text (Detector.whole) whose hints matched, each with where
    its matches ended: the others cannot find anything in it. When the answer is ``None``,
    ``present`` gets the names of the detectors any of whose hints match anywhere in the text
    (one more pass, each hint reported once at most): the others cannot find anything in it
    either, so dense text is read whole by those only."""
    families = _family_list()
    size = len(text)
    wanted, subset = _wanted_families(families, want)
    if subset is not None and not subset:
        return []  # no detector for these labels
    found = _Zones(families, wanted, size)
    subject = _subject(text)
    try:
        databases.database(families, subset).scan(subject, match_event_handler=found.hit)
    except hyperscan.ScanTerminated:
        pass
    if whole is not None:
        whole.update(found.whole)
    if not found.dense and not found.spans:
        return []
    merged: list[list[int]] = []
    if not found.dense:
        for lo, hi in sorted(found.spans):
            if merged and lo <= merged[-1][1] + JOIN:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
    # Each zone costs what reading ZONE_COST more characters would: past that, reading it whole does.
    if found.dense or sum(hi - lo for lo, hi in merged) + ZONE_COST * len(merged) > size:
        if present is not None:
            present.update(_present(subject, families, subset))
        return None
    return [(lo, hi) for lo, hi in merged]


def _subject(text: str) -> bytes:
    # ASCII that Python's \s reads as whitespace and Hyperscan's does not (the information
    # separators) is rewritten too. Four substring tests take ~0.3 us on 8 KB, a search for
    # their class 20 (an eighth of what clean text cost in all, the pre-pass included).
    plain = text.isascii() and not ("\x1c" in text or "\x1d" in text or "\x1e" in text or "\x1f" in text)
    return (text if plain else _asciify(text)).encode("ascii")


def _wanted_families(families: list[_Family], want: frozenset[str]) -> tuple[list[bool], frozenset[int] | None]:
    """Which families a label set wants, and their indices (``None``: all of them). A handful of
    label sets per process (the policy's, per server, scan's), each scanned with a database of
    its own families only: one that matches everywhere but is not wanted costs no callbacks."""
    entry = _wanted.get(want)
    if entry is None:
        wanted = [bool(f.labels & want) for f in families]
        entry = _wanted[want] = (wanted, None if all(wanted) else frozenset(i for i, w in enumerate(wanted) if w))
    return entry


def present(text: str, want: frozenset[str] | None = None) -> set[str]:
    """The names of the detectors (for ``want``; ``None``: all) any of whose hints match somewhere in ``text``."""
    families = _family_list()
    subset = None if want is None else _wanted_families(families, want)[1]
    return _present(_subject(text), families, subset) if subset is None or subset else set()


def _present(subject: bytes, families: list[_Family], subset: frozenset[int] | None) -> set[str]:
    seen: set[int] = set()

    def hit(index: int, start: int, end: int, flags: int, context: Any) -> bool:
        seen.add(index)
        return False

    databases.database(families, subset, single=True).scan(subject, match_event_handler=hit)
    return {families[index].detector for index in seen}

"""Dates: numeric (ISO, day/month/year in its common spellings) and with month names."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, RunCheck, register

_MONTHS = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_DATES = [
    lazy(r"(?<![\w.:-])(\d{4})-(\d{2})-(\d{2})(?![\w:-]|\.\d|[T ]\d{2}:)"),
    lazy(r"(?<![\w./-])(\d{1,2})/(\d{1,2})/(\d{4})(?![\w/]|\.\d)"),
    lazy(r"(?<![\w./-])(\d{1,2})\.(\d{1,2})\.(\d{4})(?![\w]|\.\d)"),
    lazy(r"(?<![\w./-])(\d{4})/(\d{1,2})/(\d{1,2})(?![\w/]|\.\d)"),
    lazy(r"(?<![\w.:-])(\d{1,2})-(\d{1,2})-(\d{4})(?![\w-]|\.\d)"),
    lazy(rf"\b\d{{1,2}}(?:st|nd|rd|th)? {_MONTHS},? \d{{4}}\b"),
    lazy(rf"\b{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?, \d{{4}}\b"),
]


def _numeric_dates(text: str) -> Iterator[Span]:
    return _dates(text, _DATES[:-2])


# A date that names a version (Stripe's "api_version":"2024-06-20", Azure's ?api-version=2023-05-01,
# k8s-style "apiVersion: 2020-08-27", "Revision: 2019-01-01") identifies an API, not a day of
# anyone's life. The key must end right before the date; _RUN_MARGIN (12) in detect.py bounds how
# much the run checks see, and "version": " fits in it.
_VERSION_KEY = lazy(r"(?i)(?:version|revision)[\"']?[ \t]{0,2}[:=][ \t]{0,2}[\"']?$")
_KEY_REACH = 12
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # 29: a leap year is not checked


def _dates(text: str, patterns: list[re.Pattern[str]] | None = None) -> Iterator[Span]:
    for pattern in patterns if patterns is not None else _DATES:
        for m in pattern.finditer(text):
            groups = m.groups()
            if groups and not _plausible_date(groups):
                continue
            if _VERSION_KEY.search(text, max(0, m.start() - _KEY_REACH), m.start()):
                continue
            yield Span(m.start(), m.end(), "DATE")


def _real_day(year: int, month: int, day: int) -> bool:
    return 1900 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]


def _plausible_date(groups: tuple[str | None, ...]) -> bool:
    """Some reading of the three numbers is a day that exists, in a year a person's record holds:
    year first (ISO, 2024/06/20), or last with day and month in either order (14/03, 03/14)."""
    a, b, c = (int(g) for g in groups if g is not None)
    if a > 999:  # year first
        return _real_day(a, b, c)
    return _real_day(c, b, a) or _real_day(c, a, b)


_MONTH_WORD = lazy(r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec")
_ISO_TAIL = r"(?![\w:-]|\.\d|[T ]\d{2}:)"
assert _DATES[0].pattern.endswith(_ISO_TAIL)


def _prepass_hints() -> tuple[Hint, ...]:
    """An ISO date that is a timestamp's first half (2026-11-23T10:00, 2026-11-23 10:00:00) is
    not a date to mask (_DATES[0] looks ahead for it); timestamps fill logs, so the same
    condition is spelled out for the pre-pass on the characters after the date."""
    iso = _DATES[0].pattern[: -len(_ISO_TAIL)] + r"(?![\w:. -])"  # then "." and " ", below
    return (
        Hint(iso, run=True),
        Hint(r"(?:^|[^\w.:-])\d{4}-\d{2}-\d{2}(?:\.(?:$|\D)| (?:$|\D|\d(?:$|\D)|\d\d(?:$|[^:])))", back=20, run=True),
        *(Hint(p.pattern, run=True) for p in _DATES[1:-2]),
    )


# A birth date written without separators (vCard's BDAY:19850314, a "dob" field): only under
# its key, since eight digits alone are anything.
_COMPACT_BIRTH = lazy(
    r"(?i)(?<![\w-])(?:bday|dob|birth[_ -]?date|date[_ -]of[_ -]birth|birthday)[\"']?[ \t]{0,4}[:=][ \t]{0,4}[\"']?"
    r"((\d{4})(\d{2})(\d{2}))(?![\w-])"
)


# Matched on the lowercase text (same length; digits unchanged): a case-insensitive alternation
# of keys costs Python's re about three times a plain one, on every text with a "b" in it.
_COMPACT_BIRTH_LOW = lazy(_COMPACT_BIRTH.pattern.removeprefix("(?i)"))


def _compact_births(text: str, low: str) -> Iterator[Span]:
    for m in _COMPACT_BIRTH_LOW.finditer(low):
        if _plausible_date((m.group(2), m.group(3), m.group(4))):
            yield Span(m.start(1), m.end(1), "DATE")


register(
    Detector(
        "date-of-birth-compact", frozenset({"DATE"}), (Hint(_COMPACT_BIRTH.pattern),), find=_compact_births,
        when=lambda text, low: "b" in low,
        examples=("BDAY:19850314", '"dob": "19700101"'),
        not_flagged=("BDAY:19851399", "build: 20240101"),
    ),
    Detector(
        "date-numeric", frozenset({"DATE"}), _prepass_hints(),
        run=RunCheck(lambda digits, seg: digits >= 6 and ("-" in seg or "/" in seg or "." in seg), _numeric_dates),
        examples=("born 1985-03-14", "on 14/03/1985"),
        not_flagged=(
            "2024-01-15T10:00:00Z INFO started", "version 1.2.3", "ratio 3/4", '"api_version":"2024-06-20"',
            "GET /deployments?api-version=2023-05-01", "on 2024-02-31", "build 3025-01-01", "31/04/1999",
        ),
    ),
    Detector(
        "date-words", frozenset({"DATE"}), tuple(Hint(p.pattern, run=True) for p in _DATES[-2:]),
        find=lambda text, low: _dates(text, _DATES[-2:]), when=lambda text, low: _MONTH_WORD.search(low) is not None,
        examples=("on March 3, 2024", "due 3rd May 2024"),
        not_flagged=("may be 3, 2024 items",),
    ),
)

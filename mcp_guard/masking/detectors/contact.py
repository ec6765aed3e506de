"""Contact details: email addresses and phone numbers."""

from __future__ import annotations

from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, RunCheck, register

# -- EMAIL ---------------------------------------------------------------------------------------

EMAIL = lazy(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"[A-Za-z]{2,24}(?![\w-])"
)
# The run of local-part characters before an "@", read backwards: up to 65 (one more than a
# local part may have, which tells a longer run apart).
_LOCAL_RUN = lazy(r"[A-Za-z0-9._%+-]{0,65}")


def local_start(backwards: str, at: int) -> int:
    """Where the run of local-part characters before ``at`` begins, 65 back at most, given the
    text reversed (``backwards``)."""
    local = _LOCAL_RUN.match(backwards, len(backwards) - at)
    return at - (local.end() - local.start())  # type: ignore[union-attr]


def emails(text: str, low: str = "") -> Iterator[Span]:
    """Looked for around each ``@`` only: an address cannot be anywhere else. Its local part is
    the run of local-part characters just before the ``@`` (the pattern refuses to start inside
    one), so one match is tried per ``@``; the run is found by one match on the reversed text."""
    at = text.find("@")
    done = -1
    backwards = ""
    while at >= 0:
        if at > done:
            backwards = backwards or text[::-1]
            start = local_start(backwards, at)
            m = EMAIL.match(text, start) if at - start <= 64 else None
            if m is not None and m.end() > at and not _url_password(text, start):
                yield Span(m.start(), m.end(), "EMAIL")
                done = m.end()
        at = text.find("@", at + 1)


_AUTHORITY_STOP = lazy(r"[\s/]")


def _url_password(text: str, start: int) -> bool:
    """``scheme://user:pass@host``: what follows the colon is a password and a host."""
    if start == 0 or text[start - 1] != ":":
        return False
    scheme = text.rfind("://", max(0, start - 300), start)
    return scheme >= 0 and _AUTHORITY_STOP.search(text, scheme + 3, start - 1) is None


# -- PHONE ---------------------------------------------------------------------------------------

PHONE_INTL = lazy(r"\+(?<![\w+]\+)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){1,6}(?![\w])")
PHONE_NANP = lazy(r"(?<![\w.+-])(?:1[ .-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-]|\.\d)")
PHONE_NATIONAL = lazy(r"(?<![\w.+-])0\d{1,4}(?:[ .-]\d{2,8}){1,4}(?![\w-]|\.\d)")
# After a phone word or key, a number in any national format: (11) 91234-5678, 020 7946 0958,
# 0044 20 7946 0958, 8 (495) 123-45-67 (7 to 15 digits, checked below).
PHONE_CONTEXT = lazy(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|fax|msisdn|sms|whatsapp|dial(?:ed)?"
    r"|call(?:ed|ing)?(?:[ \t]+(?:me[ \t]+)?(?:from|on|at))?)(?:[_ -]?(?:no|number|num))?s?\b[\"']?"
    r"(?:\"[ \t]*,[ \t]*\"value\"[ \t]*:[ \t]*\"|\W{0,12}?)"  # FHIR's {"system": "phone", "value": "..."}
    r"((?:\+|\()?\d(?:[ ().-]{0,2}\d){6,18}+)(?![\w-])"
)
_PHONE_WORDS = ("phone", "tel", "mobile", "cell", "fax", "msisdn", "sms", "whatsapp", "dial", "call")
_INTERNATIONAL_00 = lazy(r"00[1-9]\d{0,2}[ .-][1-9]")
# An area code and a dash, then spaced groups: Sweden's 070-123 45 67, 08-123 456 78.
_AREA_DASH = lazy(r"0\d{1,3}-\d{2,3}(?: \d{2,3}){1,3}")
_DATE_SHAPE = lazy(r"\d{2,4}[./-]\d{1,2}[./-]\d{2,4}")


# What the phone patterns match besides digits (\d, each of which str.isdigit takes for one):
# deleting these leaves the digits, counted in C, not a Python step a character.
_NOT_DIGITS = str.maketrans("", "", "+() .-")


def phones_international(text: str, low: str = "") -> Iterator[Span]:
    for m in PHONE_INTL.finditer(text):
        n = len(m.group().translate(_NOT_DIGITS))
        if 8 <= n <= 15:
            yield Span(m.start(), m.end(), "PHONE")


def phones_national(text: str) -> Iterator[Span]:
    for m in PHONE_NANP.finditer(text):
        yield Span(m.start(), m.end(), "PHONE")
    for m in PHONE_NATIONAL.finditer(text):
        raw = m.group()
        n = len(raw.translate(_NOT_DIGITS))
        seps = set(raw).intersection(" .-")  # the pattern's separators: all it matches but digits
        # 00 is the international prefix: a country code, then the number without its trunk 0.
        longest = 15 if _INTERNATIONAL_00.match(raw) else 12
        if (len(seps) == 1 or _AREA_DASH.fullmatch(raw)) and 9 <= n <= longest and not _DATE_SHAPE.fullmatch(raw) \
                and len(set(raw) - seps) >= 3:
            yield Span(m.start(), m.end(), "PHONE")


def phones_in_context(text: str, low: str) -> Iterator[Span]:
    for m in PHONE_CONTEXT.finditer(text):
        raw = m.group(1)
        if 7 <= len(raw.translate(_NOT_DIGITS)) <= 15 and not _DATE_SHAPE.fullmatch(raw):
            yield Span(m.start(1), m.end(1), "PHONE")


def _national_run(digits: int, seg: str) -> bool:
    # NANP numbers have 10 or 11 digits; national formats start with 0; "(" marks an area code.
    return digits >= 7 and (digits >= 10 or seg[0] == "0" or "(" in seg)  # a run may hold several numbers


register(
    Detector(
        "email", frozenset({"EMAIL"}), (Hint(EMAIL.pattern),), find=emails,
        when=lambda text, low: "@" in text,
        examples=("mail jane.doe@example.com today", "mailto:jane%40example.com", "jane\u200b@example.com",
                  "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "https://jo%40email.com:pw@example.com"),
        not_flagged=("user@localhost", "git@github", "@decorator", "a@b", "https://user:password@example.com/"),
    ),
    Detector(
        "phone-international", frozenset({"PHONE"}), (Hint(PHONE_INTL.pattern),), find=phones_international,
        when=lambda text, low: "+" in text,
        examples=("call +44 20 7946 0958",),
        not_flagged=("x = a + 1", "c++17", "list('-+0123456789')"),
    ),
    Detector(
        "phone-national", frozenset({"PHONE"}), (Hint(PHONE_NANP.pattern, run=True), Hint(PHONE_NATIONAL.pattern, run=True)),
        run=RunCheck(_national_run, phones_national),
        examples=("call (415) 555-2671", "mobile 06 12 34 56 78", "call 0044 20 7946 0958", "ring 070-123 45 67"),
        not_flagged=("version 10.4.0", "at 2024-01-15T10:00:00Z", "00000010  02 00 3e 00 01 00 00 00 00 00 00 00"),
    ),
    Detector(
        "phone-in-context", frozenset({"PHONE"}), (Hint(PHONE_CONTEXT.pattern),), find=phones_in_context,
        when=lambda text, low: any(word in low for word in _PHONE_WORDS),
        context_keys=_PHONE_WORDS,
        examples=("phone: 4155550134", "phone: (11) 91234-5678", "tel 0044 20 7946 0958", "phone 00351 21 234 5678",
                  "tel: 8 (495) 123-45-67", '"mobile": "06 12 34 56 78"', "called from 8 (812) 555-01-02",
                  '{"system": "phone", "value": "(03) 5550 1234"}'),
        not_flagged=("phone: 12", "cell 3 of 4", "call 3 times", "callback(1, 2)"),
    ),
)

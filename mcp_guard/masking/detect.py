"""Detectors for personal data and secrets: compiled patterns plus validators.

Every pattern has bounded repetitions and no nested unbounded quantifiers, and each runs only
after a cheap prefilter found what it needs (an ``@`` for emails, a digit for numbers, a known
prefix for tokens), so hostile input costs linear time. Validators (Luhn, IBAN mod-97, SSN
ranges, ``ipaddress``) keep ordinary numbers, versions, UUIDs and hashes out.

``detect(text)`` returns non-overlapping spans, in order; where two detectors claim the same
text the more sensitive label wins (a password inside a URL is a SECRET, not a URL).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["LABELS", "Span", "detect", "secret_for_key"]

LABELS = (
    "EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "PERSON", "LOCATION", "URL", "DATE", "SECRET"
)
# Which label keeps overlapping text: lower is stronger.
PRIORITY = {
    "SECRET": 0, "CREDIT_CARD": 1, "IBAN": 2, "US_SSN": 3, "EMAIL": 4, "PHONE": 5,
    "IP_ADDRESS": 6, "PERSON": 7, "LOCATION": 7, "DATE": 8, "URL": 9,
}


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str

    def text(self, source: str) -> str:
        return source[self.start : self.end]


Finder = Callable[[str], Iterator[Span]]

# -- EMAIL ---------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])"
)


def _emails(text: str) -> Iterator[Span]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        yield Span(m.start(), m.end(), "EMAIL")


# -- numbers: cards, SSNs, phones -----------------------------------------------------------------

_CARD = re.compile(r"(?<![\w.+-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01])|2720|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9]|22)|35)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _cards(text: str) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        raw = m.group()
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1:
            continue  # mixed separators: not how a card number is written
        digits = raw.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and _luhn(digits) and len(set(digits)) > 1:
            yield Span(m.start(), m.end(), "CREDIT_CARD")


_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_SSN_BARE = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?)?|soc\.? sec\.?)\W{0,5}(\d{9})\b")


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def _ssns(text: str) -> Iterator[Span]:
    for m in _SSN.finditer(text):
        if _ssn_valid(m.group(1), m.group(3), m.group(4)):
            yield Span(m.start(), m.end(), "US_SSN")
    for m in _SSN_BARE.finditer(text):
        d = m.group(1)
        if _ssn_valid(d[:3], d[3:5], d[5:]):
            yield Span(m.start(1), m.end(1), "US_SSN")


_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,6}(?![\w])")
_PHONE_NANP = re.compile(r"(?<![\w.+-])(?:1[ .-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-]|\.\d)")
_PHONE_NATIONAL = re.compile(r"(?<![\w.+-])0\d{1,4}(?:[ .-]\d{2,8}){1,4}(?![\w-]|\.\d)")
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|tel|telephone|mobile|cell|fax)\b\W{0,12}(\d{7,15})\b")


def _phones(text: str) -> Iterator[Span]:
    if "+" in text:
        for m in _PHONE_INTL.finditer(text):
            n = sum(c.isdigit() for c in m.group())
            if 8 <= n <= 15:
                yield Span(m.start(), m.end(), "PHONE")
    for m in _PHONE_NANP.finditer(text):
        yield Span(m.start(), m.end(), "PHONE")
    for m in _PHONE_NATIONAL.finditer(text):
        raw = m.group()
        n = sum(c.isdigit() for c in raw)
        seps = {c for c in raw if not c.isdigit()}
        if 9 <= n <= 12 and len(seps) == 1 and not _looks_like_date(raw):
            yield Span(m.start(), m.end(), "PHONE")
    for m in _PHONE_CONTEXT.finditer(text):
        yield Span(m.start(1), m.end(1), "PHONE")


def _looks_like_date(raw: str) -> bool:
    return bool(re.fullmatch(r"\d{2,4}[./-]\d{1,2}[./-]\d{2,4}", raw))


# -- IBAN ----------------------------------------------------------------------------------------

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def _ibans(text: str) -> Iterator[Span]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        compact = raw.replace(" ", "")
        want = _IBAN_LENGTHS.get(compact[:2])
        if want is None:
            continue
        if len(compact) > want:  # the pattern ran on into the next word: trim to the country's length
            keep, count = 0, 0
            for i, ch in enumerate(raw):
                if ch != " ":
                    count += 1
                if count == want:
                    keep = i + 1
                    break
            raw, compact = raw[:keep], compact[:want]
        if len(compact) != want:
            continue
        rearranged = compact[4:] + compact[:4]
        number = "".join(str(int(c, 36)) for c in rearranged)
        if int(number) % 97 == 1:
            yield Span(m.start(), m.start() + len(raw), "IBAN")


# -- network -------------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|:){2,7}(?:[0-9A-Fa-f]{1,4}|:)(?:%\w{1,16})?(?![\w:])")
_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s<>\"'`{}|\\^\[\]]{1,2048}")
_URL_CREDS = re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@\"'<>]{1,256}:([^\s@/\"'<>]{1,256})@[\w.-]")


def _ips(text: str) -> Iterator[Span]:
    if "." in text:
        for m in _IPV4.finditer(text):
            try:
                address = ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            if address.is_unspecified or str(address) == "255.255.255.255":
                continue  # "listen on all interfaces", not anyone's address
            yield Span(m.start(), m.end(), "IP_ADDRESS")
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            raw = m.group().split("%")[0]
            if raw.count(":") < 2 or not any(c.isdigit() or c in "abcdefABCDEF" for c in raw):
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            yield Span(m.start(), m.end(), "IP_ADDRESS")


def _urls(text: str) -> Iterator[Span]:
    if "://" not in text:
        return
    for m in _URL.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in ".,;:!?)":
            end -= 1
        yield Span(m.start(), end, "URL")
    for m in _URL_CREDS.finditer(text):
        yield Span(m.start(1), m.end(1), "SECRET")


# -- dates ---------------------------------------------------------------------------------------

_MONTHS = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_DATES = [
    re.compile(r"(?<![\w.:-])(\d{4})-(\d{2})-(\d{2})(?![\w:-]|\.\d|[T ]\d{2}:)"),
    re.compile(r"(?<![\w./-])(\d{1,2})/(\d{1,2})/(\d{4})(?![\w/]|\.\d)"),
    re.compile(r"(?<![\w./-])(\d{1,2})\.(\d{1,2})\.(\d{4})(?![\w]|\.\d)"),
    re.compile(r"(?<![\w./-])(\d{4})/(\d{1,2})/(\d{1,2})(?![\w/]|\.\d)"),
    re.compile(r"(?<![\w.:-])(\d{1,2})-(\d{1,2})-(\d{4})(?![\w-]|\.\d)"),
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)? {_MONTHS},? \d{{4}}\b"),
    re.compile(rf"\b{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?, \d{{4}}\b"),
]


def _dates(text: str) -> Iterator[Span]:
    for pattern in _DATES:
        for m in pattern.finditer(text):
            groups = m.groups()
            if groups and not _plausible_date(groups):
                continue
            yield Span(m.start(), m.end(), "DATE")


def _plausible_date(groups: tuple[str | None, ...]) -> bool:
    a, b, c = (int(g) for g in groups if g is not None)
    if a > 999:  # year first
        return 1 <= b <= 12 and 1 <= c <= 31
    return 1900 <= c <= 2100 and ((1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31))


# -- secrets -------------------------------------------------------------------------------------

_TOKENS = re.compile(
    r"(?<![\w-])(?:"
    r"(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z0-9]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{36,251}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{22,244}"
    r"|glpat-[A-Za-z0-9_-]{20,64}"  # GitLab
    r"|xox[abposre]-[A-Za-z0-9-]{10,250}"  # Slack
    r"|xapp-\d-[A-Za-z0-9-]{10,250}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,247}"  # Stripe
    r"|whsec_[A-Za-z0-9]{24,64}"
    r"|sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,200}"  # Anthropic
    r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}"  # OpenAI and alike
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|ya29\.[0-9A-Za-z_-]{20,500}"  # Google OAuth access tokens
    r"|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"  # SendGrid
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|pypi-AgE[A-Za-z0-9_-]{50,300}"  # PyPI
    r"|hf_[A-Za-z0-9]{30,40}"  # Hugging Face
    r"|dop_v1_[a-f0-9]{64}"  # DigitalOcean
    r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"  # Shopify
    r"|AC[a-f0-9]{32}|SK[a-f0-9]{32}"  # Twilio
    r"|eyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{8,4096}"  # JWTs
    r")(?![\w-])"
)
_TOKEN_HINTS = (
    "AKIA", "ASIA", "ABIA", "ACCA", "AROA", "AIDA", "gh", "github_pat_", "glpat-", "xox", "xapp-", "_live_", "_test_",
    "whsec_", "sk-", "AIza", "ya29.", "SG.", "npm_", "pypi-", "hf_", "dop_v1_", "shp", "AC", "SK", "eyJ",
)
_SLACK_HOOK = re.compile(
    r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}"
    r"|https://(?:discord(?:app)?\.com)/api/webhooks/\d{5,25}/[A-Za-z0-9_-]{30,100}"
)
_BEARER = re.compile(r"(?i)\b(?:bearer|token)\s+([A-Za-z0-9._~+/-]{20,2048}=*)")
_BASIC = re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/]{12,1024}={0,2})(?![\w+/=])")
_PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY( BLOCK)?-----")
# key = value, "key": "value", key: value, with a secret-like key name.
_KV = re.compile(
    r"(?i)(?<![A-Za-z0-9])([A-Za-z0-9_.-]{0,40}?(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|auth(?:[_-]?key)?|credentials?|session[_-]?(?:id|key)|client[_-]?secret|signing[_-]?key|salt|cookie"
    r"|(?:account|shared[_-]?access|master|encryption|license|client|secret)[_-]?key)"
    r"[A-Za-z0-9_.-]{0,40})[\"']?[ \t]{0,8}(?:[:=]|=>)[ \t]{0,8}(?:\"|')?([^\s\"',;&<>{}\[\]]{4,512})"
)
_PASSWORDISH = re.compile(r"(?i)pass|pwd|secret|private|credential|signing|cookie|salt")
_NOT_A_VALUE = re.compile(
    r"(?i)^(?:\*+|x{3,}|\.{3,}|null|none|nil|true|false|yes|no|undefined|redacted|changeme|example|string|number|boolean"
    r"|required|optional|password|secret|token|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|%[A-Z_]+%|<[^>]*>|\{\{[^}]*\}\})$"
)


def _entropy(value: str) -> float:
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _secretish(key: str, value: str) -> bool:
    if _NOT_A_VALUE.match(value) or value.startswith("<") and value.endswith(">"):
        return False
    if _PASSWORDISH.search(key):
        return len(value) >= 4 and not value.isalpha() or len(value) >= 8
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value)))
    return len(value) >= 16 and classes >= 2 and _entropy(value) >= 3.0


def _secrets(text: str) -> Iterator[Span]:
    if any(hint in text for hint in _TOKEN_HINTS):
        for m in _TOKENS.finditer(text):
            value = m.group()
            if value[:2] in ("AC", "SK") and not value[2:].isalnum():
                continue
            yield Span(m.start(), m.end(), "SECRET")
    if "hooks.slack.com" in text or "/api/webhooks/" in text:
        for m in _SLACK_HOOK.finditer(text):
            yield Span(m.start(), m.end(), "SECRET")
    if "PRIVATE KEY" in text:
        yield from _pem_blocks(text)
    lowered_hint = ("earer" in text or "oken" in text or "asic" in text or "EARER" in text)
    if lowered_hint:
        for m in _BEARER.finditer(text):
            if _entropy(m.group(1)) >= 3.0:
                yield Span(m.start(1), m.end(1), "SECRET")
        for m in _BASIC.finditer(text):
            yield Span(m.start(1), m.end(1), "SECRET")
    if "=" in text or ":" in text:
        for m in _KV.finditer(text):
            key, value = m.group(1), m.group(2)
            if _secretish(key, value):
                yield Span(m.start(2), m.end(2), "SECRET")


_SECRET_KEY = re.compile(
    r"(?i)pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth(?:[_-]?key)?"
    r"|credentials?|session[_-]?(?:id|key)|signing[_-]?key|salt|cookie|(?:account|shared[_-]?access|master|encryption|license|client)[_-]?key"
)


def secret_for_key(key: str, value: str) -> bool:
    """Whether ``value``, stored under ``key`` (a JSON key, an env name), is a secret."""
    return bool(_SECRET_KEY.search(key)) and 4 <= len(value) <= 4096 and " " not in value.strip() and _secretish(key, value)


def _pem_blocks(text: str) -> Iterator[Span]:
    for m in _PEM_BEGIN.finditer(text):
        end_marker = f"-----END {m.group(1)}PRIVATE KEY{m.group(2) or ''}-----"
        end = text.find(end_marker, m.end(), m.end() + 16384)
        stop = end + len(end_marker) if end >= 0 else min(len(text), m.end() + 4096)
        yield Span(m.start(), stop, "SECRET")


FINDERS: dict[str, Finder] = {
    "SECRET": _secrets,
    "EMAIL": _emails,
    "CREDIT_CARD": _cards,
    "US_SSN": _ssns,
    "IBAN": _ibans,
    "PHONE": _phones,
    "IP_ADDRESS": _ips,
    "URL": _urls,
    "DATE": _dates,
}

_HAS_DIGIT = re.compile(r"\d")
_NUMERIC = frozenset({"CREDIT_CARD", "US_SSN", "IBAN", "PHONE", "IP_ADDRESS", "DATE"})


def detect(text: str, labels: frozenset[str] | None = None) -> list[Span]:
    """Non-overlapping spans of sensitive data in ``text``, in order of position.

    ``labels`` limits the search (``None``: every label this module knows).
    """
    if not text:
        return []
    digits = _HAS_DIGIT.search(text) is not None
    found: list[Span] = []
    for label, finder in FINDERS.items():
        if labels is not None and label not in labels and not (label == "URL" and "SECRET" in labels):
            continue
        if label in _NUMERIC and not digits:
            continue
        found.extend(finder(text))
    if labels is not None:
        found = [s for s in found if s.label in labels]
    return with_repeats(text, _resolve(found))


def with_repeats(text: str, spans: list[Span]) -> list[Span]:
    """``spans`` plus every other occurrence of a value they cover.

    Once a value is known to be sensitive, each copy of it is: a phone number glued to the
    next word, which the detector's boundaries refuse, must not survive masking by that."""
    if not spans:
        return spans
    extra: list[Span] = []
    seen: set[str] = set()
    for span in spans:
        value = text[span.start : span.end]
        if len(value) < 6 or value in seen:
            continue
        seen.add(value)
        at = text.find(value)
        while at >= 0:
            if not any(s.start < at + len(value) and at < s.end for s in spans):
                extra.append(Span(at, at + len(value), span.label))
            at = text.find(value, at + len(value))
    return _resolve(spans + extra) if extra else spans


def _resolve(spans: list[Span]) -> list[Span]:
    """Keep one of overlapping spans: a SECRET first; then the longest (an IBAN over the card
    number its digits resemble); a URL last, so what is inside it stays visible to masking."""
    if len(spans) < 2:
        return spans

    def rank(s: Span) -> tuple[int, int, int, int]:
        tier = 0 if s.label == "SECRET" else 2 if s.label == "URL" else 1
        return (tier, -(s.end - s.start), PRIORITY.get(s.label, 9), s.start)

    ranked = sorted(spans, key=rank)
    taken: list[Span] = []
    for span in ranked:
        if all(span.end <= t.start or span.start >= t.end for t in taken):
            taken.append(span)
    taken.sort(key=lambda s: s.start)
    return taken

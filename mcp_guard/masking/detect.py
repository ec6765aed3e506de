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
from collections import Counter
from collections.abc import Callable, Iterator

from . import fast
from .spans import PRIORITY, Span, Taken, resolve, with_repeats

__all__ = ["LABELS", "Span", "detect", "secret_for_key"]

LABELS = (
    "EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "PERSON", "LOCATION", "URL", "DATE", "SECRET"
)
Finder = Callable[[str], Iterator[Span]]

# -- EMAIL ---------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])"
)


_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def _emails(text: str) -> Iterator[Span]:
    """Looked for around each ``@`` only: an address cannot be anywhere else. Its local part is
    the run of local-part characters just before the ``@`` (the pattern refuses to start inside
    one), so one match is tried per ``@``, and each character is walked back over once."""
    at = text.find("@")
    done = -1
    while at >= 0:
        if at > done:
            start = at
            while start > 0 and at - start <= 64 and text[start - 1] in _LOCAL_CHARS:
                start -= 1
            m = _EMAIL.match(text, start) if at - start <= 64 else None
            if m is not None and m.end() > at:
                yield Span(m.start(), m.end(), "EMAIL")
                done = m.end()
        at = text.find("@", at + 1)


# -- numbers: cards, SSNs, phones -----------------------------------------------------------------

_CARD = re.compile(r"(?<![\w.+-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")
# Issuer ranges (the first digits) and the lengths each network issues: a number of another
# length is not that network's card, however its digits add up.
_CARD_NETWORKS: list[tuple[re.Pattern[str], frozenset[int]]] = [
    (re.compile(r"4"), frozenset({13, 16, 19})),                                          # Visa
    (re.compile(r"5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), frozenset({16})),    # Mastercard
    (re.compile(r"3[47]"), frozenset({15})),                                              # American Express
    (re.compile(r"3(?:0[0-5]|09|6|8|9)"), frozenset({14, 16, 17, 18, 19})),                  # Diners Club
    (re.compile(r"6(?:011|4[4-9]|5)"), frozenset({16, 17, 18, 19})),                      # Discover
    (re.compile(r"35(?:2[89]|[3-8]\d)"), frozenset({16, 17, 18, 19})),                    # JCB
    (re.compile(r"62"), frozenset({16, 17, 18, 19})),                                     # UnionPay
    (re.compile(r"220[0-4]"), frozenset({16, 17, 18, 19})),                               # Mir
    (re.compile(r"5[06-8]|6[37]|639"), frozenset({13, 14, 15, 16, 17, 18, 19})),           # Maestro
    (re.compile(r"60|65|81|82|508"), frozenset({16})),                                    # RuPay
]


def _card_network(digits: str) -> bool:
    return any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_NETWORKS)


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
        if 13 <= len(digits) <= 19 and _card_network(digits) and _luhn(digits) and len(set(digits)) > 1:
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


_PHONE_INTL = re.compile(r"\+(?<![\w+]\+)\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,6}(?![\w])")
_PHONE_NANP = re.compile(r"(?<![\w.+-])(?:1[ .-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-]|\.\d)")
_PHONE_NATIONAL = re.compile(r"(?<![\w.+-])0\d{1,4}(?:[ .-]\d{2,8}){1,4}(?![\w-]|\.\d)")
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|tel|telephone|mobile|cell|fax)\b\W{0,12}(\d{7,15})\b")


def _phones_intl(text: str) -> Iterator[Span]:
    for m in _PHONE_INTL.finditer(text):
        n = sum(c.isdigit() for c in m.group())
        if 8 <= n <= 15:
            yield Span(m.start(), m.end(), "PHONE")


def _phones(text: str) -> Iterator[Span]:
    for m in _PHONE_NANP.finditer(text):
        yield Span(m.start(), m.end(), "PHONE")
    for m in _PHONE_NATIONAL.finditer(text):
        raw = m.group()
        n = sum(c.isdigit() for c in raw)
        seps = {c for c in raw if not c.isdigit()}
        if 9 <= n <= 12 and len(seps) == 1 and not _looks_like_date(raw):
            yield Span(m.start(), m.end(), "PHONE")


def _looks_like_date(raw: str) -> bool:
    return bool(re.fullmatch(r"\d{2,4}[./-]\d{1,2}[./-]\d{2,4}", raw))


# -- IBAN ----------------------------------------------------------------------------------------

_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9_][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
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
_URL_REST = re.compile(r"[^\s<>\"'`{}|\\^\[\]]{1,2048}")
_SCHEME = re.compile(r"(?:https?|ftp|wss?)\Z")
_URL_CREDS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@\"'<>]{1,256}:([^\s@/\"'<>]{1,256})@[\w.-]")


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
    for lo, hi in _ipv6_windows(text):
        for m in _IPV6.finditer(text, lo, hi):
            raw = m.group().split("%")[0]
            if raw.count(":") < 2 or not any(c.isdigit() or c in "abcdefABCDEF" for c in raw):
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            yield Span(m.start(), m.end(), "IP_ADDRESS")


_HEX_COLONS = re.compile(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")


_COLON_RUN = re.compile(r"::+")


def _ipv6_windows(text: str) -> Iterator[tuple[int, int]]:
    """Stretches of text where an IPv6 address may be: around "::" or hex:hex:hex. Windows that
    touch are read as one, so a run of colons costs one pass, not one per colon."""
    hits = [(m.start(), m.end()) for m in _COLON_RUN.finditer(text)]
    if text.count(":") >= 7:
        hits.extend((m.start(), m.start() + 2) for m in _HEX_COLONS.finditer(text))
    if not hits:
        return
    hits.sort()
    lo, hi = max(0, hits[0][0] - 45), hits[0][0] + 45
    for start, end in hits:
        if start - 45 > hi:
            yield lo, hi
            lo = start - 45
        hi = max(hi, end + 43)
    yield lo, hi


def _urls(text: str) -> Iterator[Span]:
    """A URL per scheme; a "://" inside the URL before it starts none of its own (it would lie
    within that one, and reading it again would cost the URL's length per "://")."""
    at = text.find("://")
    url_end = at_sign = -1
    while at >= 0:
        if at >= url_end:
            url = _url_at(text, at)
            if url is not None:
                url_end = url.end
                yield url
        if at_sign < at:
            at_sign = text.find("@", at)
            if at_sign < 0:
                at_sign = len(text)
        if at_sign - at < 600:
            creds = _URL_CREDS.match(text, _scheme_start(text, at))
            if creds is not None:
                yield Span(creds.start(1), creds.end(1), "SECRET")
        at = text.find("://", at + 3)


def _url_at(text: str, at: int) -> Span | None:
    scheme = _SCHEME.search(text, max(0, at - 5), at)
    if scheme is None or (scheme.start() and text[scheme.start() - 1].isalnum()):
        return None
    rest = _URL_REST.match(text, at + 3)
    if rest is None:
        return None
    end = rest.end()
    while end > at + 3 and text[end - 1] in ".,;:!?)":
        end -= 1
    return Span(scheme.start(), end, "URL")


def _scheme_start(text: str, at: int) -> int:
    start = at
    while start > 0 and at - start < 21 and (text[start - 1].isalnum() or text[start - 1] in "+.-"):
        start -= 1
    return start


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


def _numeric_dates(text: str) -> Iterator[Span]:
    return _dates(text, _DATES[:-2])


def _dates(text: str, patterns: list[re.Pattern[str]] | None = None) -> Iterator[Span]:
    for pattern in patterns if patterns is not None else _DATES:
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

# Token families, each found only where its literal prefix occurs (a cheap `in` test first).
_TOKEN_FAMILIES: list[tuple[tuple[str, ...], re.Pattern[str]]] = [
    (("AKIA", "ASIA", "ABIA", "ACCA", "AROA", "AIDA"), re.compile(r"(?<![\w-])(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z0-9]{16}(?![\w-])")),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"(?<![\w-])gh[pousr]_[A-Za-z0-9]{36,251}+(?![\w-])")),
    (("github_pat_",), re.compile(r"(?<![\w-])github_pat_[A-Za-z0-9_]{22,244}+(?![\w-])")),
    (("glpat-",), re.compile(r"(?<![\w-])glpat-[A-Za-z0-9_-]{20,64}+(?![\w-])")),
    (("xox",), re.compile(r"(?<![\w-])xox[abposre]-[A-Za-z0-9-]{10,250}+(?![\w-])")),
    (("xapp-",), re.compile(r"(?<![\w-])xapp-\d-[A-Za-z0-9-]{10,250}+(?![\w-])")),
    (("_live_", "_test_"), re.compile(r"(?<![\w-])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,247}+(?![\w-])")),
    (("whsec_",), re.compile(r"(?<![\w-])whsec_[A-Za-z0-9]{24,64}+(?![\w-])")),
    (("sk-",), re.compile(r"(?<![\w-])sk-(?:ant-(?:api|admin)\d{2}-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}+(?![\w-])")),
    (("AIza",), re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])")),
    (("ya29.",), re.compile(r"(?<![\w-])ya29\.[0-9A-Za-z_-]{20,500}+(?![\w-])")),
    (("SG.",), re.compile(r"(?<![\w-])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![\w-])")),
    (("npm_",), re.compile(r"(?<![\w-])npm_[A-Za-z0-9]{36}(?![\w-])")),
    (("pypi-AgE",), re.compile(r"(?<![\w-])pypi-AgE[A-Za-z0-9_-]{50,300}+(?![\w-])")),
    (("hf_",), re.compile(r"(?<![\w-])hf_[A-Za-z0-9]{30,40}+(?![\w-])")),
    (("dop_v1_",), re.compile(r"(?<![\w-])dop_v1_[a-f0-9]{64}(?![\w-])")),
    (("shpat_", "shpca_", "shppa_", "shpss_"), re.compile(r"(?<![\w-])shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?![\w-])")),
    (("AC",), re.compile(r"(?<![\w-])AC[a-f0-9]{32}(?![\w-])")),
    (("SK",), re.compile(r"(?<![\w-])SK[a-f0-9]{32}(?![\w-])")),
    (("eyJ",), re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,4096}+\.eyJ[A-Za-z0-9_-]{8,8192}+\.[A-Za-z0-9_-]{8,4096}+(?![\w-])")),
]
_WORD_CHAR = re.compile(r"[\w-]")
# One search tells which families' prefixes occur at all (cheaper than a test per prefix).
_PREFIX_OF = {prefix: pattern for prefixes, pattern in _TOKEN_FAMILIES for prefix in prefixes}
_ANY_PREFIX = re.compile("|".join(re.escape(p) for p in sorted(_PREFIX_OF, key=len, reverse=True)))
_SLACK_HOOK = re.compile(
    r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}"
    r"|https://(?:discord(?:app)?\.com)/api/webhooks/\d{5,25}/[A-Za-z0-9_-]{30,100}"
)
_BEARER = re.compile(r"(?i)\b(?:bearer|token)\s+([A-Za-z0-9._~+/-]{20,2048}=*)")
_BASIC = re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/]{12,1024}={0,2})(?![\w+/=])")
_PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY( BLOCK)?-----")
# key = value, "key": "value", key: value, where the key holds one of these words; the rest is
# matched from the word on.
# Matched on the lowercased text: a case-insensitive scan of every position costs ~5x more.
_KEY_WORD_RE = re.compile(
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth(?:[_-]?key)?"
    r"|credentials?|session[_-]?(?:id|key)|signing[_-]?key|salt|cookie|(?:account|shared[_-]?access|master|encryption|license|client|secret)[_-]?key"
)
_KV_SEPARATOR = re.compile(r"[A-Za-z0-9_.-]{0,40}[\"']?[ \t]{0,8}(?:[:=]|=>)[ \t]{0,8}(?:\"|')?")
_KV_VALUE = re.compile(r"[^\s\"',;&<>{}\[\]]{4,512}")
# Of the keys whose values start inside one run of value characters ("key=key=key=..."), only
# the first few are read: each reading costs up to the run's length, so the text costs a few
# times its length, however many keys hostile text packs into a run.
_KEYS_PER_RUN = 8
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_PASSWORDISH = re.compile(r"(?i)pass|pwd|secret|private|credential|signing|cookie|salt")
_NOT_A_VALUE = re.compile(
    r"(?i)^(?:\*+|x{3,}|\.{3,}|null|none|nil|true|false|yes|no|undefined|redacted|changeme|example|string|number|boolean"
    r"|required|optional|password|secret|token|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|%[A-Z_]+%|<[^>]*>|\{\{[^}]*\}\})$"
)


_C_LOG_C = [0.0] + [c * math.log2(c) for c in range(1, 4097)]  # values are at most 4096 long


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character, from a table: it runs on every candidate value."""
    value = value[:4096]
    n = len(value)
    if not n:
        return 0.0
    return math.log2(n) - math.fsum(map(_C_LOG_C.__getitem__, Counter(value).values())) / n


_DIGIT = re.compile(r"\d")


def _secretish(key: str, value: str) -> bool:
    if _NOT_A_VALUE.match(value) or value.startswith("<") and value.endswith(">"):
        return False
    if _PASSWORDISH.search(key):
        return len(value) >= 4 and not value.isalpha() or len(value) >= 8
    if len(value) < 16:
        return False
    classes = (value != value.upper()) + (value != value.lower()) + (_DIGIT.search(value) is not None)
    return classes >= 2 and _entropy(value) >= 3.0


def _secrets(text: str, low: str) -> Iterator[Span]:
    families = {_PREFIX_OF[m.group()] for m in _ANY_PREFIX.finditer(text)}
    for pattern in families:
        for m in pattern.finditer(text):
            if m.start() and _WORD_CHAR.match(text, m.start() - 1):
                continue  # glued to a longer word
            yield Span(m.start(), m.end(), "SECRET")
    if "hooks.slack.com" in text or "/api/webhooks/" in text:
        for m in _SLACK_HOOK.finditer(text):
            yield Span(m.start(), m.end(), "SECRET")
    if "PRIVATE KEY" in text:
        yield from _pem_blocks(text)
    if "bearer" in low or "token " in low:
        for m in _BEARER.finditer(text):
            if _entropy(m.group(1)) >= 3.0:
                yield Span(m.start(1), m.end(1), "SECRET")
    if "basic " in low:
        for m in _BASIC.finditer(text):
            yield Span(m.start(1), m.end(1), "SECRET")
    if "=" in text or ":" in text:
        yield from _key_values(text, low)


def _key_words(text: str, low: str) -> Iterator[tuple[int, int]]:
    """Each key word in ``text``, with where its key begins: up to 40 key characters before it.
    A run of key characters is walked back once, however many key words it holds."""
    run_start = run_end = -1
    for word in _KEY_WORD_RE.finditer(low):
        at = word.start()
        if at >= run_end:  # a new run: find how far back it goes (at most 40) and where it ends
            run_start = at
            while run_start > 0 and at - run_start < 40 and text[run_start - 1] in _KEY_CHARS:
                run_start -= 1
            tail = _KEY_RUN.match(text, at)
            run_end = tail.end() if tail is not None else word.end()
            if at - run_start >= 40:
                run_start = -1  # longer than 40: every key below begins at `at - 40`
        yield max(run_start, at - 40, 0), word.end()


_KEY_RUN = re.compile(r"[A-Za-z0-9_.-]+")


def _key_values(text: str, low: str) -> Iterator[Span]:
    done_until = -1
    run_start = run_end = -1
    read = 0
    for begin, word_end in _key_words(text, low):
        if begin < done_until:
            continue
        separator = _KV_SEPARATOR.match(text, word_end)
        if separator is None:
            continue
        at = separator.end()
        if run_start <= at < run_end:
            read += 1
            if read > _KEYS_PER_RUN:
                continue
        m = _KV_VALUE.match(text, at)
        if m is None:
            continue
        if not run_start <= at < run_end:
            run_start, run_end, read = at, m.end(), 1
        if _secretish(text[begin:at], m.group()):
            done_until = m.end()
            yield Span(m.start(), m.end(), "SECRET")


_SECRET_KEY = re.compile(
    r"(?i)pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth(?:[_-]?key)?"
    r"|credentials?|session[_-]?(?:id|key)|signing[_-]?key|salt|cookie|(?:account|shared[_-]?access|master|encryption|license|client)[_-]?key"
)


def secret_for_key(key: str, value: str) -> bool:
    """Whether ``value``, stored under ``key`` (a JSON key, an env name), is a secret."""
    return bool(_SECRET_KEY.search(key)) and 4 <= len(value) <= 4096 and " " not in value.strip() and _secretish(key, value)


def _pem_blocks(text: str) -> Iterator[Span]:
    """A block runs from its BEGIN line to its END line (at most 16 KB on), or 4 KB without one.
    Where an END line was looked for and is missing, it is not looked for there again: text
    of nothing but BEGIN lines costs one pass, not 16 KB per line."""
    missing_until: dict[str, int] = {}  # end marker -> how far it is known to be absent
    for m in _PEM_BEGIN.finditer(text):
        end_marker = f"-----END {m.group(1)}PRIVATE KEY{m.group(2) or ''}-----"
        limit = m.end() + 16384
        searched = missing_until.get(end_marker, -1)
        end = -1
        if searched < limit:
            end = text.find(end_marker, max(m.end(), searched - len(end_marker) + 1), limit)
            if end < 0:
                missing_until[end_marker] = min(limit, len(text))
        stop = end + len(end_marker) if end >= 0 else min(len(text), m.end() + 4096)
        yield Span(m.start(), stop, "SECRET")


# Runs of digits and separators long enough to be a phone, card, SSN, date or IPv4 address:
# one pass over the text finds them; each kind's own check then runs on a small window.
_NUM_RUN = re.compile(r"\d[\d ().+/:-]{4,40}\d")
_RUN_SEPARATORS = str.maketrans("", "", " ().+/:-")
_RUN_MARGIN = 12  # context the checks look at around a run (country codes, "SSN:", lookarounds)


def _numbers(text: str, low: str, want: frozenset[str]) -> Iterator[Span]:
    for run in _NUM_RUN.finditer(text):
        seg = run.group()
        digits = len(seg.translate(_RUN_SEPARATORS))
        if digits < 4:
            continue
        lo = max(0, run.start() - _RUN_MARGIN)
        window = text[lo : run.end() + _RUN_MARGIN]
        checks: list[Finder] = []
        if 13 <= digits <= 19 and "CREDIT_CARD" in want:
            checks.append(_cards)
        if digits == 9 and "US_SSN" in want:
            checks.append(_ssns)
        # NANP numbers have 10 or 11 digits; national formats start with 0; "(" marks an area code.
        if 7 <= digits <= 15 and "PHONE" in want and (digits >= 10 or seg[0] == "0" or "(" in seg):
            checks.append(_phones)
        if 6 <= digits <= 8 and "DATE" in want and ("-" in seg or "/" in seg or "." in seg):
            checks.append(_numeric_dates)
        if 4 <= digits <= 12 and seg.count(".") >= 3 and "IP_ADDRESS" in want:
            checks.append(_ips)
        for check in checks:
            for span in check(window):
                start, end = span.start + lo, span.end + lo
                if end > run.start() and start < run.end():  # found in this run, not in the margin
                    yield Span(start, end, span.label)


_MONTH_WORD = re.compile(r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec")


def detect(text: str, labels: frozenset[str] | None = None, ner: Callable[[str], list[Span]] | None = None) -> list[Span]:
    """Non-overlapping spans of sensitive data in ``text``, in order of position.

    ``labels`` limits the search (``None``: every label this module knows). ``ner`` finds
    PERSON and LOCATION (see ``ner.py``); where its spans overlap a structured one, the
    structured one stays.
    """
    if not text:
        return []
    want = frozenset(FINDERS) if labels is None else labels
    if fast.AVAILABLE and len(text) >= FAST_FROM:
        found = _zoned(text, want)
    else:
        found = _structured(text, want)
    named = _NAMED if labels is None else labels & _NAMED
    if ner is not None and named:
        found = _with_named(found, ner(text), named)
    return with_repeats(text, found)


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
    zones = fast.zones(text, want)
    # Each zone costs what reading ~100 more characters would: dense text is read whole.
    if zones is None or sum(hi - lo for lo, hi in zones) + 100 * len(zones) > size:
        return _structured(text, want)
    for lo, hi in zones:
        first, last = (lo + fast.MARGIN if lo else 0), (hi - fast.MARGIN if hi < size else size)
        for span in _structured(text[lo:hi], want):
            start, end = span.start + lo, span.end + lo
            if start >= first and end <= last:
                found.append(Span(start, end, span.label))
    return found


def _structured(text: str, want: frozenset[str]) -> list[Span]:
    low = text.lower()
    if len(low) != len(text):  # a few characters change length when lowered; keep offsets true
        low = text.translate(_ASCII_LOWER)
    if not low.isascii():  # what case-insensitive matching takes for "s" and "i"
        low = low.translate(_FOLD_LOWER)
    found: list[Span] = []
    if "SECRET" in want:
        found.extend(_secrets(text, low))
    if "EMAIL" in want and "@" in text:
        found.extend(_emails(text))
    if ("URL" in want or "SECRET" in want) and "://" in text:
        found.extend(_urls(text))
    if "IBAN" in want:
        found.extend(_ibans(text))
    if "IP_ADDRESS" in want and ("::" in text or text.count(":") >= 7):
        found.extend(s for s in _ips(text) if ":" in text[s.start : s.end])
    if "PHONE" in want and "+" in text:
        found.extend(s for s in _phones_intl(text))
    if "US_SSN" in want and ("ssn" in low or "social sec" in low or "soc" in low):
        found.extend(Span(m.start(1), m.end(1), "US_SSN") for m in _SSN_BARE.finditer(text) if _ssn_valid(m.group(1)[:3], m.group(1)[3:5], m.group(1)[5:]))
    if "PHONE" in want and ("phone" in low or "tel" in low or "mobile" in low or "cell" in low or "fax" in low):
        found.extend(Span(m.start(1), m.end(1), "PHONE") for m in _PHONE_CONTEXT.finditer(text))
    if "DATE" in want and _MONTH_WORD.search(low):
        found.extend(_dates(text, _DATES[-2:]))
    found.extend(_numbers(text, low, want))
    found = [s for s in found if s.label in want]
    if "\\" in text:
        found = [_after_escape(text, s) for s in found]
    return resolve(found)


_ESCAPE = re.compile(r"\\(?:u[0-9A-Fa-f]{4}|[nrtbf])")


def _after_escape(text: str, span: Span) -> Span:
    """A span that begins inside an escape sequence (``\\njane@...``) starts after it."""
    for back in (1, 5):
        m = _ESCAPE.match(text, span.start - back) if span.start >= back else None
        if m is not None and m.end() > span.start:
            return Span(m.end(), span.end, span.label) if m.end() < span.end else span
    return span


_NAMED = frozenset({"PERSON", "LOCATION"})  # found by a model (ner.py), not by patterns
FINDERS = {label: None for label in LABELS if label not in _NAMED}
_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}
_FOLD_LOWER = {0x017F: "s", 0x0131: "i", 0x212A: "k", 0x0130: "i"}

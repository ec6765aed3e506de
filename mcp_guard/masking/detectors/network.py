"""Network identifiers: IPv4 and IPv6 addresses, URLs (and the password in a URL's userinfo)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from urllib.parse import unquote

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, RunCheck, register
from .values import entropy_at_least, named, stand_in

# A full stop may end the sentence an address ends ("the host is 10.0.0.1."), but not go on
# into a longer dotted number (1.2.3.4.5, an OID, a version).
_IPV4 = lazy(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
# Eight groups, "::" for zeros, or six and an IPv4 address at the end (::ffff:192.0.2.128).
_IPV6 = lazy(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4}|:)(?:%\w{1,16})?(?![\w:])"
)
_URL_REST = lazy(r"[^\s<>\"'`{}|\\^\[\]]{1,2048}")
_SCHEME = lazy(r"(?:https?|ftp|wss?)\Z")
# userinfo: a user and a password, or a password alone (redis://:secret@cache).
_URL_CREDS = lazy(r"[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@\"'<>]{0,256}:([^\s@/\"'<>]{1,256})@[\w.-]")


# A password in a URL that is only the word for one ("user:password@", "jo:a%20secret@",
# "u:${DB_PASS}@", "my_password_here") is documentation's example, not a credential. The word
# inside a longer password ("MySecretPass2024") is not: that is what people choose.
_PLACEHOLDER_PASSWORD = lazy(
    r"(?i)(?:(?:my|your|the|some|a|db|super)[-_ ]?)?(?:secret|passw(?:or)?d|changeme)(?:[-_ ]?(?:here|goes[-_ ]?here|123))?"
    r"|pass|pwd|pw|bar|baz|foo|test|example|\*+|x{3,}|\.{3}|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|\$[A-Z_][A-Z0-9_]*"
)


def _url_password(value: str) -> bool:
    """Not a placeholder, a stand-in ("key_1234") or one character ("A:B", an escaped colon decoded)."""
    return len(value) > 1 and not _PLACEHOLDER_PASSWORD.fullmatch(value) and not stand_in(value)


def _ips(text: str) -> Iterator[Span]:
    yield from _ipv4s(text)
    yield from _ipv6s(text)


def _ipv4s(text: str) -> Iterator[Span]:
    if "." in text:
        for m in _IPV4.finditer(text):
            try:
                address = ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            if address.is_unspecified or str(address) == "255.255.255.255":
                continue  # "listen on all interfaces", not anyone's address
            yield Span(m.start(), m.end(), "IP_ADDRESS")


def _ipv6s(text: str) -> Iterator[Span]:
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


_HEX_COLONS = lazy(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")


_COLON_RUN = lazy(r"::+")


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
                yield from _capabilities(text, url)
        if at_sign < at:
            at_sign = text.find("@", at)
            if at_sign < 0:
                at_sign = len(text)
        if at_sign - at < 600:
            creds = _URL_CREDS.match(text, _scheme_start(text, at))
            if creds is not None and _url_password(unquote(creds.group(1))):
                yield Span(creds.start(1), creds.end(1), "SECRET")
        at = text.find("://", at + 3)


# A path segment or query value that is a random key (a share link's id, a signed URL's
# signature): long, all three of upper case, lower case and digits, and no word or hex digest.
_URL_PART = lazy(r"(?<=[/=])[A-Za-z0-9_-]{20,256}(?=[/?&#;.]|$)")
_HEX = lazy(r"[0-9a-fA-F-]+")


# A slug's pieces: words, numbers (dates), and short words with a version (css3, v4).
_SLUG_PIECE = lazy(r"\d{1,8}|[A-Za-z]{1,4}\d{1,2}")


def _slug(part: str) -> bool:
    """A page's name in a path (WD-css3-flexbox-20090723, Node-v4-compatibility): words and
    numbers between hyphens or underscores, one a word of three letters or more; a random key
    seldom splits into words."""
    pieces = [p for p in re.split(r"[-_]", part) if p]
    if len(pieces) < 2 or not all(_SLUG_PIECE.fullmatch(p) or named(p) for p in pieces):
        return False
    return any(p.isalpha() and len(p) >= 3 for p in pieces)


def _capabilities(text: str, url: Span) -> Iterator[Span]:
    host = text.find("/", text.find("://", url.start) + 3, url.end)
    for m in _URL_PART.finditer(text, host if host > 0 else url.end, url.end):
        part = m.group()
        if _HEX.fullmatch(part) or named(part) or not entropy_at_least(part, 3.5) or _slug(part):
            continue
        if any(c.isupper() for c in part) and any(c.islower() for c in part) and any(c.isdigit() for c in part):
            yield Span(m.start(), m.end(), "SECRET")


def _url_at(text: str, at: int) -> Span | None:
    scheme = _SCHEME.search(text, max(0, at - 5), at)
    if scheme is None or (scheme.start() and text[scheme.start() - 1].isalnum()):
        return None
    rest = _URL_REST.match(text, at + 3)
    if rest is None:
        return None
    end = rest.end()
    if scheme.start() and text[scheme.start() - 1] == ",":  # a CSV cell: its comma ends it
        comma = text.find(",", at + 3, end)
        end = comma if comma > 0 else end
    while end > at + 3 and text[end - 1] in ".,;:!?)":
        end -= 1
    return Span(scheme.start(), end, "URL")


def _scheme_start(text: str, at: int) -> int:
    start = at
    while start > 0 and at - start < 21 and (text[start - 1].isalnum() or text[start - 1] in "+.-"):
        start -= 1
    return start


def _ipv6_in(text: str, low: str) -> Iterator[Span]:
    return (s for s in _ips(text) if ":" in text[s.start : s.end])


register(
    Detector(
        "ipv4", frozenset({"IP_ADDRESS"}), (Hint(_IPV4.pattern, run=True),),
        run=RunCheck(lambda digits, seg: seg.count(".") >= 3, _ips),
        examples=("from 203.0.113.7:443", "allow 203.0.113.7/32", "the host is 192.168.1.20.", "ips 10.0.0.1 10.0.0.2 10.0.0.3"),
        not_flagged=("listen on 0.0.0.0:8080", "version 1.2.3", "python 3.11.7", "oid 1.3.6.1.4.1.311"),
    ),
    Detector(
        "ipv6", frozenset({"IP_ADDRESS"}),
        (Hint(r"::", back=45, fwd=45), Hint(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:", back=45, fwd=45)),
        find=_ipv6_in, when=lambda text, low: "::" in text or text.count(":") >= 7,
        examples=("via 2001:db8::8a2e:370:7334", "mapped ::ffff:192.0.2.128 here"),
        not_flagged=("time 12:30:45, ratio 3:2", "std::vector<int>"),
    ),
    Detector(
        "url", frozenset({"URL", "SECRET"}),
        (
            # A URL runs to the first character _URL_REST stops at, from its "://"; its scheme
            # (up to 21 characters) is before, in the zone of the "://" alone, which the zone of
            # the rest overlaps. (A start of match tracked over the scheme's characters, which
            # fill any text, slowed the whole pre-pass by a quarter; from "://" it costs nothing.)
            Hint(r"://", back=24, fwd=0),
            Hint(r"://[^\s<>\"'`{}|\\^\[\]]{0,2048}(?:$|[\s<>\"'`{}|\\^\[\]])", fwd=0, som=True),
            Hint(r"://[^\s:/@\"'<>]{0,256}:[^\s@/\"'<>]{1,256}@", fwd=8, som=True),
        ),
        find=lambda text, low: _urls(text), when=lambda text, low: "://" in text,
        examples=("see https://example.com/a?b=c.", "https://files.example/s/Qm9xT4kLw2ZpR8vN3sY7uC1?dl=1",
                  "Bank,https://bank.example/login,jo@example.com,pw", "postgres://app:s3cr3t!x@db:5432/x", "redis://:Zx9QvL2mT8rP@cache:6379"),
        not_flagged=("a :// b", "file:/etc/hosts", "https://jo:a%20secret@example.com",
                     "redis://:${REDIS_PASSWORD}@cache:6379", "postgres://user:pass@localhost:5432/db"),
    ),
)

"""Secrets hidden in base64 (issue 15's evasions): a run of base64 in text that decodes to
printable text is read again by the detectors of secrets and of the values masked by default
(addresses, phones, cards, SSNs, IBANs), and what they find there is mapped back, as SECRET, to
the base64 characters that encode it.

A base64 character group of four encodes three bytes, so a secret at bytes [a, b) of the
decoded text is masked as the groups holding them: characters [a // 3 * 4, ceil(b / 3) * 4).
The bytes around it that share a group are masked with it; no byte of the secret survives.
Only one level is decoded (base64 inside base64 is not followed), and binary payloads (images,
compressed data) are dropped after one look at their decoded bytes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, register

# Long enough to hold an address, a token or "password=..." (18 bytes); the standard alphabet only (the
# URL-safe one's "-" and "_" join the words of names). Longer runs than _MAX_RUN are payloads
# (images, archives), not a value someone encoded to slip it past a filter.
_MAX_RUN = 512
# A run starts after none of the alphabet nor any other letter or digit ("é", "٣"): a letter
# glued before a run shifts its groups of four whatever the letter, and the pre-pass, which
# reads each other letter as an ASCII one (fast.py), then finds the same starts (see _RUN_HINT).
_RUN = lazy(r"(?<![A-Za-z0-9+/])(?<![^\W_])[A-Za-z0-9+/]{24,512}+={0,2}(?![A-Za-z0-9+/=])")
# What is looked for in a decoded run: secrets, and the values masked by default (an address or
# a card number encoded to slip past a filter is still that address), all masked as SECRET.
_DECODED_LABELS = frozenset({"SECRET", "EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN"})
# Base64 of text changes case between neighbours within its first ten characters (hex digests,
# which fill code and build output, never do).
_HEAD = r"[A-Za-z0-9+/]{0,8}(?:[A-Z][a-z]|[a-z][A-Z])"
_MIXED_HEAD = lazy(_HEAD)


def _where(keep: Callable[[int], bool]) -> str:
    """The characters of the alphabet whose value (0-63) ``keep`` accepts, as a class."""
    return "[" + "".join(c for i, c in enumerate(_ALPHABET) if keep(i)) + "]"


# Where the pre-pass looks: the first 24 characters of a run that can decode to printable text.
# Every byte of it is below 0x80, so in each group of four the first character's value is below
# 32, the second's has no 8 and the third's is 0 or 1 modulo 4. Nothing but classes, but one
# start per run (none inside it, unlike a guard that lets ASCII letters stand for others), which
# Hyperscan scans as fast as a literal; the zone reaches over the longest run. The former hint
# (a case change among the first ten characters, from any start inside a run) took the whole
# pre-pass from ~90 to ~52 MB/s on clean text.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_GROUP = _where(lambda i: i < 32) + _where(lambda i: not i & 8) + _where(lambda i: i % 4 < 2) + "[A-Za-z0-9+/]"
_RUN_HINT = r"(?:^|[^A-Za-z0-9+/])(?:" + _GROUP + "){6}"
_PRINTABLE = lazy(rb"[\t\n\r\x20-\x7e]*")
_DEPTH = [0]  # decoding inside a decoded text is not followed


def _decoded(run: str) -> str | None:
    """The run's decoded text, when it is base64 of printable ASCII; else None."""
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if _PRINTABLE.fullmatch(raw) is None:
        return None  # binary: an image, a digest, a compressed blob
    return raw.decode("ascii")



def _mixed(run: str) -> bool:
    """Base64 of text mixes capitals and small letters; hex digests and lowercase words do not.
    (Not always digits: the base64 of "4111 1111 1111 1111" has none.)"""
    return any(c.isupper() for c in run) and any(c.islower() for c in run)


def _encoded_secrets(text: str, low: str) -> Iterator[Span]:
    if _DEPTH[0]:
        return
    from ..detect import detect  # the runner reads the registry this module is part of

    _DEPTH[0] += 1
    try:
        for m in _RUN.finditer(text):
            run = m.group()
            if _MIXED_HEAD.match(run) is None or not _mixed(run):
                continue
            plain = _decoded(run)
            if plain is None:
                continue
            # Values next to each other share a group of four at their edge: their stretches
            # are merged, or the overlap would leave one of them raw.
            stretches: list[list[int]] = []
            for span in detect(plain, _DECODED_LABELS):
                lo = m.start() + span.start // 3 * 4
                hi = min(m.start() + -(-span.end // 3) * 4, m.end())
                if stretches and lo <= stretches[-1][1]:
                    stretches[-1][1] = max(stretches[-1][1], hi)
                else:
                    stretches.append([lo, hi])
            for lo, hi in stretches:
                yield Span(lo, hi, "SECRET")
    finally:
        _DEPTH[0] -= 1


def _example() -> str:
    inner = "DB_PASSWORD=" + "Zx9Qv!L2mT8rP4kW\n" + "API_" + "TOKEN=" + "sk-" + "proj-" + "Qw7Er9Ty2Ui4Op6As8Df1Gh3Jk5"
    return "config: " + base64.b64encode(inner.encode()).decode()


register(
    Detector(
        "base64-encoded-secrets", frozenset({"SECRET"}), (Hint(_RUN_HINT, fwd=_MAX_RUN + 16),),
        find=_encoded_secrets,
        examples=(_example(), "contact: " + base64.b64encode(b"jane.doe@example.com").decode(),
                  "row " + base64.b64encode(b"card 4111 1111 1111 1111").decode(),
                  "x " + base64.b64encode(b"4111 1111 1111 1111").decode()),
        not_flagged=(
            "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "data:image/png;base64," + base64.b64encode(bytes(range(256)) * 2).decode(),
            "docs: " + base64.b64encode(b"Mixing capitals, small letters and 42 digits is fine here.").decode(),
        ),
    ),
)

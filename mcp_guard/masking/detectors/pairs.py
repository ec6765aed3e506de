"""Secrets known by the company they keep: a value with no key word before it and no prefix of
its own, that a credential's other half beside it gives away.

An AWS secret access key is 40 characters of base64 with nothing to tell it from any other
such run, but it travels with its access key id (``AKIA`` + 16, ``ASIA`` for a session):
``use AKIA... / wJalr...``, a CSV row, two lines of a note. Near an access key id (within
_REACH characters either way), a 40-character run of that alphabet mixing capitals, small
letters and digits (so not a hex digest, a word or a path) is that key."""

from __future__ import annotations

from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, register

_REACH = 160
_KEY_ID = r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
_KEY_ID_RE = lazy(_KEY_ID)
_SECRET = lazy(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _mixed(value: str) -> bool:
    return any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)


def _aws_secrets(text: str, low: str) -> Iterator[Span]:
    done = 0
    for key in _KEY_ID_RE.finditer(text):
        if "EXAMPLE" in key.group():
            continue  # AWS's documented example pair (AKIAIOSFODNN7EXAMPLE) is no credential
        lo, hi = max(done, key.start() - _REACH), key.end() + _REACH
        for m in _SECRET.finditer(text, lo, min(hi, len(text))):
            value = m.group()
            if _mixed(value) and "EXAMPLE" not in value:
                yield Span(m.start(), m.end(), "SECRET")
        done = max(done, min(hi, len(text)))


_KEY_ID_EXAMPLE = "AKIA" + "Q3VZ7K2M9PXR4T6W"
_SECRET_EXAMPLE = "Zx9QvL2mT8rP4kW7nB3c" + "Yh5Jd1Fs6Gt0Ka8Lm2Np"

register(
    Detector(
        "aws-secret-beside-key-id", frozenset({"SECRET"}), (Hint(_KEY_ID, back=_REACH + 48, fwd=_REACH + 48),),
        find=_aws_secrets, when=lambda text, low: "AKIA" in text or "ASIA" in text,
        examples=(
            f"use key {_KEY_ID_EXAMPLE} / {_SECRET_EXAMPLE}",
            f"{_KEY_ID_EXAMPLE},{_SECRET_EXAMPLE},us-east-1",
            f"id {_KEY_ID_EXAMPLE}\nsecret {_SECRET_EXAMPLE}",
        ),
        not_flagged=(
            "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            f"{_KEY_ID_EXAMPLE[:4]}x sha1 " + "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
    ),
)

"""Red team round 2: `mcp-guard scan` must find the same secrets in a long text (over 512
characters) with and without the Hyperscan pre-pass (README: `--no-prefilter` "gives the same
spans").

Python's ``\\s`` takes the ASCII information separators U+001C..U+001F for whitespace; the
pre-pass keeps ASCII as it is, and Hyperscan's ``\\s`` does not. A bearer token parted from its
keyword by one of them is masked when the text is read whole, and passes untouched through the
pre-pass."""

from __future__ import annotations

import json
import secrets
import string
import subprocess

import pytest

from tests.conftest import PY

SEPARATORS = {"file separator": "\x1c", "group separator": "\x1d", "record separator": "\x1e", "unit separator": "\x1f"}


def _scan(text: str, *flags: str) -> list[tuple[str, int, int]]:
    line = json.dumps({"id": 1, "text": text}) + "\n"
    done = subprocess.run([PY, "-m", "mcp_guard", "scan", "--jsonl", *flags], input=line, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    spans = json.loads(done.stdout.splitlines()[0])["spans"]
    del done  # its stdout holds the text
    return [(s["label"], s["start"], s["end"]) for s in spans]


@pytest.mark.parametrize("name", sorted(SEPARATORS))
@pytest.mark.parametrize("keyword", ["Bearer", "bearer"])
def test_a_bearer_token_after_an_ascii_information_separator_is_found_with_and_without_the_pre_pass(
    name: str, keyword: str,
) -> None:
    # A bearer token of plain words and digits: high enough in entropy for nothing else to flag it.
    token = "abcdefghijklmnopqrstuvwxyz" + "".join(secrets.choice(string.digits) for _ in range(6))
    text = "x" * 600 + " " + keyword + SEPARATORS[name] + token + " end"
    whole, zoned = _scan(text, "--no-prefilter"), _scan(text)
    at = text.index(token)
    assert any(s <= at < e for _, s, e in whole), f"{name}: the detectors reading the whole text miss the token"
    assert zoned == whole, f"{name}: with the pre-pass {zoned}, reading the whole text {whole}: the token is left unmasked"

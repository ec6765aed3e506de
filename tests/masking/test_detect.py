"""Detectors: what they must find, what they must leave alone, and how they hold up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mcp_guard.masking import detect
from tests.conftest import ROOT

# Token-shaped values are assembled here, so the file itself holds none.
GH = "gh" + "p_" + "16C7e42F292c6912E7710c838347Ae178B4a"
AWS_ID = "AK" + "IA" + "Q7Z3" * 4

FOUND = [
    ("mail jane.doe@example.com today", "EMAIL", "jane.doe@example.com"),
    ("call +44 20 7946 0958", "PHONE", "+44 20 7946 0958"),
    ("call (415) 555-2671", "PHONE", "(415) 555-2671"),
    ("mobile 06 12 34 56 78", "PHONE", "06 12 34 56 78"),
    ("card 4111-1111-1111-1111.", "CREDIT_CARD", "4111-1111-1111-1111"),
    ("amex 3782 822463 10005", "CREDIT_CARD", "3782 822463 10005"),
    ("ssn 123-45-6789", "US_SSN", "123-45-6789"),
    ("SSN: 123456789", "US_SSN", "123456789"),
    ("pay to DE89 3704 0044 0532 0130 00 now", "IBAN", "DE89 3704 0044 0532 0130 00"),
    ("GB82WEST12345698765432", "IBAN", "GB82WEST12345698765432"),
    ("from 203.0.113.7:443", "IP_ADDRESS", "203.0.113.7"),
    ("via 2001:db8::8a2e:370:7334", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    ("see https://example.com/a?b=c.", "URL", "https://example.com/a?b=c"),
    ("born 1985-03-14", "DATE", "1985-03-14"),
    ("on March 3, 2024", "DATE", "March 3, 2024"),
    (f"GITHUB_TOKEN={GH}", "SECRET", GH),
    (f"id {AWS_ID}", "SECRET", AWS_ID),
    ("postgres://app:s3cr3t!x@db:5432/x", "SECRET", "s3cr3t!x"),
    ('{"password": "hunter22"}', "SECRET", "hunter22"),
    ("client_secret: 8f14e45fceea167a5a36dedd4bea2543", "SECRET", "8f14e45fceea167a5a36dedd4bea2543"),
]


@pytest.mark.parametrize(("text", "label", "value"), FOUND, ids=[f"{f[1]}-{i}" for i, f in enumerate(FOUND)])
def test_each_label_is_found_with_its_exact_extent(text: str, label: str, value: str) -> None:
    spans = detect(text)
    assert [(s.label, text[s.start:s.end]) for s in spans] == [(label, value)]


CLEAN = [
    "request 123e4567-e89b-12d3-a456-426614174000 ok",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "commit 3b18e512dba79e4c8300dd08aeb37f8e728b8dad",
    "2024-01-15T10:00:00Z INFO started",
    "version 1.2.3 and v10.4.0-rc1, python 3.11.7",
    "order 1234567890123 weighs 12.5 kg, total 4096 bytes",
    "listen on 0.0.0.0:8080",
    "password_min_length=12 token_count=5000",
    "password: ******** api_key: ${API_KEY}",
    "time 12:30:45, ratio 3:2, mac aa:bb:cc:dd:ee:ff",
]


@pytest.mark.parametrize("text", CLEAN)
def test_ordinary_technical_text_is_left_alone(text: str) -> None:
    assert detect(text) == []


def test_a_pem_private_key_block_is_one_secret() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow" + "A" * 60 + "\n" + "B" * 64 + "\n-----END RSA PRIVATE KEY-----"
    text = f"key:\n{key}\nrest"
    assert [(s.label, text[s.start:s.end]) for s in detect(text)] == [("SECRET", key)]


def test_a_secret_inside_a_url_is_its_own_span_inside_the_url() -> None:
    text = "https://bob:pa55word@example.com/x"
    assert [(s.label, text[s.start:s.end]) for s in detect(text)] == [("URL", text), ("SECRET", "pa55word")]


def test_hostile_input_is_handled_without_blowup() -> None:
    """Long runs of the characters the patterns care about; each call must simply return.

    (Time is measured in benchmarks/masking.py, not here; this checks the shapes that make
    backtracking engines explode produce no errors and no absurd spans.)"""
    for text in ["a" * 100_000 + "@", "1 " * 50_000, "-" * 100_000, "x=" * 50_000, "::" * 50_000, "a." * 50_000 + "@b", "eyJ" * 30_000]:
        for span in detect(text):
            assert span.end - span.start <= 20_000


def test_the_seeded_corpus_meets_the_quality_bar() -> None:
    generate = subprocess.run([sys.executable, str(ROOT / "fixtures/pii/generate.py"), "--records", "1200", "--seed", "11"], capture_output=True, text=True, check=True)
    scored = subprocess.run([sys.executable, str(ROOT / "fixtures/pii/score.py"), "--json"], input=generate.stdout, capture_output=True, text=True, check=True)
    result = json.loads(scored.stdout)
    assert len(generate.stdout.splitlines()) >= 1000
    for label, row in result["labels"].items():
        assert row["gold"] > 0, label  # the generator makes every label
        assert row["recall"] >= 0.98, (label, row, result["misses"])
        assert row["leak_rate"] == 0.0, label
    assert result["labels"]["SECRET"]["gold"] > 100
    assert result["false_positives_per_1000_clean"] < 5


def test_scan_without_the_pre_pass_writes_exactly_what_scan_with_it_writes() -> None:
    """``scan --no-prefilter`` reads every text whole: on long texts built from many records
    (where the pre-pass decides) both runs must write the same lines, byte for byte."""
    generate = subprocess.run([sys.executable, str(ROOT / "fixtures/pii/generate.py"), "--records", "600", "--seed", "23"],
                              capture_output=True, text=True, check=True)
    records = [json.loads(line)["text"] for line in generate.stdout.splitlines()]
    texts = ["\n".join(records[i:i + 40]) for i in range(0, len(records), 40)]
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    assert min(len(t) for t in texts) >= 512  # long enough for the pre-pass to run
    outputs = [
        subprocess.run([sys.executable, "-m", "mcp_guard", "scan", "--jsonl", *flags], input=lines,
                       capture_output=True, text=True, check=True).stdout
        for flags in ([], ["--no-prefilter"])
    ]
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == len(texts)
    assert sum(len(json.loads(line)["spans"]) for line in outputs[0].splitlines()) > 100

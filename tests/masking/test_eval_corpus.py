"""The evaluation corpora under fixtures/pii/eval/ stay well-formed: exact offsets, known labels, clean
records without spans, card numbers that pass Luhn, IBANs that pass mod-97, SSNs in issued ranges, and
files that a fresh build reproduces byte for byte. Detection scores are not asserted here: they move as
the engine improves, and the corpora must not be tuned to it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_guard.masking.detect import LABELS

EVAL = Path(__file__).resolve().parents[2] / "fixtures" / "pii" / "eval"
sys.path.append(str(EVAL))  # appended: these module names must not shadow anything installed

import score_eval  # noqa: E402
import values  # noqa: E402

CORPORA = ("tool", "public", "clean")


def _records(name: str) -> list[dict[str, Any]]:
    with (EVAL / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module", params=CORPORA)
def corpus(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, _records(request.param)


def test_every_record_has_the_generator_shape(corpus: tuple[str, list[dict[str, Any]]]) -> None:
    _, records = corpus
    for rec in records:
        assert set(rec) == {"id", "kind", "text", "spans"}, rec["id"]
        assert isinstance(rec["text"], str) and rec["text"], rec["id"]
    ids = [rec["id"] for rec in records]
    assert len(ids) == len(set(ids))


def test_every_gold_span_lies_inside_its_text_with_a_known_label(corpus: tuple[str, list[dict[str, Any]]]) -> None:
    _, records = corpus
    for rec in records:
        for span in rec["spans"]:
            assert span["label"] in LABELS, (rec["id"], span)
            assert 0 <= span["start"] < span["end"] <= len(rec["text"]), (rec["id"], span)
            value = rec["text"][span["start"] : span["end"]]
            assert value == value.strip(), (rec["id"], span["label"])  # no stray blank in a span's edges


def test_clean_records_hold_no_span_and_labeled_records_hold_some(corpus: tuple[str, list[dict[str, Any]]]) -> None:
    _, records = corpus
    for rec in records:
        assert bool(rec["spans"]) == (rec["kind"] != "clean"), rec["id"]


def test_card_numbers_pass_luhn_and_have_a_card_length(corpus: tuple[str, list[dict[str, Any]]]) -> None:
    _, records = corpus
    for rec in records:
        for span in rec["spans"]:
            if span["label"] == "CREDIT_CARD":
                value = rec["text"][span["start"] : span["end"]]
                assert set(value) <= set("0123456789 -"), rec["id"]
                assert 12 <= sum(c.isdigit() for c in value) <= 19 and values.luhn_ok(value), rec["id"]


def test_ibans_pass_mod_97_with_their_registry_length(corpus: tuple[str, list[dict[str, Any]]]) -> None:
    _, records = corpus
    lengths = {c: 4 + sum(int(n) for n in _counts(spec)) for c, spec in values.IBAN_BBAN.items()}
    for rec in records:
        for span in rec["spans"]:
            if span["label"] == "IBAN":
                value = rec["text"][span["start"] : span["end"]]
                compact = value.replace(" ", "").replace("-", "")
                assert values.iban_ok(value), rec["id"]
                assert len(compact) == lengths[compact[:2]], rec["id"]


def _counts(spec: str) -> list[str]:
    out, num = [], ""
    for ch in spec:
        if ch.isdigit():
            num += ch
        else:
            out.append(num)
            num = ""
    return out


def test_ssns_are_in_issued_ranges(corpus: tuple[str, list[dict[str, Any]]]) -> None:
    _, records = corpus
    for rec in records:
        for span in rec["spans"]:
            if span["label"] == "US_SSN":
                assert values.ssn_ok(rec["text"][span["start"] : span["end"]]), rec["id"]


def test_the_validators_reject_what_they_must() -> None:
    # The checks above are only worth something if they can fail.
    assert not values.luhn_ok("4111 1111 1111 1112")
    assert not values.iban_ok("DE89 3704 0044 0532 0130 01")
    assert values.iban_ok("DE89 3704 0044 0532 0130 00")
    assert not values.ssn_ok("666-12-3456") and not values.ssn_ok("900-12-3456") and not values.ssn_ok("123-00-4567")


def test_the_committed_files_are_what_the_build_writes() -> None:
    proc = subprocess.run(
        [sys.executable, str(EVAL / "build.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_no_file_holds_a_whole_token_shaped_secret() -> None:
    # SECRET values are partly \\u-escaped in the files; the raw bytes must not carry a value whole.
    for name in CORPORA:
        raw = (EVAL / f"{name}.jsonl").read_text(encoding="utf-8")
        for rec in _records(name):
            for span in rec["spans"]:
                value = rec["text"][span["start"] : span["end"]]
                if span["label"] == "SECRET" and len(value) >= 8:
                    assert json.dumps(value)[1:-1] not in raw, rec["id"]


def test_clean_records_hold_no_url_ip_address_or_email() -> None:
    # The engine reports every URL and IP address, so one of them in a clean record would be a correct
    # span counted as a false one.
    shapes = [r"://", r"mailto:", r"\b\d{1,3}(?:\.\d{1,3}){3}\b", r"[\w.+-]+@[\w-]+\.[A-Za-z]{2,}"]
    for name in CORPORA:
        for rec in _records(name):
            if rec["kind"] == "clean":
                for shape in shapes:
                    assert re.search(shape, rec["text"]) is None, (rec["id"], shape)


def test_every_web_url_and_ipv4_address_in_a_labeled_record_is_gold() -> None:
    # Gold must be complete for the labels the engine always reports, or a correct span would look like noise.
    shapes = {"URL": r"https?://[^\s\"'<>)]+", "IP_ADDRESS": r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])"}
    for name in CORPORA:
        for rec in _records(name):
            if rec["kind"] == "clean":
                continue
            for label, shape in shapes.items():
                for m in re.finditer(shape, rec["text"]):
                    assert any(s["start"] <= m.start() < s["end"] for s in rec["spans"]), (rec["id"], label)


# -- the scorer's metric definitions (issue 15): what counts as found, as leaked, as a false span --------------------


_TEXT = "key sk_abcdefghij mail ann@example.org end"
_SECRET, _EMAIL = (4, 17), (23, 38)
_LABELED = {
    "id": "x",
    "kind": "env",
    "text": _TEXT,
    "spans": [{"start": 4, "end": 17, "label": "SECRET"}, {"start": 23, "end": 38, "label": "EMAIL"}],
}
_CLEAN = {"id": "c", "kind": "clean", "text": "nothing here", "spans": []}
_MASKED = frozenset({"SECRET", "EMAIL"})


def _scored(spans: list[tuple[int, int, str]], records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return score_eval.score(records or [_LABELED], lambda text: spans if text == _TEXT else [], _MASKED)


def test_scorer_gives_full_recall_and_no_leak_to_a_detector_that_finds_the_gold() -> None:
    result = _scored([(*_SECRET, "SECRET"), (*_EMAIL, "EMAIL")])
    assert result["recall_any"] == 1.0 and result["secret_recall"] == 1.0 and result["leak_rate"] == 0.0


def test_scorer_counts_a_partly_masked_value_as_found_and_leaked() -> None:
    result = _scored([(_SECRET[0], _SECRET[1] - 1, "SECRET"), (*_EMAIL, "EMAIL")])
    assert result["labels"]["SECRET"]["recall_any"] == 1.0
    assert result["labels"]["SECRET"]["leak"] == 1.0 and result["leak_rate"] == 0.5


def test_scorer_joins_adjacent_masked_spans_when_it_decides_a_leak() -> None:
    result = _scored([(4, 10, "SECRET"), (10, 17, "SECRET"), (*_EMAIL, "EMAIL")])
    assert result["leak_rate"] == 0.0


def test_scorer_finds_with_any_label_but_a_label_left_readable_leaks() -> None:
    result = _scored([(*_SECRET, "URL"), (*_EMAIL, "EMAIL")])
    secret = result["labels"]["SECRET"]
    assert secret["recall_any"] == 1.0 and secret["recall_same"] == 0.0 and secret["leak"] == 1.0


def test_scorer_counts_every_span_on_a_clean_record_per_thousand() -> None:
    records = [_CLEAN, dict(_CLEAN, id="c2", text=_TEXT)]
    result = score_eval.score(records, lambda text: [(0, 3, "DATE")] if text == _TEXT else [], _MASKED)
    assert result["clean_records"] == 2 and result["fp_per_1k_clean"] == 500.0
    assert result["fp_masked_per_1k_clean"] == 0.0  # DATE is not masked by default

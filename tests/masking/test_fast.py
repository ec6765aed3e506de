"""The Hyperscan pre-pass (fast.py) only decides where the detectors look: on every text it
must give exactly what the detectors give reading the whole text."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_guard.masking import detect as detect_text
from mcp_guard.masking import fast

detect_module = sys.modules["mcp_guard.masking.detect"]
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "pii"))
import generate  # noqa: E402

pytestmark = pytest.mark.skipif(not fast.AVAILABLE, reason="hyperscan has no wheel for this platform: the pre-pass is off")


def whole(text: str) -> list[object]:
    """The detectors on the whole text, no pre-pass (what `scan --no-prefilter` reads)."""
    return detect_text(text, prefilter=False)


def tool_results(kind: str, size: int, seed: int) -> list[str]:
    out, current = [], ""
    for record in generate.records(3000, seed):
        if (record["kind"] == "clean") == (kind == "clean"):
            current += record["text"] + "\n"
            if len(current) >= size:
                out.append(current)
                current = ""
    return out


@pytest.mark.parametrize("kind", ["clean", "dense"])
@pytest.mark.parametrize("size", [600, 8192])
def test_the_pre_pass_finds_exactly_what_the_detectors_find_in_the_corpus(kind: str, size: int) -> None:
    texts = tool_results(kind, size, seed=5)
    assert texts
    for text in texts:
        assert detect_text(text) == whole(text)


def test_the_pre_pass_leaves_most_of_clean_text_unread() -> None:
    text = "".join(tool_results("clean", 8192, seed=6))
    covered = sum(hi - lo for lo, hi in fast.zones(text, frozenset(detect_module.FINDERS)))
    assert covered < len(text) * 0.2


# Unicode that Python's \d, \w, \s and case-insensitive matching treat specially.
UNICODE = ["José", "Ω", "…", "\u00a0", "\u2009", "٣٤٥", "１２３", "\u212a", "\u017f", "é", "😀", "ß", "İ", "ı",
           "Basıc QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "ſecret=hunter2x"]
PIECES = st.sampled_from(
    ["jane@example.com", "+44 20 7946 0958", "(415) 555-0134", "4111 1111 1111 1111", "123-45-6789",
     "DE89 3704 0044 0532 0130 00", "password=hunter22", "api_key: 'Zx9QvL2mT8rP4kW7nB3c'", "10.0.0.1",
     "fe80::1", "https://user:pa55@x.example/a?b=c", "2024-01-15", "2024-01-15T10:00:00Z", "Jan 5, 2024",
     "Bearer abcdefghijklmnopqrstuvwxyz012345", "ssn 123456789", "phone: 4155550134",
     "ghp_" + "a" * 36, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "::", "@", "-", " ", "\n", '"',
     "\\", "{", *UNICODE,
     # what the rules for code read around a value: a description after it, escapes, names, keys that say where
     "client_secret: Zx9QvL2mT8rP4kW7nB3c", " application client secret", "  password: ", "\\u2026", "\\n",
     "ProgressTokenSchema$1", "!!opts.auth", "this.#res", "_URL=", "token_endpoint=", "=https://a.example/Ab3dEf9hIj2kLm4nOp6q",
     "/WD-css3-flexbox-20090723/", '"string?"', "key_sha256: ", "*(optional)*", "PRIVATE_KEY = ", "('HTTPPasswordMgr', 'x2')"]
)
FILLER = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
LONG_TEXT = st.lists(st.one_of(PIECES, FILLER, st.just("x" * 200)), min_size=5, max_size=60).map("".join).filter(
    lambda t: len(t) >= detect_module.FAST_FROM
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], deadline=None)
@given(LONG_TEXT)
def test_the_pre_pass_finds_exactly_what_the_detectors_find_in_any_text(text: str) -> None:
    assert detect_text(text) == whole(text)


SHORT_TEXT = st.lists(st.one_of(PIECES, FILLER), min_size=1, max_size=6).map("".join).filter(
    lambda t: len(t) < detect_module.FAST_FROM
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(SHORT_TEXT)
def test_a_short_text_the_pre_pass_finds_nothing_in_holds_nothing_the_detectors_find(text: str) -> None:
    assert detect_text(text) == whole(text)


@pytest.mark.parametrize("kind", ["clean", "dense"])
def test_short_records_get_exactly_the_spans_of_a_whole_reading(kind: str) -> None:
    records = [r["text"] for r in generate.records(1500, 7) if (r["kind"] == "clean") == (kind == "clean")]
    short = [t for t in records if len(t) < detect_module.FAST_FROM]
    assert len(short) > 100
    assert [detect_text(t) for t in short] == [whole(t) for t in short]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80))
def test_the_pre_pass_stands_in_for_each_character_as_it_would_alone(text: str) -> None:
    assert fast._asciify(text) == "".join(fast._asciify(c) for c in text)
    assert len(fast._asciify(text)) == len(text)


@pytest.mark.parametrize("gap", [1, 4, 40, 70, 200, 700, 2000])
def test_a_value_described_after_a_gap_at_a_zone_edge_is_found_as_in_the_whole_text(gap: int) -> None:
    """The words after a value are read within a bound: past a zone's end they would be seen in
    the whole text only (a gap of 600 spaces did that to an unbounded look)."""
    text = "x" * detect_module.FAST_FROM + "\n  client_secret: Zx9QvL2mT8rP4kW7nB3c" + " " * gap + "the app secret\n"
    text += "y" * 3000
    assert detect_text(text) == whole(text)


AWS_ID = "AK" + "IA" + "Q7Z3" * 4  # assembled at run time: the file holds no key


# Characters outside ASCII that Python's patterns read one way and an ASCII stand-in could read
# another: a superscript digit or an accented letter is a word character but no [A-Za-z0-9]; a
# no-break space is whitespace but no " "; an ellipsis is none of them, nor "~".
NEIGHBOURS = ["¹", "é", "١", "Ⅻ", "Ω", "…", "\u00a0", "\u2028"]


@pytest.mark.parametrize("before", NEIGHBOURS)
@pytest.mark.parametrize("after", ["", *NEIGHBOURS])
@pytest.mark.parametrize("token", ["ghp_" + "a" * 36, AWS_ID, "4111 1111 1111 1111", "jane@example.com", "10.0.0.1"],
                         ids=["github", "aws", "card", "email", "ip"])
def test_the_pre_pass_reads_a_non_ascii_neighbour_of_a_value_as_the_detectors_do(
    before: str, after: str, token: str
) -> None:
    text = "x" * detect_module.FAST_FROM + " " + before + token + after + " end"
    assert detect_text(text) == whole(text)
STACK_FRAME = "\tat com.example.billing.Invoices.render(Invoices.java:{i})\n"
K8S_ENV = "        - name: AWS_ACCESS_KEY_ID\n          value: {key}\n"


@pytest.mark.parametrize(
    "record",
    [f"Caused by: com.amazonaws.AmazonServiceException: denied (key {AWS_ID})\n", K8S_ENV.format(key=AWS_ID),
     f"export KEY={AWS_ID};\n", f'"{AWS_ID}",\n'],
    ids=["stack-trace", "k8s-env", "shell", "json"],
)
def test_a_token_far_from_any_other_zone_is_found_through_the_pre_pass(record: str) -> None:
    """A token followed by a delimiter, alone in a long text: Hyperscan's match then ends one
    character past the token's, and its zone must still hold the token with its margin."""
    frames = "".join(STACK_FRAME.format(i=i) for i in range(30))
    text = frames + record + frames
    spans = [(s.label, text[s.start:s.end]) for s in detect_text(text)]
    assert ("SECRET", AWS_ID) in spans
    assert detect_text(text) == whole(text)


def test_the_pre_pass_finds_exactly_what_the_detectors_find_in_long_texts_of_records() -> None:
    records = [STACK_FRAME.format(i=7), K8S_ENV.format(key=AWS_ID), f"(key {AWS_ID})\n", "x" * 150 + "\n",
               "mail jane@example.com.\n", "ip 10.0.0.1.\n", "on 2024-01-15.\n", "(415) 555-0134.\n"]
    for seed in range(40):
        picks = [records[(seed * 7 + i * i) % len(records)] for i in range(seed + 10)]
        text = "".join(picks)
        assert detect_text(text) == whole(text)


def _padded(text: str) -> str:
    return "log line of nothing much\n" * 30 + text + "\n" + "and then more of nothing\n" * 30


@pytest.mark.parametrize(
    "example", [e for d in detect_module.REGISTRY for e in (*d.examples, *d.not_flagged)], ids=lambda e: e[:40]
)
def test_every_detectors_examples_inside_a_long_text_get_the_spans_of_a_whole_reading(example: str) -> None:
    text = _padded(example)
    assert len(text) >= detect_module.FAST_FROM
    assert detect_text(text) == whole(text)


@pytest.mark.parametrize("fold", ["\u212a", "\u017f", "\u0131", "\u0130"], ids=["kelvin", "long-s", "dotless-i", "dotted-i"])
def test_a_token_after_a_letter_case_folding_reads_as_ascii_is_found_through_the_pre_pass(fold: str) -> None:
    """Hyperscan reads a Kelvin sign as "k" (what case-insensitive patterns take it for); before
    a token it is still no [A-Za-z0-9] to the detectors, so the token is one (found by hypothesis)."""
    text = "jane@example.com " + "x" * 600 + fold + "ghp_" + "a" * 36 + " end"
    assert detect_text(text) == whole(text)


def test_a_quoted_value_with_brackets_under_a_key_is_found_by_the_pre_pass() -> None:
    text = _padded('const TOKEN = "Zx9QvL[2mT8rP4kW7nB3c]+";')
    assert [s.label for s in detect_text(text)] == ["SECRET"]


def _read_by_present(text: str) -> bool:
    """Reading ``text`` whole with only the detectors whose hints match in it (as dense text is
    read) finds what reading it with all of them finds."""
    everything = frozenset(detect_module.FINDERS)
    return detect_module._structured(text, everything, only=fast.present(text, everything)) == detect_module._structured(text, everything)


@pytest.mark.parametrize("kind", ["clean", "dense"])
def test_a_detector_whose_hints_match_nowhere_finds_nothing_in_the_corpus(kind: str) -> None:
    for text in tool_results(kind, 8192, seed=8):
        assert _read_by_present(text)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], deadline=None)
@given(LONG_TEXT)
def test_a_detector_whose_hints_match_nowhere_finds_nothing_in_any_text(text: str) -> None:
    assert _read_by_present(text)


def test_the_pre_pass_finds_exactly_what_the_detectors_find_in_hostile_shapes() -> None:
    """Text that is dense for one detector (a URL scheme, a key word, a digit repeated) is read
    whole by the detectors present in it: the same spans as reading it with every detector."""
    from tests.masking.test_linear import SHAPES

    for shape in SHAPES.values():
        text = shape(40_000)
        assert detect_text(text) == whole(text)


@pytest.mark.parametrize("before", ["«", "\u00a0", "😀", "é", "٣", "\u212a", "ſ", "_"])
def test_base64_after_any_character_is_read_alike_with_and_without_the_pre_pass(before: str) -> None:
    """A base64 run starts after no letter or digit of any script: after a non-ASCII one, which
    the pre-pass reads as an ASCII letter, neither finds a run; after punctuation both do."""
    blob = base64.b64encode(b"contact jane.doe@example.com").decode()
    text = "x " * 300 + before + blob + " y" * 300
    found = detect_text(text)
    assert found == whole(text)
    assert any(s.label == "SECRET" for s in found) == (not before.isalnum())

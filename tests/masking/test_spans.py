"""Settling overlaps and masking every copy of a found value (spans.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_guard.masking import detect
from mcp_guard.masking.spans import FEW_VALUES, MIN_REPEAT, Span, _copies_many, _gaps, _rank, resolve, with_repeats

LABELS = ["SECRET", "EMAIL", "PHONE", "URL", "IBAN", "CREDIT_CARD"]
SPANS = st.lists(
    st.builds(lambda start, width, label: Span(start, start + width, label),
              st.integers(0, 200), st.integers(1, 40), st.sampled_from(LABELS)),
    max_size=40,
)


def _overlap(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def greedy_by_rank(spans: list[Span]) -> list[Span]:
    """The definition: strongest first, each kept when it overlaps nothing kept before it; then,
    in rank order, a URL that lost is kept around the kept spans it overlaps when it holds each
    of them wholly, none is a URL or of its extent, and it overlaps no URL kept around others."""
    kept: list[Span] = []
    for span in sorted(spans, key=_rank):
        if all(not _overlap(span, k) for k in kept):
            kept.append(span)
    outer: list[Span] = []
    for span in sorted(spans, key=_rank):
        if span.label != "URL" or span in kept:
            continue
        inside = [k for k in kept if _overlap(k, span)]
        if all(span.start <= k.start and k.end <= span.end and k.label != "URL"
               and (k.start, k.end) != (span.start, span.end) for k in inside) \
                and not any(_overlap(o, span) for o in outer):
            outer.append(span)
    return sorted(kept + outer, key=lambda s: (s.start, -s.end))


@settings(max_examples=300, deadline=None)
@given(SPANS)
def test_overlaps_are_settled_as_the_greedy_choice_by_rank_settles_them(spans: list[Span]) -> None:
    assert resolve(spans) == greedy_by_rank(list(dict.fromkeys(spans)))


def test_a_secret_keeps_the_text_it_shares_with_a_longer_url_that_stays_around_it() -> None:
    url, secret = Span(0, 40, "URL"), Span(10, 20, "SECRET")
    assert resolve([url, secret]) == [url, secret]
    assert resolve(resolve([secret, url])) == [url, secret]


def glued_copies(count: int) -> tuple[str, list[str]]:
    """Emails found once each, then each copy glued to a word, where no detector finds it."""
    emails = [f"person{i}@mail{i}.example" for i in range(count)]
    return " ".join(emails) + " | " + " ".join(f"_{e}_" for e in emails), emails


def test_every_copy_of_a_found_value_is_a_span_with_few_values() -> None:
    text, emails = glued_copies(FEW_VALUES)
    found = [text[s.start:s.end] for s in detect(text) if s.label == "EMAIL"]
    assert found == emails + emails


def test_every_copy_of_a_found_value_is_a_span_with_many_values() -> None:
    text, emails = glued_copies(FEW_VALUES * 20)
    found = [text[s.start:s.end] for s in detect(text) if s.label == "EMAIL"]
    assert found == emails + emails


def test_copies_overlapping_a_span_are_left_to_that_span() -> None:
    text = "k" * 30 + " id=abcdef1234 token abcdef1234x"
    spans = [Span(4 + 30, 14 + 30, "SECRET"), Span(21 + 30, 32 + 30, "EMAIL")]
    assert with_repeats(text, spans) == spans


WORDS = st.lists(st.text("ab]^\\-.\n", min_size=MIN_REPEAT, max_size=9), min_size=1, max_size=4)
PICKS = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["", " ", "a", "]-"]), st.booleans()), max_size=30)


@settings(max_examples=500, deadline=None)
@given(WORDS, PICKS)
def test_copies_of_many_values_are_every_place_a_value_lies_inside_a_gap(words: list[str], picks: list[tuple[int, str, bool]]) -> None:
    """The definition: at every position of every stretch no span covers, each value that starts
    there and ends inside the stretch (the search looks only where a value's first character is)."""
    text, spans = "", []
    for i, separator, found in picks:  # words found at some places, copies of them at others
        word = words[i % len(words)]
        if found:
            spans.append(Span(len(text), len(text) + len(word), "SECRET"))
        text += word + separator
    values = {s.text(text): "SECRET" for s in spans}
    expected = [
        Span(at, at + len(value), label)
        for lo, hi in _gaps(text, spans) for at in range(lo, hi) for value, label in sorted(values.items(), key=lambda v: len(v[0]))
        if text.startswith(value, at) and at + len(value) <= hi
    ]
    assert list(_copies_many(text, values, spans)) == expected

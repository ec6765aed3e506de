"""Prefix tries, and token families tried only where their prefixes are, find what the plain scans find."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_guard.masking.detectors import literal_union, providers, secrets

WORDS = st.lists(st.text("ab_-.x", min_size=1, max_size=5), min_size=1, max_size=12, unique=True)


def _alternation(words: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))


@settings(max_examples=300, deadline=None)
@given(WORDS, st.text("ab_-.x ", max_size=60))
def test_a_trie_of_words_matches_where_and_what_the_longest_first_alternation_matches(words: list[str], text: str) -> None:
    trie = re.compile(literal_union(words))
    assert [m.span() for m in trie.finditer(text)] == [m.span() for m in _alternation(words).finditer(text)]


def test_every_provider_prefix_is_matched_whole_by_its_trie() -> None:
    for prefix in providers._PATTERN_OF:
        m = providers._ANY_PREFIX.match(prefix + " ")
        assert m is not None and m.group() == prefix


def _each_family_whole(text: str) -> list[tuple[int, int]]:
    """The definition: every token family's pattern over the whole text."""
    families = {pattern for _, pattern in secrets._TOKEN_FAMILIES}
    return sorted(m.span() for pattern in families for m in pattern.finditer(text))


PIECES = ["AKIA", "sk_live_", "rk_test_", "ghp_", "eyJ", "AC", "SK", "xoxb-", "sk-", "-", "_", ".", " ", "a1", "Zz9",
          "ffff", "0123456789abcdef", "A" * 16, "eyJhbGciOiJI.eyJzdWIiOi.sig12345678", "ABCD1234EFGH5678", "SG.", "hf_"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=24).map("".join))
def test_token_families_tried_only_at_their_prefixes_find_what_whole_text_scans_find(text: str) -> None:
    assert sorted(m.span() for m in secrets._token_matches(text)) == _each_family_whole(text)


# Many failed tries of one family in a row (the places "xoxb-xoxb-..." gives), then the rest:
# past a few misses a family is searched for ahead, and must still find what the whole scan finds.
FAILING = st.sampled_from(["xoxb-", "AKIA", "ghp_", "sk-", "AC", "sk_live_", "eyJ"]).flatmap(
    lambda unit: st.tuples(st.integers(8, 60), st.lists(st.sampled_from(PIECES), max_size=24))
    .map(lambda t: unit * t[0] + "".join(t[1]))
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(FAILING, st.lists(st.sampled_from(PIECES), max_size=12).map("".join)), min_size=1, max_size=4).map("".join))
def test_a_family_that_keeps_failing_is_searched_ahead_and_finds_what_whole_text_scans_find(text: str) -> None:
    assert sorted(m.span() for m in secrets._token_matches(text)) == _each_family_whole(text)

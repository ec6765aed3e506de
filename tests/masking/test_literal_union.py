"""The prefix tries the token families are found by match what a longest-first alternation matches."""

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


def test_every_provider_and_token_prefix_is_matched_whole_by_its_trie() -> None:
    for pattern, prefixes in ((providers._ANY_PREFIX, providers._PATTERN_OF), (secrets._ANY_PREFIX, secrets._PREFIX_OF)):
        for prefix in prefixes:
            assert pattern.match(prefix + " ") is not None and pattern.match(prefix + " ").group() == prefix

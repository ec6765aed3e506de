"""Shortcuts that pass over work find what doing all of it finds (hypothesis).

Each detector's fast path here replaced a plainer reading of the whole text; the plain reading
is the definition, and these compare the two on texts built from the shapes that hit them.
"""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_guard.masking.detectors import contact, secrets, values

KEY_PIECES = ["key", "password", "api_key", "token", "=", ": ", "-", "_", ".", "x", "Ab9", " ", "\n", '"', "passwords", "KEY"]
KEY_TEXT = st.lists(st.sampled_from(KEY_PIECES), max_size=60).map("".join)


def _key_begin(text: str, at: int) -> int:
    """The definition: a key runs back from its word over key characters, 40 at most."""
    begin = at
    while begin > 0 and at - begin < 40 and text[begin - 1] in secrets._KEY_CHARS:
        begin -= 1
    return begin


@settings(max_examples=400, deadline=None)
@given(KEY_TEXT, st.lists(st.integers(0, 30), min_size=1, max_size=20))
def test_key_words_passed_over_leave_where_the_other_keys_begin_unchanged(text: str, jumps: list[int]) -> None:
    every = list(secrets._key_words(text, text.lower(), secrets._Read()))
    read = secrets._Read()
    seen = []
    for i, word in enumerate(secrets._key_words(text, text.lower(), read)):
        seen.append(word)
        read.done_until = word[1] + jumps[i % len(jumps)]  # as a secret found there would
    assert seen == [w for w in every if w in seen]
    assert all(begin == _key_begin(text, at) for begin, at, _ in every)
    passed_over = [w for w in every if w not in seen]
    starts = [w[1] for w in seen]
    for word in passed_over:  # each was passed over because the word before it ruled it out
        before = max(i for i, at in enumerate(starts) if at < word[1])
        assert word[1] < seen[before][1] + jumps[before % len(jumps)]


PHONE_PIECES = ["+", "(", ")", " ", ".", "-", "0", "1", "4", "9", "٣", "１", "²", "x", "phone: ", "tel "]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PHONE_PIECES), max_size=40).map("".join))
def test_phone_digits_counted_by_deleting_separators_are_those_isdigit_counts(text: str) -> None:
    """The phone patterns match digits and "+() .-" only, so deleting those leaves the digits."""
    for pattern, group in ((contact.PHONE_INTL, 0), (contact.PHONE_NATIONAL, 0), (contact.PHONE_CONTEXT, 1)):
        for m in pattern.finditer(text):
            raw = m.group(group)
            assert len(raw.translate(contact._NOT_DIGITS)) == sum(c.isdigit() for c in raw)
    for m in contact.PHONE_NATIONAL.finditer(text):  # and its separators are what is not a digit
        assert set(m.group()).intersection(" .-") == {c for c in m.group() if not c.isdigit()}


LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
EMAIL_PIECES = ["@", "a", "Z", "9", ".", "_", "%", "+", "-", " ", "é", "\n", "x" * 30, "jane.doe", "@example.com"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(EMAIL_PIECES), max_size=40).map("".join))
def test_an_address_local_part_found_on_the_reversed_text_begins_where_walking_back_stops(text: str) -> None:
    backwards = text[::-1]
    for at in (i for i, c in enumerate(text) if c == "@"):
        start = at  # the definition: walk back over local-part characters, 65 at most
        while start > 0 and at - start <= 64 and text[start - 1] in LOCAL_CHARS:
            start -= 1
        assert contact.local_start(backwards, at) == start


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300) | st.text("ab9Z-_.", max_size=5000))
def test_entropy_counted_per_distinct_character_is_the_counter_s_to_the_last_bit(value: str) -> None:
    counts = Counter(value[:4096]).values()
    n = min(len(value), 4096)
    expected = math.log2(n) - math.fsum(c * math.log2(c) for c in counts) / n if n else 0.0
    assert values.entropy(value) == expected


@settings(max_examples=500, deadline=None)
@given(
    st.text(max_size=300) | st.text("ab9Z-_.", max_size=600) | st.text("aaaab", max_size=40)
    | st.permutations("abcdefgh").map("".join) | st.permutations("abcdefghijklmnop").map("".join),
    st.sampled_from([0.5, 1.0, 2.0, 2.5, 3.0, 3.5, 4.0]),
)
def test_entropy_bounded_by_the_distinct_characters_compares_as_the_entropy_does(value: str, bits: float) -> None:
    """Eight characters once each are exactly 3 bits: the bounds leave that to the count."""
    assert values.entropy_at_least(value, bits) == (values.entropy(value) >= bits)


NAME_PIECES = ["a", "Zx", "9", "00", "_", "-", "Q", "v", "٣", "²", "é", "$", ".", "(", ")", "[", "!", "#", ":", "|", "x1", "*",
               "/", "%x", "0x1F", "•", "~", "]", "+", "toJSON", "mState", "placeholder", "Value", "ſ", "K", "8f14e45f-ceea-167a",
               "None", "TRUE", "xX", "{{", "}", "<", ">", "%", "ſecret", "Int"]
NAME_TEXT = st.lists(st.sampled_from(NAME_PIECES), max_size=20).map("".join)


@settings(max_examples=500, deadline=None)
@given(NAME_TEXT)
def test_two_runs_of_digits_are_two_number_words_of_a_name(part: str) -> None:
    numbers = sum(w.isdigit() for w in values._NAME_WORD.findall(part))
    assert (values._TWO_NUMBERS.search(part) is not None) == (numbers > 1)


@settings(max_examples=500, deadline=None)
@given(NAME_TEXT)
def test_a_pattern_passed_over_for_want_of_its_literal_matches_nowhere_without_it(value: str) -> None:
    """Each check that a cheap test of a character skips cannot match a value without that character."""
    guarded = [
        (values._CALL_OR_ATTRIBUTE.fullmatch, values._CALL_MARK.search(value) is not None),
        (values._TYPE_UNION.fullmatch, "|" in value),
        (values._CHAR_CLASS.search, "[" in value),
        (values._DOC_LINK.fullmatch, "." in value),
        (values._EMPHASIS.fullmatch, "*" in value),
        (secrets._BANG_NAME.fullmatch, value[:1] == "!"),
        (values._VERSION.fullmatch, "." in value),
        (values._PATH.fullmatch, "/" in value),
        (values._MASKED_ALREADY.fullmatch, value[:1] in values._MASK_CHARS),
        (values._CODE_LITERAL.fullmatch, value[:1] == "%" or value[:1].isdigit()),
        (lambda v: None if len(values._NAME_JOINS.split(v)) == 1 else v, values._joined(value)),
        (values._HUNGARIAN.match, "a" <= value[:1] <= "z"),
        (values._ACRONYM_AFTER.fullmatch, "a" <= value[:1] <= "z"),
        (values._STAND_IN.fullmatch, len(value) <= values._STAND_IN_LONGEST),
        (secrets._UUID.fullmatch, len(value) == 36),
        (values._NOT_A_VALUE.match, value[:1].lower() in values._NOT_A_VALUE_FIRST or not value[:1].isascii()),
    ]
    for check, has_literal in guarded:
        assert has_literal or check(value) is None


FOLDING_KEY_PIECES = [*KEY_PIECES, "ſ", "K", "İ", "ı", "Url", "_uri", "-endpoint", "HREF", "link", "_type", ".len", "Secret",
                      "PWD", "cookie", "1"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(FOLDING_KEY_PIECES), max_size=12).map("".join))
def test_key_checks_on_the_lowercase_form_answer_as_the_case_folding_patterns(key: str) -> None:
    assert values.passwordish(key) == (values._PASSWORDISH.search(key) is not None)
    assert secrets._where_key(key) == (secrets._WHERE_KEY.search(key) is not None)
    for at in range(len(key) + 1):
        assert secrets._about_a_secret(key, at) == (secrets._ABOUT_A_SECRET.match(key, at) is not None)


@settings(max_examples=500, deadline=None)
@given(st.text("aZ9_.-:é ", max_size=12))
def test_a_value_of_ascii_letters_and_digits_is_what_placeholders_and_spelling_take_it_for(value: str) -> None:
    if value.isascii() and value.isalnum():
        assert values._LETTERS.sub("", value.lower()) == value.lower()
        assert values._PLACEHOLDER.fullmatch(value) is not None

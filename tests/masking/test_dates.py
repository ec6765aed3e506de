"""DATE: a day that exists, written as people write dates; not an API version or an impossible day."""

from __future__ import annotations

import pytest

from mcp_guard.masking.detect import detect


def _dates(text: str) -> list[str]:
    return [s.text(text) for s in detect(text) if s.label == "DATE"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"dob":"1985-03-14","name":"x"}', "1985-03-14"),
        ("appointment on 29/02/2024 at the clinic", "29/02/2024"),
        ("born 03/14/1985 in a city", "03/14/1985"),
        ("Datum: 14.03.1985", "14.03.1985"),
        ("released 2024/06/20", "2024/06/20"),
        ('{"created":"2024-06-20","version":3}', "2024-06-20"),  # a version key after the date is not its key
        ("version 3 shipped; due 2024-06-20", "2024-06-20"),
    ],
)
def test_a_real_day_in_a_common_spelling_is_a_date(text: str, value: str) -> None:
    assert _dates(text) == [value]


@pytest.mark.parametrize(
    "text",
    [
        '{"object":"event","api_version":"2024-06-20","created":545111713}',
        "Stripe-Version: 2024-06-20",
        "GET /openai/deployments/gpt/chat?api-version=2023-05-01 HTTP/1.1",
        "apiVersion: 2020-08-27",
        "schema revision = '2019-01-01'",
        '"Version": "2012-10-17"',  # an AWS policy document's grammar version
        "on 2024-02-31 nothing happened",  # no such day
        "31/04/1999 is not a day either",
        "31/13/1999 nor this",
        "build 3025-01-01",  # beyond any record's year
        "1899-12-31 is before any living person's record",
    ],
)
def test_versions_and_impossible_days_are_not_dates(text: str) -> None:
    assert _dates(text) == []


def test_the_pre_pass_finds_what_the_whole_read_finds_around_version_dates() -> None:
    # The version check looks back from the date; the pre-pass cuts zones around hints, so a
    # text with both kinds, far apart, must give the same spans either way.
    text = ('{"api_version":"2024-06-20"}' + " filler" * 3000 + ' {"dob":"1985-03-14"}') * 3
    whole = [(s.start, s.end, s.label) for s in detect(text, prefilter=False)]
    cut = [(s.start, s.end, s.label) for s in detect(text)]
    assert whole == cut
    assert [text[a:b] for a, b, _ in whole] == ["1985-03-14"] * 3

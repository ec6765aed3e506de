"""Short texts recur in every message, so their detection is remembered: the answers stay exact."""

from __future__ import annotations

import secrets
import string

from mcp_guard.masking import mask
from mcp_guard.masking.detect import Span, detect
from mcp_guard.masking.mask import Masker, default_operators, locked_detect
from mcp_guard.masking.vault import Vault


def email() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(10)) + "@example.org"


def test_a_remembered_short_text_answers_for_the_labels_asked_not_the_first_ones() -> None:
    address = email()
    assert [s.label for s in locked_detect(address, frozenset({"PHONE"}))] == []
    assert [s.label for s in locked_detect(address, frozenset({"EMAIL"}))] == ["EMAIL"]
    assert locked_detect(address, None) == detect(address)


def test_changing_the_spans_a_caller_got_does_not_change_the_next_answer() -> None:
    address = email()
    first = locked_detect(address)
    first.clear()
    assert locked_detect(address) == detect(address) != []


def test_short_texts_mask_alike_the_first_time_and_every_time_after() -> None:
    address = email()
    result = {"content": [{"type": "text", "text": f"mail {address}"}], "note": address}
    first = Masker(default_operators(), Vault()).value(result, "crm")
    again = Masker(default_operators(), Vault()).value(result, "crm")
    assert first == again
    assert address not in str(first)


def test_a_stream_of_distinct_short_texts_is_held_in_bounded_memory() -> None:
    for _ in range(mask._SHORT_ENTRIES + 10):
        locked_detect(email())
    assert len(mask._short) <= mask._SHORT_ENTRIES


def test_a_masker_with_a_name_model_asks_the_model_every_time() -> None:
    asked: list[str] = []

    def ner(text: str) -> list[Span]:
        asked.append(text)
        return [Span(0, 5, "PERSON")] if text.startswith("Alice") else []

    masker = Masker(default_operators(), Vault(), ner=ner)
    assert masker.text("Alice wrote", "crm") == masker.text("Alice wrote", "crm")
    assert asked == ["Alice wrote", "Alice wrote"]
    assert "Alice" not in masker.text("Alice wrote", "crm")

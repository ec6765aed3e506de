"""The vault keeps a bounded number of values and never restores what it could not keep."""

from __future__ import annotations

from mcp_guard.masking.spans import Span
from mcp_guard.masking.vault import Vault


def test_a_full_vault_still_masks_new_values_but_never_restores_them() -> None:
    vault = Vault()
    vault.max_values = 3
    kept = [vault.placeholder("EMAIL", f"user{i}@example.org", "mail") for i in range(3)]
    overflow = vault.placeholder("EMAIL", "late@example.org", "mail")
    assert kept == ["<EMAIL_1>", "<EMAIL_2>", "<EMAIL_3>"]
    assert overflow == "<EMAIL_0>"
    assert len(vault) == 3
    restored, count, _ = vault.rehydrate_text(f"{kept[0]} {overflow}", "mail")
    assert restored == f"user0@example.org {overflow}" and count == 1
    # A value it already holds keeps its placeholder.
    assert vault.placeholder("EMAIL", "user1@example.org", "mail") == "<EMAIL_2>"


def test_a_value_read_from_two_servers_goes_back_toward_either_and_no_third() -> None:
    vault = Vault()
    text = "mail jane.doe@example.org"
    first = vault.replace(text, [Span(5, len(text), "EMAIL")], "mail")
    assert first == "mail <EMAIL_1>" and vault.origins("<EMAIL_1>") == ("mail",)
    assert vault.replace(text, [Span(5, len(text), "EMAIL")], "mail") == first  # the same origin again: nothing new
    assert vault.origins("<EMAIL_1>") == ("mail",)
    assert vault.placeholder("EMAIL", "jane.doe@example.org", "crm") == "<EMAIL_1>"
    assert vault.origins("<EMAIL_1>") == ("crm", "mail")
    assert [vault.allowed("<EMAIL_1>", target) for target in ("mail", "crm", "m", "ail")] == [True, True, False, False]
    assert vault.rehydrate_text("to <EMAIL_1>", "web") == ("to <EMAIL_1>", 0, 1)
    assert vault.rehydrate_text("to <EMAIL_1>", "crm") == ("to jane.doe@example.org", 1, 0)

"""The vault keeps a bounded number of values and never restores what it could not keep."""

from __future__ import annotations

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

"""Caller tokens in a real SQLite store: what is kept, what expires, what the authenticator says."""

from __future__ import annotations

import pytest

from mcp_guard.auth.caller import AuthRefused
from mcp_guard.auth.tokens import CallerTokens, TokenAuthenticator
from mcp_guard.store import Store
from tests.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.anyio


@pytest.fixture
def tokens(tmp_path) -> CallerTokens:
    return CallerTokens(Store(tmp_path / "guard.db"))


async def test_a_live_token_names_its_caller_with_its_groups(tokens: CallerTokens) -> None:
    token = tokens.create("alice", ["ops", "devs"])
    caller = await TokenAuthenticator(tokens).authenticate(f"Bearer {token}")
    assert (caller.user, caller.groups, caller.scheme) == ("alice", frozenset({"ops", "devs"}), "tokens")
    assert tokens.list()[0]["last_used"] is not None


async def test_an_expired_token_is_refused_as_invalid(tokens: CallerTokens) -> None:
    token = tokens.create("alice", expires_days=1)
    tokens.store.execute("UPDATE caller_tokens SET expires = 1.0")  # as if the day had passed
    with pytest.raises(AuthRefused) as refused:
        await TokenAuthenticator(tokens).authenticate(f"Bearer {token}")
    assert (refused.value.status, refused.value.error) == (401, "invalid_token")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Bearer a b", "Token x"])
async def test_a_missing_or_malformed_authorization_header_is_refused_without_a_lookup(tokens: CallerTokens, header) -> None:
    with pytest.raises(AuthRefused) as refused:
        await TokenAuthenticator(tokens).authenticate(header)
    assert refused.value.status in (400, 401)
    assert refused.value.error in (None, "invalid_request")


def test_a_token_of_a_revoked_name_stays_refused_when_the_name_gets_a_new_one(tokens: CallerTokens) -> None:
    old = tokens.create("alice")
    assert tokens.revoke("Alice") == 1
    new = tokens.create("alice")
    assert tokens.identify(old) is None
    assert tokens.identify(new) is not None


@pytest.mark.parametrize("group", ["", "a b", "x" * 65, "ops\u202e"])
def test_a_group_name_that_could_hide_or_mislead_is_refused(tokens: CallerTokens, group: str) -> None:
    with pytest.raises(ValueError):
        tokens.create("alice", [group])


def test_a_caller_name_drawn_like_a_reviewers_but_not_theirs_is_refused(tokens: CallerTokens) -> None:
    from mcp_guard.reviewers import Reviewers

    Reviewers(tokens.store).create("alice", "secops")
    with pytest.raises(ValueError, match="looks like the reviewer"):
        tokens.create("\u0430lice")  # Cyrillic a: no-self-approval would not see one person
    assert tokens.create("Alice")  # the reviewer's own name: the same person, kept from approving itself


async def test_caller_tokens_work_on_a_shared_postgresql_store_and_revocation_reaches_every_instance(
    postgres_url: str,
) -> None:
    from mcp_guard.store import PostgresStore

    one, other = CallerTokens(PostgresStore(postgres_url)), CallerTokens(PostgresStore(postgres_url))
    try:
        token = one.create("alice", ["ops"])
        caller = await TokenAuthenticator(other).authenticate(f"Bearer {token}")
        assert (caller.user, caller.groups) == ("alice", frozenset({"ops"}))
        assert one.revoke("alice") == 1
        with pytest.raises(AuthRefused):
            await TokenAuthenticator(other).authenticate(f"Bearer {token}")
    finally:
        one.store.close()
        other.store.close()


@pytest.mark.parametrize("name", ["bo\u034fb", "bo\u3164b", "bo\ufe0fb", "bob\u200b", "\u2800bob", "x" * 65])
def test_a_caller_name_hiding_an_invisible_character_or_too_long_gets_no_token(tokens: CallerTokens, name: str) -> None:
    with pytest.raises(ValueError, match="cannot contain|at most 64"):
        tokens.create(name)
    assert tokens.list() == []


async def test_a_token_stored_under_a_name_the_rules_now_refuse_is_refused_at_the_door(tokens: CallerTokens) -> None:
    token = tokens.create("bob")
    tokens.store.execute("UPDATE caller_tokens SET name = ?", ("bo\u034fb",))  # as an older guard let it be made
    with pytest.raises(AuthRefused) as refused:
        await TokenAuthenticator(tokens).authenticate(f"Bearer {token}")
    assert (refused.value.status, refused.value.error) == (401, "invalid_token")
    assert "no longer meets the name rules" in refused.value.description

"""Red team, serve's team gateway: a caller named so that it is drawn like a reviewer must not let
that reviewer approve the request (README "Who is calling": "a reviewer whose name is ... merely
drawn like it ... cannot decide that caller's request, on any channel"; "Trust model": "A new
token whose name is drawn like a live one's ... is refused").

The guard compares names through a small table of lookalike letters. These names use letters
from Unicode's own confusables list (UTS #39) that the table does not hold: each is the reviewer's
name on any screen, and a different string to the guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.auth.support import cli
from tests.auth.test_caller_names import self_approval
from tests.oidc_provider import OidcProvider, oidc_provider  # noqa: F401  (a pytest fixture, found by name)
from tests.reviewing import reviewer_token

pytestmark = pytest.mark.anyio

# (the reviewer, the caller drawn like them): UTS #39 confusables the guard's table lacks.
DRAWN_ALIKE = {
    "armenian small oh for o": ("bob", "b\u0585b"),
    "coptic small o for o": ("bob", "b\u2c9fb"),
    "greek yot for j": ("jo", "\u03f3o"),
    "greek lunate sigma for c": ("carol", "\u03f2arol"),
    "armenian ho for h": ("hal", "\u0570al"),
    "latin capital I for l": ("alice", "aIice"),
}


@pytest.mark.parametrize("case", sorted(DRAWN_ALIKE))
def test_a_caller_token_drawn_like_a_live_reviewer_is_refused_whatever_alphabet_the_lookalike_letter_comes_from(
    guard_home: Path, case: str,
) -> None:
    reviewer, caller = DRAWN_ALIKE[case]
    reviewer_token(guard_home, reviewer)
    made = cli("auth", "token", "create", caller)
    created, said = made.returncode == 0, made.stderr  # never the CompletedProcess: its stdout is the token
    del made
    assert not created, f"{case}: a caller token drawn like the live reviewer {reviewer!r} was created"
    assert "looks like the reviewer" in said, said


@pytest.mark.parametrize("case", ["armenian small oh for o", "latin capital I for l"])
async def test_an_oidc_caller_drawn_like_a_reviewer_cannot_have_that_reviewer_approve_through_the_api_or_cli(
    oidc_provider: OidcProvider, tmp_path: Path, guard_home: Path, case: str,  # noqa: F811
) -> None:
    reviewer, caller = DRAWN_ALIKE[case]
    tried, state = await self_approval(oidc_provider, tmp_path, guard_home, reviewer, caller)
    assert tried["api"][0] != 0 and tried["cli"][0] != 0, (
        f"{case}: the reviewer {reviewer!r} approved the request of {ascii(caller)}, drawn like them: {state}"
    )
    assert all("looks like" in said for _, said in tried.values()), tried

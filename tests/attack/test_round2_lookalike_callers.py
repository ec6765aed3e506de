"""Red team round 2: a caller drawn like a reviewer must not be approvable by that reviewer, and
token creation must refuse the name (README "Who is calling", "Trust model").

The guard's comparison folds single characters from Unicode's confusables (UTS #39) and drops
characters it classes as invisible. These names slip past it:

* multi-character confusables: UTS #39 lists ``m`` as ``rn``, ``d`` as ``cl``, ``w`` as ``vv``;
* Mongolian free variation selectors (U+180B..U+180F) and the Khitan filler (U+16FE4): default
  ignorable, so drawn as nothing, yet neither refused in a name nor dropped when names are compared;
* a digit zero for a capital O, whose lowercase the guard already takes for the reviewer's ``o``
  (``0lga`` is drawn like ``Olga``, whom the guard treats as ``olga``)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.auth.support import cli
from tests.auth.test_caller_names import REVIEWED_ECHO, oidc_serve, self_approval
from tests.oidc_provider import OidcProvider, oidc_provider  # noqa: F401  (a pytest fixture, found by name)
from tests.reviewing import reviewer_token

# (the reviewer, the caller drawn like them)
DRAWN_ALIKE = {
    "rn for m": ("mallory", "rnallory"),
    "cl for d": ("dave", "clave"),
    "vv for w": ("walt", "vvalt"),
    "mongolian free variation selector one": ("bob", "bo\u180bb"),
    "mongolian free variation selector four": ("bob", "b\u180fob"),
    "khitan small script filler": ("bob", "bob\U00016fe4"),
    "digit zero for capital O of a lowercase name": ("olga", "0lga"),
}


def _create(name: str) -> tuple[bool, str]:
    made = cli("auth", "token", "create", name)
    created, said = made.returncode == 0, made.stderr  # never the CompletedProcess: its stdout is the token
    del made
    return created, said


@pytest.mark.parametrize("case", sorted(DRAWN_ALIKE))
def test_a_caller_token_drawn_like_a_live_reviewer_through_multi_letter_confusables_ignorables_or_digits_is_refused(
    guard_home: Path, case: str,
) -> None:
    reviewer, caller = DRAWN_ALIKE[case]
    reviewer_token(guard_home, reviewer)
    created, said = _create(caller)
    assert not created, f"{case}: a caller token {ascii(caller)} drawn like the live reviewer {reviewer!r} was created"
    # Refused as a lookalike, or at once for a character that draws nothing.
    assert "looks like the reviewer" in said or "cannot contain U+" in said, said


@pytest.mark.parametrize("case", sorted(DRAWN_ALIKE))
def test_a_caller_token_drawn_like_another_live_caller_is_refused(guard_home: Path, case: str) -> None:
    first, second = DRAWN_ALIKE[case]
    assert _create(first)[0]
    created, said = _create(second)
    assert not created, f"{case}: a caller token {ascii(second)} drawn like the live caller {first!r} was created"
    assert "looks like" in said or "cannot contain U+" in said, said


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["rn for m"])
async def test_an_oidc_caller_drawn_like_a_reviewer_by_rn_or_an_ignorable_cannot_have_that_reviewer_approve(
    oidc_provider: OidcProvider, tmp_path: Path, guard_home: Path, case: str,  # noqa: F811
) -> None:
    reviewer, caller = DRAWN_ALIKE[case]
    tried, state = await self_approval(oidc_provider, tmp_path, guard_home, reviewer, caller)
    assert all(code != 0 for code, _ in tried.values()), (
        f"{case}: the reviewer {reviewer!r} approved the request of {ascii(caller)}, drawn like them: {state}"
    )


@pytest.mark.anyio
async def test_an_oidc_caller_name_hiding_a_mongolian_variation_selector_is_refused_at_the_door(
    oidc_provider: OidcProvider, tmp_path: Path,  # noqa: F811
) -> None:
    from tests.auth.test_caller_names import initialize, refusal_of

    async with oidc_serve(oidc_provider, tmp_path, REVIEWED_ECHO) as base:
        token = oidc_provider.token(DRAWN_ALIKE["mongolian free variation selector one"][1], f"{base}/mcp")
        with anyio.fail_after(60):
            description = refusal_of(initialize(base, token), token)
    assert "cannot contain U+180B" in description

"""Red team, who decides: reviewer names. A typed name never decides, one person is one person
however the name is spelled, the requester never decides their own request, and a quorum is never
met by one person holding two tokens (one after the other, or two spellings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import connect, guard, node_server
from tests.hooks.test_review_queue import first_pending, policy
from tests.reviewing import review

pytestmark = pytest.mark.anyio


def make_token(home: Path, name: str, role: str = "secops") -> Any:
    return review(home, "token", "create", name, "--role", role)


def status(home: Path, rid: str) -> str:
    items = json.loads(review(home, "list", "--json").stdout or "[]")
    return "pending" if any(str(item["id"]) == rid for item in items) else "decided"


async def reviewed_write(tmp_path: Path, home: Path, requester: str, decide: Any, **policy_args: Any) -> Any:
    """A reviewed write_file by ``requester``; ``decide(rid)`` runs while it waits and must settle it
    (or deny it itself, so the call ends)."""
    target = tmp_path / "out.txt"
    result: list[Any] = []
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path, **policy_args))
    with anyio.fail_after(90):
        async with connect(argv, env={"MCP_GUARD_USER": requester}) as client:

            async def call() -> None:
                result.append(await client.call_tool("write_file", {"path": str(target), "content": "reviewed"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await decide(await first_pending(home))
    return result[0], target


@pytest.mark.parametrize("spelling", ["Carol", "carol ", " CAROL", "\uff43arol", "carol\u00a0", "\u2003carol"])
async def test_the_requester_cannot_approve_their_own_request_under_another_spelling(
    tmp_path: Path, guard_home: Path, spelling: str
) -> None:
    made = make_token(guard_home, spelling)
    assert made.returncode == 0, made.stderr  # the same person, only spelled differently: a valid name
    own = made.stdout.strip()

    async def decide(rid: str) -> None:
        tried = review(guard_home, "approve", rid, token=own)
        assert tried.returncode != 0, "the requester approved their own request"
        assert status(guard_home, rid) == "pending"
        assert review(guard_home, "deny", rid, "--as", "bob", "--reason", "end").returncode == 0

    result, target = await reviewed_write(tmp_path, guard_home, "carol", decide)
    assert result.is_error and not target.exists()


@pytest.mark.parametrize("requester", ["Carol", "carol ", "\uff43arol"])
async def test_a_requester_named_with_another_spelling_still_cannot_approve_with_their_token(
    tmp_path: Path, guard_home: Path, requester: str
) -> None:
    async def decide(rid: str) -> None:
        tried = review(guard_home, "approve", rid, "--as", "carol")
        assert tried.returncode != 0, "the requester approved their own request"
        assert status(guard_home, rid) == "pending"
        assert review(guard_home, "deny", rid, "--as", "bob", "--reason", "end").returncode == 0

    result, target = await reviewed_write(tmp_path, guard_home, requester, decide)
    assert result.is_error and not target.exists()


async def test_one_reviewer_with_a_token_revoked_and_remade_does_not_meet_a_quorum_of_two(
    tmp_path: Path, guard_home: Path
) -> None:
    async def decide(rid: str) -> None:
        first = make_token(guard_home, "alice").stdout.strip()
        assert review(guard_home, "approve", rid, token=first).returncode == 0
        assert review(guard_home, "token", "revoke", "alice").returncode == 0
        again = make_token(guard_home, "ALICE ")
        assert again.returncode == 0, again.stderr
        review(guard_home, "approve", rid, token=again.stdout.strip())
        assert status(guard_home, rid) == "pending", "one person met a quorum of two"
        assert review(guard_home, "deny", rid, "--as", "bob", "--reason", "end").returncode == 0

    result, target = await reviewed_write(tmp_path, guard_home, "carol", decide, quorum=2)
    assert result.is_error and not target.exists()


@pytest.mark.parametrize(
    "twin",
    [
        "ALICE",
        "alice ",
        "\uff41lice",
        "alice\u00a0",
        "al\u0131ce",
        "\u0430lice",
        "alice\u200b",
        "alice\u00ad",
        "\u0430\u217c\u0456\u0441\u0435",
    ],
)
def test_a_second_live_token_for_alice_under_a_lookalike_spelling_is_refused(guard_home: Path, twin: str) -> None:
    assert make_token(guard_home, "alice").returncode == 0
    second = make_token(guard_home, twin)
    assert second.returncode != 0 and "mgr_" not in second.stdout, f"a second token for {twin!r} was made"


@pytest.mark.parametrize(
    "first,second",
    [("stra\u00dfe", "STRASSE"), ("jos\u00e9", "jose\u0301"), ("\ufb01ona", "fiona"), ("\u0130van", "i\u0307van")],
)
def test_names_equal_after_nfkc_and_casefold_are_one_person(guard_home: Path, first: str, second: str) -> None:
    assert make_token(guard_home, first).returncode == 0
    again = make_token(guard_home, second)
    assert again.returncode != 0 and "mgr_" not in again.stdout


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "\u3000",
        "\u200b",
        "\u200balice",
        "al\u202eice",
        "ali\x1bce",
        "al\nice",
        "al\rice",
        "al\u2066ice",
        "\ufeffalice",
        "alice\u0000"[:-1] + "\u0007",
        "a" * 10000,
    ],
)
def test_invalid_reviewer_names_are_refused_when_the_token_is_made(guard_home: Path, bad: str) -> None:
    made = make_token(guard_home, bad)
    assert made.returncode != 0 and "mgr_" not in made.stdout, f"a token for {bad[:20]!r} was made"


async def test_a_typed_name_alone_decides_nothing(tmp_path: Path, guard_home: Path) -> None:
    alice = make_token(guard_home, "alice").stdout.strip()
    bob = make_token(guard_home, "bob").stdout.strip()

    async def decide(rid: str) -> None:
        for args, tok in (
            (("--as", "alice"), None),
            (("--as", "alice"), bob),
            ((), ""),
            ((), " "),
            ((), "mgr_"),
            ((), alice[:-1]),
            ((), alice + "x"),
            ((), alice.upper()),
            ((), " " + alice[4:]),
        ):
            argv = ["approve", rid, *args]
            if args and tok is None:
                import os
                import subprocess
                import sys

                env = {k: v for k, v in os.environ.items() if k != "MCP_GUARD_REVIEW_TOKEN"}
                done = subprocess.run(
                    [sys.executable, "-m", "mcp_guard", "review", *argv, "--home", str(guard_home)],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    env=env,
                    stdin=subprocess.DEVNULL,
                )
            else:
                done = review(guard_home, *argv, token=tok)
            assert done.returncode != 0, (args, "a decision without alice's own token")
            assert status(guard_home, rid) == "pending"
        assert (
            review(
                guard_home,
                "deny",
                rid,
                token=bob,
            ).returncode
            == 0
        )

    result, target = await reviewed_write(tmp_path, guard_home, "carol", decide)
    assert result.is_error and not target.exists()


# Not here: the requester's own OS account minting two reviewer tokens to meet a quorum. In the
# same-user setup that account can also write guard.db itself, so no rule inside the product holds
# it; README's Trust model says so, and tests/web/test_separated_setup.py covers the setup that does.

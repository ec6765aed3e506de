"""Who decides, through the CLI: a reviewer token says who, never a typed name; names compare in
one canonical form; the model is never told how to approve."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import connect, guard, node_server, probe
from tests.hooks.test_review_queue import first_pending, run_reviewed_write
from tests.reviewing import review, reviewer_token

pytestmark = pytest.mark.anyio


def state(home: Path, rid: str) -> str:
    return str(json.loads(review(home, "show", rid, "--json").stdout)["state"])


def token(home: Path, name: str) -> str:
    made = review(home, "token", "create", name, "--role", "secops")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


async def test_a_typed_name_decides_nothing_without_the_reviewers_token(tmp_path: Path, guard_home: Path) -> None:
    async def decide(rid: str) -> None:
        bare = review(guard_home, "approve", rid, "--as", "alice", token="")  # a name, no credential
        assert bare.returncode == 2 and "reviewer token" in bare.stderr
        assert review(guard_home, "approve", rid, token="mgr_" + "x" * 43).returncode == 1  # a made-up token
        bob = reviewer_token(guard_home, "bob")
        claimed = review(guard_home, "approve", rid, "--as", "alice", token=bob)  # bob's token, alice's name
        assert claimed.returncode == 2 and "not the token's reviewer" in claimed.stderr
        assert state(guard_home, rid) == "pending"
        assert review(guard_home, "deny", rid, "--as", "bob", "--reason", "checked").returncode == 0

    result, target = await run_reviewed_write(tmp_path, guard_home, decide)
    assert result.is_error and "bob" in result.content[0].text and not target.exists()


async def test_lookalike_spellings_of_the_requester_cannot_approve_her_own_request(tmp_path: Path, guard_home: Path) -> None:
    async def decide(rid: str) -> None:
        for spelling in ("Carol", "carol ", "\uff43\uff41\uff52\uff4f\uff4c"):  # the requester is "carol"
            own = review(guard_home, "approve", rid, token=token(guard_home, spelling))
            assert own.returncode == 1 and "cannot decide it" in own.stderr, (spelling, own.stderr)
            assert review(guard_home, "token", "revoke", spelling).returncode == 0
        assert state(guard_home, rid) == "pending"
        assert review(guard_home, "deny", rid, "--as", "alice").returncode == 0

    result, target = await run_reviewed_write(tmp_path, guard_home, decide)
    assert result.is_error and not target.exists()


async def test_one_reviewer_under_two_spellings_counts_once_toward_a_quorum(tmp_path: Path, guard_home: Path) -> None:
    async def votes(rid: str) -> None:
        assert review(guard_home, "approve", rid, token=token(guard_home, "alice")).returncode == 0
        assert review(guard_home, "token", "revoke", "alice").returncode == 0
        again = review(guard_home, "approve", rid, token=token(guard_home, "\uff21LICE"))  # fullwidth, upper case
        assert again.returncode == 1 and "you already approved" in again.stderr, again.stderr  # counted nowhere
        assert state(guard_home, rid) == "pending"
        assert review(guard_home, "approve", rid, token=token(guard_home, "bob")).returncode == 0

    result, target = await run_reviewed_write(tmp_path, guard_home, votes, quorum=2)
    assert not result.is_error and target.read_text() == "reviewed"


@pytest.mark.parametrize("twin", ["\u0430lice", "AL\u0130CE", "al\u0131ce"])  # Cyrillic a, Turkish dotted capital I, dotless i
def test_a_token_drawn_like_a_revoked_reviewers_name_is_refused_but_the_same_name_may_come_back(guard_home: Path, twin: str) -> None:
    assert review(guard_home, "token", "create", "alice").returncode == 0
    assert review(guard_home, "token", "revoke", "alice").returncode == 0
    made = review(guard_home, "token", "create", twin)
    assert made.returncode == 2 and "mgr_" not in made.stdout and "looks like" in made.stderr
    assert review(guard_home, "token", "create", "Alice").returncode == 0


def _reviewer_request(home: Path, quorum: int, requester: str = "alice") -> tuple[Any, str]:
    from mcp_guard.approvals import Approvals
    from mcp_guard.store import Store

    approvals = Approvals(Store(home / "guard.db"))
    request = approvals.open(
        user=requester, session="s", server="fs", tool="write_file", binding="b" * 64, rule="r", risk="high",
        preview="write_file", max_scope="once", lifetime=60, approvers="reviewers", quorum=quorum,
    )
    return approvals, request.id


@pytest.mark.parametrize("spelling", ["AL\u0130CE", "al\u0130ce", "\u0430lice", "\u0101lice", "alic\u00eb", "al\u0336ice",
                                      "a\u0142ice", "\u0251lice"])
def test_a_requester_under_a_dotted_capital_i_or_cyrillic_spelling_cannot_approve_their_own_request(guard_home: Path, spelling: str) -> None:
    approvals, rid = _reviewer_request(guard_home, quorum=1)
    with pytest.raises(ValueError, match="cannot decide it"):
        approvals.decide(rid, approve=True, by=spelling, channel="api")
    assert approvals.get(rid).state == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize(("requester", "twin"), [("bob", "\u0185ob"), ("bob", "\u0253ob"), ("bob", "\u0180ob"), ("bob", "\u044cob"),
                                                ("bob", "bo\u0336b"), ("zoe", "z\u00f6e"), ("noel", "NO\u00cbL"), ("dave", "d\u00e5ve")])
def test_letters_with_hooks_strokes_or_accents_and_b_shaped_signs_are_drawn_like_the_plain_name(
    guard_home: Path, requester: str, twin: str
) -> None:
    from mcp_guard.reviewers import looks_alike

    assert looks_alike(requester, twin) and looks_alike(twin, requester)
    assert review(guard_home, "token", "create", requester).returncode == 0
    made = review(guard_home, "token", "create", twin)
    assert made.returncode == 2 and "looks like" in made.stderr


@pytest.mark.parametrize(("requester", "twin"), [("alice", "\u1d00lice"), ("\u1d00lice", "alice"), ("bob", "\U0001f171ob"),
                                                ("bob", "bob\U0001f3fb"), ("bob\U0001f3fb", "bob"), ("bob", "bob\u20e3"),
                                                ("bob smith", "bobsmith"), ("bob smith", "bob-smith"), ("bob smith", "bob  smith")])
def test_small_capitals_squared_letters_emoji_modifiers_keycaps_and_separators_do_not_make_another_person(
    guard_home: Path, requester: str, twin: str
) -> None:
    approvals, rid = _reviewer_request(guard_home, quorum=1, requester=requester)
    with pytest.raises(ValueError, match="cannot decide it"):
        approvals.decide(rid, approve=True, by=twin, channel="api")
    assert approvals.get(rid).state == "pending"  # type: ignore[union-attr]
    approvals, rid = _reviewer_request(guard_home, quorum=2, requester="carol")
    approvals.decide(rid, approve=True, by=requester, channel="api")
    with pytest.raises(ValueError, match="already approved"):
        approvals.decide(rid, approve=True, by=twin, channel="api")
    assert approvals.get(rid).state == "pending", "one person met a quorum of two"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["\u0301", "a" + "\u0301" * 5, "e\u0301\u0301\u0301", "b\u200aob", "bob\u00a0smith",
                                  "\ufffc", "\ufffd", "alice,carol"])
def test_a_name_that_is_a_mark_on_nothing_a_stand_in_or_reads_as_two_people_is_refused(guard_home: Path, name: str) -> None:
    made = review(guard_home, "token", "create", name)
    assert made.returncode == 2 and "mgr_" not in made.stdout


def test_a_token_vote_and_a_sign_in_vote_drawn_alike_count_once_in_either_order(guard_home: Path) -> None:
    for first, second in (("lena", "Iena"), ("Iena", "lena")):  # a capital I for the l
        approvals, rid = _reviewer_request(guard_home, quorum=2)
        approvals.decide(rid, approve=True, by=first, channel="cli")
        with pytest.raises(ValueError, match="you already approved"):
            approvals.decide(rid, approve=True, by=second, channel="api")
        assert approvals.get(rid).state == "pending", (first, second)  # type: ignore[union-attr]
        approvals.decide(rid, approve=False, by="carol", channel="api")


def test_one_reviewer_signed_in_under_two_lookalike_names_counts_once_toward_a_quorum(guard_home: Path) -> None:
    # Reviewers signed in through an identity provider carry its names; no token creation checks them.
    approvals, rid = _reviewer_request(guard_home, quorum=2)
    approvals.decide(rid, approve=True, by="bob", channel="api")
    for twin in ("B\u041eB", "bo\u0307b"):  # a Cyrillic O; a combining dot drawn on o
        with pytest.raises(ValueError, match="you already approved"):
            approvals.decide(rid, approve=True, by=twin, channel="api")
    assert approvals.get(rid).state == "pending"  # type: ignore[union-attr]
    approvals.decide(rid, approve=True, by="carol", channel="api")
    assert approvals.get(rid).state == "approved"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["", "   ", "ali\x07ce", "ali\u200bce", "\u202ealice", "al\tice", "a" * 65])
def test_a_token_name_that_is_empty_blank_invisible_or_too_long_is_refused(guard_home: Path, name: str) -> None:
    made = review(guard_home, "token", "create", name)
    assert made.returncode == 2 and "mgr_" not in made.stdout
    assert json.loads(review(guard_home, "token", "list").stdout) == []


def test_a_second_live_token_for_the_same_person_is_refused_until_the_first_is_revoked(guard_home: Path) -> None:
    assert review(guard_home, "token", "create", "alice").returncode == 0
    for twin in ("alice", "Alice", " alice ", "\uff41lice"):
        assert review(guard_home, "token", "create", twin).returncode == 2
    assert review(guard_home, "token", "revoke", "ALICE").returncode == 0
    assert review(guard_home, "token", "create", "Alice").returncode == 0
    assert [t["name"] for t in json.loads(review(guard_home, "token", "list").stdout) if t["revoked"] is None] == ["Alice"]
    audit = subprocess.run([sys.executable, "-m", "mcp_guard", "audit", "export", "--home", str(guard_home)],
                           capture_output=True, text=True, timeout=30).stdout
    made = [json.loads(line)["body"] for line in audit.splitlines() if '"reviewer.token"' in line]
    assert [(b["action"], b["name"]) for b in made] == [("created", "alice"), ("revoked", "ALICE"), ("created", "Alice")]
    assert "mgr_" not in audit


USER_ASKS = """version: 1
defaults: {wait: 1, timeout: 120}
rules:
  - match: {tool: write_file}
    action: approve
    channels: [page, cli]
"""


async def test_the_model_is_told_a_person_was_asked_and_the_request_id_never_how_to_approve(tmp_path: Path, guard_home: Path) -> None:
    rules = tmp_path / "p.yaml"
    rules.write_text(USER_ASKS)
    with anyio.fail_after(40):
        async with connect(guard(*node_server("server-filesystem", str(tmp_path)), policy=str(rules))) as client:
            first: Any = await client.call_tool("write_file", {"path": str(tmp_path / "x"), "content": "x"})
            waiting = await first_pending(guard_home)
    said = json.dumps(first.model_dump(mode="json"))
    assert first.is_error and re.search(r"request [0-9a-f]{8}", said)
    rid = re.search(r"request ([0-9a-f]{8})", said).group(1)  # type: ignore[union-attr]
    for how in ("mcp-guard review", "review approve", "review list", "approve " + rid, "http", "terminal", "page"):
        assert how not in said, how
    assert waiting == rid


def test_a_token_file_other_accounts_may_read_is_refused_and_never_echoed(guard_home: Path, tmp_path: Path) -> None:
    secret = token(guard_home, "alice")
    path = tmp_path / "token"
    path.write_text(secret + "\n")
    path.chmod(0o644)
    loose = review(guard_home, "approve", "0badc0de", "--token-file", str(path), token="")
    assert loose.returncode == 2 and "chmod 600" in loose.stderr
    path.chmod(0o600)
    tight = review(guard_home, "approve", "0badc0de", "--token-file", str(path), token="")
    assert tight.returncode == 1 and "no approval request" in tight.stderr  # the token was good; nothing to decide
    assert secret not in loose.stderr + loose.stdout + tight.stderr + tight.stdout


def test_on_a_terminal_the_token_is_asked_for_without_echo(guard_home: Path) -> None:
    import fcntl
    import os
    import select
    import termios

    secret = token(guard_home, "alice")
    master, slave = os.openpty()

    def own_terminal() -> None:  # the child's controlling terminal is the pty, as in a real shell
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    env = {k: v for k, v in os.environ.items() if k != "MCP_GUARD_REVIEW_TOKEN"}
    child = subprocess.Popen(
        [sys.executable, "-m", "mcp_guard", "review", "deny", "0badc0de", "--home", str(guard_home)],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=own_terminal, env=env, text=True,
    )
    os.close(slave)
    seen = b""
    while b"reviewer token:" not in seen:
        ready, _, _ = select.select([master], [], [], 30)  # a bound on a hang, not a timing claim
        assert ready, seen
        seen += os.read(master, 1024)
    os.write(master, secret.encode() + b"\n")
    _, err = child.communicate(timeout=30)
    while select.select([master], [], [], 0)[0]:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert child.returncode == 1 and "no approval request" in err, err  # the prompted token identified alice
    assert secret.encode() not in seen  # nothing typed was echoed to the terminal


async def test_a_reviewer_token_in_the_guards_environment_never_reaches_an_upstream(tmp_path: Path) -> None:
    canary = "mgr_" + "Q" * 43  # built at run time; never a real token
    with anyio.fail_after(30):
        async with connect(guard(*probe()), env={"MCP_GUARD_REVIEW_TOKEN": canary, "PROBE_OTHER": "kept"}) as client:
            withheld: Any = await client.call_tool("env", {"name": "MCP_GUARD_REVIEW_TOKEN"})
            kept: Any = await client.call_tool("env", {"name": "PROBE_OTHER"})
    assert canary not in json.dumps(withheld.model_dump(mode="json"))
    assert "kept" in json.dumps(kept.model_dump(mode="json"))  # the rest of the environment is handed on as before


def test_the_settings_hold_the_review_token_without_showing_it() -> None:
    from mcp_guard.settings import Settings

    canary = "mgr_" + "Z" * 43
    read = Settings.from_environment({"MCP_GUARD_REVIEW_TOKEN": f" {canary}\n", "MCP_GUARD_HOME": "/tmp/x"})
    assert read.review_token == canary and canary not in repr(read)

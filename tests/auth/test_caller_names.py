"""Red team, caller names under `serve --auth oidc`, against the real provider: a name claim the
caller may be able to choose (a self-edited username, or a sub) never lets a requester pass for a
reviewer. Names with invisible, control or odd-space characters are refused at the door (401
invalid_token naming the claim), and a requester drawn like a reviewer is taken for them: that
reviewer cannot decide the request on any channel."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest

from mcp_guard.approvals import Approvals, may_decide
from mcp_guard.store import Store
from mcp_guard.web.slack import slack_signature
from tests.auth.test_serve_oidc import INITIALIZE, client
from tests.conftest import PY, background, free_port, probe
from tests.oidc_provider import OidcProvider
from tests.reviewing import review, reviewer_token

pytestmark = pytest.mark.anyio

REVIEWED_ECHO = """version: 1
defaults: {action: allow, timeout: 120}
rules:
  - name: echo-is-reviewed
    match: {tool: echo}
    action: approve
    approvers: reviewers
"""

# Each is "bob" to the eye (or nearly), and not "bob" to a string comparison.
HIDDEN = {
    "zero-width space": "bob\u200b",
    "zero-width joiner": "b\u200dob",
    "soft hyphen": "bo\u00adb",
    "left-to-right mark": "\u200ebob",
    "combining grapheme joiner": "bo\u034fb",
    "right-to-left override": "\u202ebob",
    "byte order mark": "\ufeffbob",
    "newline": "bob\nadmin",
    "tab": "bob\tx",
    "hangul filler": "bo\u3164b",
    "variation selector": "bo\ufe0fb",
    "braille blank": "b\u2800ob",
    "line separator": "bob\u2028admin",
}
BLANK = {"empty": "", "spaces": "   ", "em spaces": "\u2003\u2003"}


@asynccontextmanager
async def oidc_serve(
    provider: OidcProvider, tmp_path: Path, policy: str | None = None, options: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    """serve --auth oidc in front of the probe server (with ``policy``); yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    chosen = ["--no-policy"]
    if policy is not None:
        (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
        chosen = ["--policy", str(tmp_path / "policy.yaml")]
    argv = [PY, "-m", "mcp_guard", "serve", *chosen, "--port", str(port), "--auth", "oidc", "--issuer", provider.issuer,
            "--audience", f"{base}/mcp", *options, "--", *probe()]
    async with background(argv, f"{base}/healthz", env=env):
        yield base


def initialize(base: str, token: str) -> httpx.Response:
    return httpx.post(f"{base}/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {token}",
                                                                "Accept": "application/json, text/event-stream"})


def refusal_of(reply: httpx.Response, token: str) -> str:
    """The error_description of a 401 invalid_token refusal; checks that the token is not echoed."""
    assert reply.status_code == 401, reply.status_code
    challenge = reply.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert token not in challenge and token not in reply.text
    description = challenge.split('error_description="', 1)[1].split('"', 1)[0]
    assert description in reply.json()["error"]["message"]
    return description


async def test_a_user_claim_hiding_an_invisible_or_control_character_is_refused_naming_the_claim_and_never_queued(
    oidc_provider: OidcProvider, tmp_path: Path, guard_home: Path
) -> None:
    bobs_review = reviewer_token(guard_home, "bob")
    got: dict[str, str] = {}
    async with oidc_serve(oidc_provider, tmp_path, REVIEWED_ECHO, ["--user-claim", "preferred_username"]) as base:
        with anyio.fail_after(60):
            for label, name in {**HIDDEN, **BLANK}.items():
                token = oidc_provider.token("mallory", f"{base}/mcp", claims={"preferred_username": name})
                got[label] = refusal_of(initialize(base, token), token)
            queued = json.loads(review(guard_home, "list", "--json", token=bobs_review).stdout or "[]")
    for label, description in got.items():
        assert "'preferred_username' claim is not a usable caller name" in description, label
    assert all("cannot contain U+" in got[label] for label in HIDDEN)
    assert "cannot contain U+200B" in got["zero-width space"] and "cannot contain U+000A" in got["newline"]
    assert all("empty or only whitespace" in got[label] for label in BLANK)
    assert queued == []  # no request of a "bob" lookalike waits where bob could approve it


async def test_a_sub_that_names_the_caller_is_held_to_the_same_rules(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    async with oidc_serve(oidc_provider, tmp_path) as base:
        with anyio.fail_after(60):
            hidden = oidc_provider.token("bob\u200b", f"{base}/mcp")
            long = oidc_provider.token("b" * 65, f"{base}/mcp")
            hidden_reply, long_reply = initialize(base, hidden), initialize(base, long)
            plain = initialize(base, oidc_provider.token("bob", f"{base}/mcp"))
    assert "'sub' claim is not a usable caller name" in refusal_of(hidden_reply, hidden)
    assert "at most 64 characters" in refusal_of(long_reply, long)
    assert "b" * 65 not in long_reply.text and "b" * 65 not in long_reply.headers["www-authenticate"]
    assert plain.status_code == 200, "a plain name was refused"


async def test_a_user_claim_that_is_not_a_string_or_is_missing_is_refused(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    got: dict[str, str] = {}
    async with oidc_serve(oidc_provider, tmp_path, options=["--user-claim", "preferred_username"]) as base:
        with anyio.fail_after(60):
            for label, value in {"number": 7, "true": True, "array": ["bob"], "object": {"name": "bob"}}.items():
                token = oidc_provider.token("mallory", f"{base}/mcp", claims={"preferred_username": value})
                got[label] = refusal_of(initialize(base, token), token)
            token = oidc_provider.token("mallory", f"{base}/mcp")
            got["missing"] = refusal_of(initialize(base, token), token)
    for label in ("number", "true", "array", "object"):
        assert got[label] == "the access token's 'preferred_username' claim is not a string", label
    assert got["missing"] == "the access token has no 'preferred_username' claim to name the caller"


async def test_a_token_without_sub_is_refused_even_when_another_claim_names_the_caller(
    oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    # Without a sub the caller's sessions, vaults and grants would hang on a claim a user may edit.
    async with oidc_serve(oidc_provider, tmp_path, options=["--user-claim", "preferred_username"]) as base:
        with anyio.fail_after(60):
            token = oidc_provider.token("ann", f"{base}/mcp", claims={"preferred_username": "ann"}, drop=["sub"])
            reply = initialize(base, token)
            kept = initialize(base, oidc_provider.token("ann", f"{base}/mcp", claims={"preferred_username": "ann"}))
    assert "no usable 'sub' claim" in refusal_of(reply, token)
    assert kept.status_code == 200


def _slack_click(secret: str, rid: str, user: str) -> tuple[bytes, dict[str, str]]:
    payload = {"type": "block_actions", "user": {"id": user}, "actions": [{"action_id": "approve", "value": rid}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
    return body, {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_signature(secret, ts, body),
                  "Content-Type": "application/x-www-form-urlencoded"}


async def while_pending(
    provider: OidcProvider, tmp_path: Path, guard_home: Path, caller: str, watcher: str,
    attempt: Callable[[str, str], Awaitable[None]], env: dict[str, str] | None = None,
) -> list[Any]:
    """``caller`` (an OIDC user) makes the reviewed echo call; once it waits in the queue (seen
    with the reviewer token ``watcher``), ``attempt(request id, base URL)`` runs. The call's answers."""
    got: list[Any] = []
    async with oidc_serve(provider, tmp_path, REVIEWED_ECHO, env=env) as base:
        token = provider.token(caller, f"{base}/mcp")
        with anyio.fail_after(120):
            async with client(f"{base}/mcp", token, "legacy") as session:

                async def call() -> None:
                    got.append(await session.call_tool("echo", {"message": "approved by myself"}))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    while not (pending := json.loads(review(guard_home, "list", "--json", token=watcher).stdout or "[]")):
                        await anyio.sleep(0.05)
                    assert pending[0]["user"] == caller
                    await attempt(str(pending[0]["id"]), base)
    return got


async def self_approval(
    provider: OidcProvider, tmp_path: Path, guard_home: Path, reviewer: str, caller: str
) -> tuple[dict[str, tuple[int, str]], str]:
    """``caller``'s reviewed call, then ``reviewer``'s try to approve it through the API and the CLI
    (exit code and stderr of each), and the request's state after; a third reviewer ends it."""
    own, other = reviewer_token(guard_home, reviewer), reviewer_token(guard_home, "zed")
    tried: dict[str, tuple[int, str]] = {}
    states: list[str] = []

    async def attempt(rid: str, base: str) -> None:
        api = review(guard_home, "approve", rid, "--url", base, token=own)
        tried["api"] = (api.returncode, api.stderr)
        local = review(guard_home, "approve", rid, token=own)
        tried["cli"] = (local.returncode, local.stderr)
        states.append(json.loads(review(guard_home, "show", rid, "--json", token=other).stdout)["state"])
        if states[-1] == "pending":
            review(guard_home, "deny", rid, "--reason", "test over", token=other)

    await while_pending(provider, tmp_path, guard_home, caller, other, attempt)
    return tried, states[0]


async def test_a_requester_drawn_like_a_reviewer_cannot_be_approved_by_that_reviewer_on_any_channel(
    oidc_provider: OidcProvider, tmp_path: Path, guard_home: Path
) -> None:
    lookalike = "b\u043eb"  # a Cyrillic o: a valid name, and "bob" on every screen
    bob, carol = reviewer_token(guard_home, "bob"), reviewer_token(guard_home, "carol")
    signing = secrets.token_hex(16)
    env = {"MCP_GUARD_SLACK_SIGNING_SECRET": signing, "MCP_GUARD_SLACK_USERS": "U0BOB=bob"}
    tried: dict[str, tuple[int, str]] = {}
    states: list[str] = []

    async def attempt(rid: str, base: str) -> None:
        cli = review(guard_home, "approve", rid, token=bob)
        tried["cli"] = (cli.returncode, cli.stderr)
        api = review(guard_home, "approve", rid, "--url", base, token=bob)
        tried["api"] = (api.returncode, api.stderr)
        body, headers = _slack_click(signing, rid, "U0BOB")
        async with httpx.AsyncClient() as http:
            slack = await http.post(f"{base}/slack/interactive", content=body, headers=headers)
        tried["slack"] = (slack.status_code, slack.text)
        states.append(json.loads(review(guard_home, "show", rid, "--json", token=carol).stdout)["state"])
        decided = review(guard_home, "approve", rid, token=carol)
        assert decided.returncode == 0, decided.stderr

    got = await while_pending(oidc_provider, tmp_path, guard_home, lookalike, carol, attempt, env)
    still = states[0]
    assert tried["cli"][0] != 0 and tried["api"][0] != 0 and tried["slack"][0] == 403, tried
    for channel, (_, said) in tried.items():
        assert "looks like" in said and "cannot decide it" in said, channel
    assert still == "pending"
    assert not got[0].is_error and "approved by myself" in got[0].content[0].text


def test_the_store_refuses_a_lookalike_of_the_requester_even_when_a_channel_did_not_ask_first(tmp_path: Path) -> None:
    approvals = Approvals(Store(tmp_path / "guard.db"))
    request = approvals.open(
        user="b\u043eb", session="s-1", server="probe", tool="echo", binding="x" * 64, rule="echo-is-reviewed",
        risk="high", preview="echo", max_scope="once", lifetime=60, approvers="reviewers",
    )
    assert "looks like" in (may_decide(request, "bob", "secops") or "")
    assert may_decide(request, "carol", "secops") is None
    with pytest.raises(ValueError, match="looks like 'b\\\\u043eb', who requested this call, so cannot decide it"):
        approvals.decide(request.id, approve=True, by="BOB", channel="test")
    assert approvals.get(request.id).state == "pending"  # type: ignore[union-attr]
    assert approvals.decide(request.id, approve=True, by="carol", channel="test").state == "approved"


async def test_a_user_claim_that_normalisation_would_draw_differently_is_refused(
    oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    # NFKC takes the lunate sigma (drawn "c") to a final sigma: stored that way, "ϲarol" would no
    # longer be seen to look like the reviewer carol.
    async with oidc_serve(oidc_provider, tmp_path, options=["--user-claim", "preferred_username"]) as base:
        with anyio.fail_after(60):
            token = oidc_provider.token("mallory", f"{base}/mcp", claims={"preferred_username": "\u03f2arol"})
            description = refusal_of(initialize(base, token), token)
            plain = oidc_provider.token("mallory", f"{base}/mcp", claims={"preferred_username": "\uff4d\uff41x"})
            fullwidth = initialize(base, plain)  # NFKC makes "ｍａx" "max", drawn alike: one person, accepted
    assert "changes how it is drawn under Unicode normalisation" in description
    assert fullwidth.status_code == 200, fullwidth.text

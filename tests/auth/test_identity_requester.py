"""The authenticated caller is the requester everywhere: in the audit, in the review queue (where
their own reviewer token cannot approve their request), and in policy `group:` matches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.auth.support import as_caller, cli, create_token, gateway, stdio, tenant, text
from tests.conftest import ERAS
from tests.reviewing import review, reviewer_token

pytestmark = pytest.mark.anyio

REVIEWED = """version: 1
defaults: {action: allow, timeout: 60}
rules:
  - name: size-is-reviewed
    match: {tool: size_of}
    action: approve
    approvers: reviewers
"""

GROUP_RULES = """version: 1
defaults: {action: allow}
rules:
  - name: ops-may-not-say
    match: {tool: say, group: ops}
    action: deny
    reason: the ops group may not use say
"""


def _records(event_prefix: str = "call.") -> list[dict[str, Any]]:
    exported = cli("audit", "export")
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    return [r for r in rows if str(r.get("kind", "")).startswith(event_prefix)]


def _body(record: dict[str, Any]) -> dict[str, Any]:
    body = record.get("body")
    return body if isinstance(body, dict) else {}


@pytest.mark.parametrize("mode", ERAS)
async def test_the_audit_names_the_caller_whose_token_made_each_call(tmp_path: Path, mode: str) -> None:
    alice, bob = create_token("alice"), create_token("bob")
    async with gateway(tmp_path, {"tenant": stdio(tenant())}) as url:
        with anyio.fail_after(60):
            async with as_caller(url, alice, mode) as a, as_caller(url, bob, mode) as b:
                assert text(await a.call_tool("say", {"text": "from alice"})) == "from alice"
                assert text(await b.call_tool("size_of", {"text": "from bob"})) == "8"
    calls = [_body(r) for r in _records() if _body(r).get("method") == "tools/call"]
    by_tool = {(c.get("tool"), c.get("user")) for c in calls}
    assert ("say", "alice") in by_tool and ("size_of", "bob") in by_tool
    assert not any(c.get("user") not in ("alice", "bob") for c in calls)
    assert alice not in json.dumps(calls) and bob not in json.dumps(calls)


async def _first_pending(home: Path, token: str) -> dict[str, Any]:
    while True:
        listed = review(home, "list", "--json", token=token)
        items = json.loads(listed.stdout or "[]")
        if items:
            return items[0]  # type: ignore[no-any-return]
        await anyio.sleep(0.05)


@pytest.mark.parametrize("mode", ERAS)
async def test_the_review_queue_shows_the_caller_as_requester_and_their_reviewer_token_cannot_approve(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    alice = create_token("alice")
    alices_review, bobs_review = reviewer_token(guard_home, "alice", "reviewer"), reviewer_token(guard_home, "bob", "reviewer")
    got: list[Any] = []
    async with gateway(tmp_path, {"tenant": stdio(tenant())}, REVIEWED) as url:
        with anyio.fail_after(90):
            async with as_caller(url, alice, mode) as a:

                async def call() -> None:
                    got.append(await a.call_tool("size_of", {"text": "reviewed"}))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    pending = await _first_pending(guard_home, bobs_review)
                    assert pending["user"] == "alice"
                    own = review(guard_home, "approve", pending["id"], token=alices_review)
                    assert own.returncode == 1 and "cannot decide it" in own.stderr
                    assert json.loads(review(guard_home, "show", pending["id"], "--json", token=bobs_review).stdout)["state"] == "pending"
                    decided = review(guard_home, "approve", pending["id"], token=bobs_review)
                    assert decided.returncode == 0, decided.stderr
    assert text(got[0]) == "8"


@pytest.mark.parametrize("mode", ERAS)
async def test_a_policy_group_rule_holds_for_a_caller_whose_token_has_the_group_and_not_for_another(
    tmp_path: Path, mode: str
) -> None:
    ops, dev = create_token("olga", "ops"), create_token("dan", "devs")
    async with gateway(tmp_path, {"tenant": stdio(tenant(), shared=True)}, GROUP_RULES) as url:
        with anyio.fail_after(60):
            async with as_caller(url, ops, mode) as o, as_caller(url, dev, mode) as d:
                # Interleaved on one shared upstream and one stateless hub: nothing decided for one caller
                # (a cached decision, a filtered listing) may be reused for the other.
                dans_tools = {t.name for t in (await d.list_tools()).tools}
                olgas_tools = {t.name for t in (await o.list_tools()).tools}
                denied = await o.call_tool("say", {"text": "hello"})
                allowed = await d.call_tool("say", {"text": "hello"})
                denied_again = await o.call_tool("say", {"text": "hello"})
    assert "say" in dans_tools and "say" not in olgas_tools
    assert denied.is_error and "ops group may not use say" in text(denied)
    assert not allowed.is_error and text(allowed) == "hello"
    assert denied_again.is_error

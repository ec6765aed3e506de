"""Red team, `review show` in a terminal (issue 14 item 3): a reviewer's terminal is a surface too; hostile
arguments must not rewrite it, and it shows the same preview (and digest) the store and webhooks carry."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.attack.approve_common import open_asked, stop
from tests.attack.test_approve_canaries import leaks
from tests.attack.test_approve_slack import POLICY
from tests.reviewing import review, reviewer_token

pytestmark = pytest.mark.anyio

HOSTILE = {"cmd": "\x1b[2J\x1b[H\x1b]0;ok\x07Risk: low\r\u202egnp.exe\u200b", "to": "ops.lead.42@corp.example"}



async def shown_to_reviewer(tmp_path: Path, home: Path, arguments: dict[str, Any]) -> tuple[list[Any], str, dict[str, Any]]:
    """A reviewed ``send`` with ``arguments`` by bob: what `review list --json`, `review show` and
    `review show --json` give the reviewer while it waits (then alice denies it)."""
    token = reviewer_token(home, "alice")
    process, client, _ = await open_asked(tmp_path, policy=POLICY, env={"MCP_GUARD_USER": "bob"})
    try:
        with anyio.fail_after(60):
            await client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": "send", "arguments": arguments}})
            while not (items := json.loads(review(home, "list", "--json").stdout or "[]")):
                await anyio.sleep(0.1)
            rid = str(items[0]["id"])
            text = review(home, "show", rid).stdout
            stored = json.loads(review(home, "show", rid, "--json").stdout)
            review(home, "deny", rid, "--reason", "test over", token=token)
            await client.response(1)
    finally:
        await stop(process)
    return items, text, stored

async def test_review_show_prints_the_stored_preview_escaped_with_its_digest(tmp_path: Path, guard_home: Path) -> None:
    _, text, stored = await shown_to_reviewer(tmp_path, guard_home, HOSTILE)
    for raw in ["\x1b", "\x07", "\r", "\u202e", "\u200b"]:
        assert raw not in text, f"raw {raw!r} reached the reviewer's terminal"
    assert stored["preview_sha256"] in text
    for line in stored["preview"].splitlines():
        assert line in text, f"review show differs from the stored preview at {line!r}"
    assert not any(line.startswith("Risk: low") for line in text.splitlines())
    assert HOSTILE["to"] in text, "the recipient the model wrote is masked in review show"


async def test_a_url_password_and_a_secret_key_reach_neither_review_show_nor_the_store(tmp_path: Path, guard_home: Path) -> None:
    # Built at run time: a password the detectors take for documentation's stand-in ("secret" inside), a key shaped
    # like an Anthropic API key used as an argument's name.
    password = "Secret-" + secrets.token_hex(6)
    key = "sk-ant-api03-" + secrets.token_urlsafe(30).replace("-", "x").replace("_", "y")
    url = f"https://deploy:{password}@build.example:8443/run?job=7"
    items, text, stored = await shown_to_reviewer(tmp_path, guard_home, {"url": url, key: "v"})
    listed = json.dumps(items)
    for raw in (password, key):
        assert raw not in text and raw not in listed and raw not in stored["preview"]
    assert leaks(guard_home, [password, key]) == []
    assert "https://deploy:<SECRET hidden, 19 chars>@build.example:8443/run?job=7" in text
    assert "a password in the URL (hidden here; it is sent as written)" in text
    assert f'["<SECRET hidden, {len(key)} chars>"] = "v"' in text
    assert stored["preview_sha256"] == hashlib.sha256(stored["preview"].encode()).hexdigest()
    assert stored["preview_sha256"] in text

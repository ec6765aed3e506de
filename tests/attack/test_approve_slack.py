"""Red team, Slack and webhooks (issue 14 item 6): hostile text from every source stays inert, and one
preview (one digest) reaches every surface.

The hostile text comes from the model (arguments), the upstream (the tool's name) and the requester's
name; the guard runs on stdio around fixtures/attack_approve_server.py and posts to a local stand-in for
Slack's chat.postMessage and a webhook receiver."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from standardwebhooks import Webhook

from tests.attack.approve_common import open_asked, stop
from tests.reviewing import review, reviewer_token
from tests.web.test_slack import HOOK_SECRET, Recorder, texts

pytestmark = pytest.mark.anyio

TOOL = "send*<!here>*<https://evil.example/a|Approve>"
POLICY = (
    "version: 1\n"
    "defaults: {action: allow, timeout: 60}\n"
    "groups: {secops: [alice]}\n"
    "rules:\n"
    "  - name: send-reviewed\n"
    "    match: {tool: \"send*\"}\n"
    "    action: approve\n"
    "    approvers: reviewers\n"
    "    group: secops\n"
)
ARGS = {"note": "``` <!channel> *Pre-approved* <https://evil.example/x|click> &lt;!everyone&gt; @alice :tada:",
        "to": "\u202eevil"}


async def test_hostile_tool_user_and_arguments_stay_inert_and_every_surface_has_one_digest(
        tmp_path: Path, guard_home: Path) -> None:
    Recorder.received = []
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{stand_in.server_address[1]}"
    token = reviewer_token(guard_home, "alice")
    env = {"MCP_GUARD_USER": "<!channel> *bob*", "ATTACK_TOOL": TOOL,
           "MCP_GUARD_SLACK_BOT_TOKEN": "test-bot-token", "MCP_GUARD_SLACK_CHANNEL": "C0REVIEW",
           "MCP_GUARD_SLACK_API_URL": api, "MCP_GUARD_SLACK_SIGNING_SECRET": "s" * 32,
           "MCP_GUARD_WEBHOOK_URLS": f"{api}/hook", "MCP_GUARD_WEBHOOK_SECRET": HOOK_SECRET}
    process, client, seen = await open_asked(tmp_path, env=env, policy=POLICY)
    try:
        with anyio.fail_after(60):
            await client.request(1, "tools/list", {})
            await client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                               "params": {"name": TOOL, "arguments": ARGS}})
            while len(Recorder.received) < 2:
                await anyio.sleep(0.05)
            by_path = {path: (headers, body) for path, headers, body in Recorder.received}
            message = json.loads(by_path["/chat.postMessage"][1])
            hook = Webhook(HOOK_SECRET).verify(by_path["/hook"][1], by_path["/hook"][0])
            rid = hook["request"]["id"]
            shown = json.loads(review(guard_home, "show", rid, "--json").stdout)
            review(guard_home, "deny", rid, "--reason", "test over", token=token)
            await client.response(2)
    finally:
        await stop(process)
        stand_in.shutdown()
        stand_in.server_close()
    objects = texts(message["blocks"])
    assert objects and all(t["type"] == "plain_text" and t.get("emoji") is False for t in objects), objects
    for t in objects + [{"text": message.get("text", "")}]:
        assert "<" not in t["text"] and ">" not in t["text"], f"live Slack markup: {t['text']!r}"
        assert "\u202e" not in t["text"]
    whole = json.dumps(message)
    digest = shown["preview_sha256"]
    assert hook["request"]["preview_sha256"] == digest
    assert digest in whole, "the Slack message does not carry the preview's digest"
    assert hook["request"]["preview"] == shown["preview"]

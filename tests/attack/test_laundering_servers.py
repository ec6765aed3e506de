"""Red team, promise 2 (no laundering across servers): a placeholder for a value that came from one server
is put back only toward that server; whatever route carries it toward another server (tool arguments,
_meta, resource URIs, completion and prompt arguments, subscriptions) must carry the placeholder."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.attack.common import ALLOW_ALL, LeakClient, attack_canaries, attack_server, stop
from tests.conftest import PY

pytestmark = pytest.mark.anyio


async def _open(tmp_path: Path, env: dict[str, str], caps: dict[str, Any] | None = None) -> tuple[Any, LeakClient, Path, Path]:
    cmd = attack_server()
    x_seen, y_seen = tmp_path / "x.jsonl", tmp_path / "y.jsonl"
    config = {"mcpServers": {
        "crm": {"command": cmd[0], "args": cmd[1:], "env": {"ATTACK_SEEN": str(x_seen), "ATTACK_NAME": "crm"}},
        "web": {"command": cmd[0], "args": cmd[1:], "env": {"ATTACK_SEEN": str(y_seen), "ATTACK_NAME": "web",
                                                            "ATTACK_TEMPLATE": "1"}},
    }}
    (tmp_path / "servers.json").write_text(json.dumps(config))
    (tmp_path / "policy.yaml").write_text(ALLOW_ALL)
    argv = [PY, "-m", "mcp_guard", "run", "--policy", str(tmp_path / "policy.yaml"), "--config", str(tmp_path / "servers.json")]
    process = await anyio.open_process(argv, env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    client = LeakClient(process)
    init = {"protocolVersion": "2025-11-25", "clientInfo": {"name": "atk", "version": "1"}, "capabilities": caps or {}}
    assert "result" in await client.request(0, "initialize", init)
    await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return process, client, x_seen, y_seen


async def _placeholder(client: LeakClient) -> str:
    reply = await client.request(1, "tools/call", {"name": "crm__leak2", "arguments": {"route": "link"}})
    found = re.search(r"<EMAIL_\d+>", json.dumps(reply))
    assert found is not None, reply
    return found.group(0)


def _routes(ph: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "arguments": ("tools/call", {"name": "web__store", "arguments": {"value": f"mail {ph}"}}),
        "meta": ("tools/call", {"name": "web__store", "arguments": {"value": "x"}, "_meta": {"note": ph}}),
        "resource-uri": ("resources/read", {"uri": f"file:///{ph}"}),
        "subscribe": ("resources/subscribe", {"uri": f"file:///{ph}"}),
        "completion": ("completion/complete", {"ref": {"type": "ref/prompt", "name": "web__p"},
                                               "argument": {"name": "a", "value": ph}}),
        "prompt-arguments": ("prompts/get", {"name": "web__p", "arguments": {"a": ph}}),
    }


@pytest.mark.parametrize("route", list(_routes("x")))
async def test_a_placeholder_sent_toward_another_server_reaches_it_as_a_placeholder(tmp_path: Path, route: str) -> None:
    env = attack_canaries()
    process, client, x_seen, y_seen = await _open(tmp_path, env)
    try:
        with anyio.fail_after(30):
            await client.request(10, "resources/templates/list")
            ph = await _placeholder(client)
            method, params = _routes(ph)[route]
            await client.request(2, method, params)
            # Control: toward its origin the same placeholder is put back (so it was a live one).
            await client.request(3, "tools/call", {"name": "crm__store", "arguments": {"value": ph}})
    finally:
        await stop(process)
    assert env["LEAK_EMAIL"] in x_seen.read_text()
    assert y_seen.exists() and ph in y_seen.read_text(), "the route never reached the other server"
    assert env["LEAK_EMAIL"] not in y_seen.read_text(), "the raw value reached a server it did not come from"


class Answering(LeakClient):
    """Answers the server's questions with text the test chose (here: a placeholder from another server)."""

    reply_text = ""

    async def response(self, rid: Any) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if "method" in message and "id" in message:
                if message["method"] == "sampling/createMessage":
                    result: dict[str, Any] = {"role": "assistant", "model": "m",
                                              "content": {"type": "text", "text": self.reply_text}}
                elif message["method"] == "elicitation/create":
                    result = {"action": "accept", "content": {"to": self.reply_text}}
                else:
                    result = {"roots": [{"uri": f"file:///{self.reply_text}", "name": self.reply_text}]}
                await self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            elif message.get("id") == rid and "method" not in message:
                return message


@pytest.mark.parametrize("route", ["sampling_media", "elicit_schema", "roots_meta"])
async def test_a_placeholder_in_the_clients_answer_to_another_servers_question_stays_a_placeholder(
    tmp_path: Path, route: str
) -> None:
    env = attack_canaries()
    process, client, x_seen, y_seen = await _open(tmp_path, env, caps={"sampling": {}, "elicitation": {"form": {}}, "roots": {}})
    client.__class__ = Answering
    try:
        with anyio.fail_after(30):
            ph = await _placeholder(client)
            client.reply_text = ph  # type: ignore[attr-defined]
            await client.request(2, "tools/call", {"name": "web__leak2", "arguments": {"route": route}})
    finally:
        await stop(process)
    assert y_seen.exists() and ph in y_seen.read_text(), "the answer never reached the other server"
    assert env["LEAK_EMAIL"] not in y_seen.read_text(), "the raw value reached a server it did not come from"

"""Red team, promise 2 over `mcp-guard serve`: the corners that leak over stdio leak over HTTP too (one
egress for both fronts), checked on the raw bytes of the HTTP answers."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from tests.attack.common import CAPS, assert_clean, attack_canaries, attack_server
from tests.attack.test_wire_http import ACCEPT, INIT, _messages
from tests.conftest import PY, background, free_port

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("route", ["keys", "structural", "error_data", "link"])
async def test_serve_masks_uncommon_corners_toward_an_http_client(tmp_path: Path, route: str) -> None:
    env = attack_canaries()
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n")
    argv = [PY, "-m", "mcp_guard", "serve", "--port", str(port), "--policy", str(policy), "--", *attack_server()]
    raw = bytearray()
    messages: list[dict] = []
    async with background(argv, f"http://127.0.0.1:{port}/healthz", env=env):
        with anyio.fail_after(30):
            async with httpx.AsyncClient(timeout=20) as http:
                init = {**INIT, "params": {**INIT["params"], "capabilities": CAPS}}
                opened = await http.post(url, json=init, headers=ACCEPT)
                headers = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
                await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
                call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "leak2", "arguments": {"route": route}}}
                reply = await http.post(url, json=call, headers=headers)
                raw += opened.content + reply.content
                messages += _messages(opened) + _messages(reply)
    assert any(m.get("id") == 2 for m in messages), messages
    assert_clean(bytes(raw), messages, [env["LEAK_KEY"], env["LEAK_EMAIL"]])

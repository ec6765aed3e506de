"""Helpers for the approval red-team tests: the guard around fixtures/attack_approve_server.py, driven by a
raw client that can send any bytes (duplicate keys, NaN, huge ints) and records every elicitation question."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio

from tests.conftest import FIXTURES, PY
from tests.rawclient import RawClient

CAPS = {"elicitation": {"form": {}}}
APPROVE_SEND = (
    "version: 1\n"
    "defaults: {action: allow, min_human_ms: 0, timeout: 30}\n"
    "rules:\n"
    "  - name: send-needs-you\n"
    "    match: {tool: send}\n"
    "    action: approve\n"
    "    approvers: user\n"
    "    channels: [elicitation]\n"
    "    scope: once\n"
)


class AskedClient(RawClient):
    """Answers every elicitation/create with ``answer`` and keeps each question's text."""

    def __init__(self, process: Any, answer: dict[str, Any] | None = None) -> None:
        super().__init__(process)
        self.questions: list[str] = []
        self.answer = answer or {"action": "accept", "content": {"approve": True}}

    async def response(self, rid: Any) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if message.get("method") == "elicitation/create" and "id" in message:
                self.questions.append(str(message.get("params", {}).get("message", "")))
                await self.send({"jsonrpc": "2.0", "id": message["id"], "result": self.answer})
            elif "method" in message and "id" in message:
                await self.send({"jsonrpc": "2.0", "id": message["id"], "result": {}})
            elif message.get("id") == rid and "method" not in message:
                return message

    async def call_raw(self, rid: int, arguments_json: str, tool: str = "send") -> dict[str, Any]:
        """A tools/call whose arguments object is the given JSON text, byte for byte."""
        line = ('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%s,"arguments":%s}}'
                % (rid, json.dumps(tool), arguments_json))
        await self.send_line(line.encode())
        return await self.response(rid)


async def open_asked(tmp_path: Path, env: dict[str, str] | None = None, policy: str = APPROVE_SEND,
                     answer: dict[str, Any] | None = None) -> tuple[Any, AskedClient, Path]:
    seen = tmp_path / "seen.jsonl"
    policy_path = tmp_path / "approve-policy.yaml"
    policy_path.write_text(policy)
    argv = [PY, "-m", "mcp_guard", "run", "--policy", str(policy_path), "--",
            PY, str(FIXTURES / "attack_approve_server.py")]
    full = {**os.environ, "ATTACK_SEEN": str(seen), **(env or {})}
    process = await anyio.open_process(argv, env=full, stderr=subprocess.DEVNULL)
    client = AskedClient(process, answer)
    init = {"protocolVersion": "2025-11-25", "clientInfo": {"name": "attack-approve", "version": "1"},
            "capabilities": CAPS}
    try:
        reply = await client.request(0, "initialize", init)
        assert "result" in reply, reply
        await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    except BaseException:
        await stop(process)  # a guard that refused to start is closed here, not left to the collector
        raise
    return process, client, seen


def executed(seen: Path) -> list[str]:
    """The raw arguments text of each call the upstream ran (as the guard re-encoded it)."""
    if not seen.exists():
        return []
    out = []
    for line in seen.read_text().splitlines():
        params = json.loads(line)["params"]
        out.append(json.dumps(params.get("arguments"), ensure_ascii=False))
    return out


def executed_args(seen: Path) -> list[Any]:
    if not seen.exists():
        return []
    return [json.loads(line)["params"].get("arguments") for line in seen.read_text().splitlines()]


async def stop(process: Any) -> None:
    process.kill()
    with anyio.CancelScope(shield=True):
        await process.aclose()

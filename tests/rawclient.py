"""A bare JSON-RPC client over a real subprocess, for tests that need the wire itself:
malformed lines, oversize messages, process lifecycle."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc

INIT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "raw-test", "version": "1"},
}


class RawClient:
    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self._buf = b""
        self.seen: list[dict[str, Any]] = []

    async def send_line(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(data + b"\n")

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_line(json.dumps(message).encode())

    async def read_chunk(self) -> bytes:
        assert self.process.stdout is not None
        return await self.process.stdout.receive()

    async def receive(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            self._buf += await self.read_chunk()
        line, self._buf = self._buf.split(b"\n", 1)
        message = json.loads(line)
        self.seen.append(message)
        return message  # type: ignore[no-any-return]

    async def response(self, rid: Any) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if message.get("id") == rid and "method" not in message:
                return message

    async def request(self, rid: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.response(rid)

    async def initialize(self) -> dict[str, Any]:
        reply = await self.request(0, "initialize", INIT)
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply


async def open_raw(argv: Sequence[str], env: dict[str, str] | None = None) -> anyio.abc.Process:
    return await anyio.open_process(
        list(argv), env={**os.environ, **(env or {})}, stderr=subprocess.PIPE
    )


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current:
                found.append(child)
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

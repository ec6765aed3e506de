"""How long another session's ping waits while one session's large result is masked.

    python benchmarks/egress_offload.py [--rows 22000] [--pings 200] [--rounds 3]

`mcp-guard serve` (allow-all policy, masking on) in front of fixtures/leaky_server.py. Session A
calls a tool whose result is about 1 MB of text (22,000 rows, 50 distinct addresses to mask);
session B, over its own HTTP session, pings back to back while A's call is in flight. The same
B pings with nothing else going on give the baseline in the same run. Prints B's ping latency
(p50 / p99 / max) idle and under load, the added max, and how long A's call took.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import PY, background, free_port  # noqa: E402  (starts a server, waits until it answers)

INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}


class Http:
    """One keep-alive HTTP/1.1 connection, each request written in one piece and each answer
    acknowledged at once, so that the figures measure the guard rather than TCP's delayed ACKs."""

    def __init__(self, port: int) -> None:
        self.port, self.sid, self.stream, self.buf = port, "", None, b""

    async def open(self) -> None:
        self.stream = await anyio.connect_tcp("127.0.0.1", self.port)
        reply, headers = await self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT})
        self.sid = headers["mcp-session-id"]
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def post(self, message: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        try:
            return await self._post(message)
        except (anyio.EndOfStream, anyio.BrokenResourceError):  # the server closed an idle connection
            self.stream, self.buf = await anyio.connect_tcp("127.0.0.1", self.port), b""
            return await self._post(message)

    def _quick_ack(self) -> None:
        """ACK at once: the server writes headers and body apart, and a delayed ACK would hold
        the body back ~40 ms (Linux clears this flag after each read, so it is set each time)."""
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket)  # type: ignore[union-attr]
        if hasattr(socket, "TCP_QUICKACK"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    async def _post(self, message: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        assert self.stream is not None
        body = json.dumps(message).encode()
        head = ["POST /mcp HTTP/1.1", f"host: 127.0.0.1:{self.port}", "accept: application/json",
                "content-type: application/json", f"content-length: {len(body)}"]
        if self.sid:
            head += [f"mcp-session-id: {self.sid}", "mcp-protocol-version: 2025-11-25"]
        await self.stream.send(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self.buf:
            self._quick_ack()
            self.buf += await self.stream.receive()
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        headers = dict(line.split(": ", 1) for line in raw_head.decode().lower().split("\r\n")[1:])
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._quick_ack()
            self.buf += await self.stream.receive()
        content, self.buf = self.buf[:length], self.buf[length:]
        return content, headers


async def ping_while(b: Http, busy: anyio.Event | None, count: int) -> list[float]:
    """Ping back to back: ``count`` times, or until ``busy`` is set."""
    times: list[float] = []
    rid = 1000
    while (busy is None and len(times) < count) or (busy is not None and not busy.is_set()):
        rid += 1
        start = time.perf_counter()
        await b.post({"jsonrpc": "2.0", "id": rid, "method": "ping"})
        times.append((time.perf_counter() - start) * 1000)
    return times


async def one_round(a: Http, b: Http, rows: int, pings: int) -> tuple[list[float], list[float], float, int]:
    idle = await ping_while(b, None, pings)
    done = anyio.Event()
    loaded: list[float] = []
    took = 0.0
    size = 0

    async def call() -> None:
        nonlocal took, size
        start = time.perf_counter()
        reply, _ = await a.post({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"name": "leak", "arguments": {"route": "big", "rows": rows}}})
        took = (time.perf_counter() - start) * 1000
        size = len(reply)
        assert b"@example.com" not in reply, "the large result was not masked"
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        loaded = await ping_while(b, done, 0)
    return idle, loaded, took, size


def stats(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):7.2f}  p99 {p99:7.2f}  max {ordered[-1]:7.2f}  (n={len(ordered)})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=22_000)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        policy = Path(home) / "policy.yaml"
        policy.write_text("version: 1\ndefaults: {action: allow}\n")
        port = free_port()
        argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--",
                PY, str(ROOT / "fixtures" / "leaky_server.py")]
        env = {"MCP_GUARD_HOME": home, "LEAK_KEY": "none", "LEAK_EMAIL": "none", "LEAK_PASSWORD": "none"}
        async with background(argv, f"http://127.0.0.1:{port}/healthz", env=env):
            a, b = Http(port), Http(port)
            await a.open()
            await b.open()
            await one_round(a, b, 200, 20)  # warm-up: detectors compiled, vault made
            idle_all: list[float] = []
            loaded_all: list[float] = []
            for _ in range(args.rounds):
                idle, loaded, took, size = await one_round(a, b, args.rows, args.pings)
                idle_all += idle
                loaded_all += loaded
                print(f"round: A's call {took:.0f} ms for {size / 1e6:.2f} MB; B pinged {len(loaded)} times meanwhile")
    print(f"B's ping, idle:         {stats(idle_all)} ms")
    print(f"B's ping, A masking:    {stats(loaded_all)} ms")
    print(f"added by A's masking: max {max(loaded_all) - statistics.median(idle_all):+.2f} ms over the idle p50, "
          f"p50 {statistics.median(loaded_all) - statistics.median(idle_all):+.2f} ms")


if __name__ == "__main__":
    anyio.run(main)

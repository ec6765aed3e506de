"""Red team, serve's team gateway at the HTTP layer, before and around authentication.

* Huge headers: anyone who reaches the port (no token needed) can send a request whose headers
  run to megabytes. A server bounds them (nginx and HAProxy refuse past 8-16 KiB, 431) and stops
  reading; a guard that buffers all of them and only then says 401 gives every unauthenticated
  client the guard's memory and CPU.
* /metrics under --auth: a caller's own choices (unknown methods, made-up tool names) must not
  become label values there, or one caller writes into what others read and grows the registry
  without bound.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import anyio
import httpx
import pytest

from tests.auth.support import ACCEPT, LEGACY_INIT, bearer, create_token, gateway, stdio
from tests.conftest import probe

pytestmark = pytest.mark.anyio

HEADER_MIB = 24


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1])


def _guard_pid(port: int) -> int:
    """The serve process listening on ``port`` (found by its command line)."""
    import os

    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and str(port).encode() in argv:
                return int(entry)
    raise AssertionError("serve's process not found")


def _send_huge_header(port: int, mib: int) -> tuple[str, int]:
    """An unauthenticated POST /mcp whose Authorization header is ``mib`` MiB: what came back first,
    and how many MiB the guard took before answering or hanging up."""
    head = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer ".encode()
    chunk = b"A" * (1 << 20)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall(head)
            for _ in range(mib):
                sock.sendall(chunk)
                sent += 1
            sock.sendall(b"\r\nContent-Length: 2\r\n\r\n{}")
            answer = sock.recv(200).decode("latin-1")
        except OSError as exc:  # refused mid-way: reset or broken pipe
            try:
                answer = sock.recv(200).decode("latin-1") or type(exc).__name__
            except OSError:
                answer = type(exc).__name__
    return answer.split("\r\n", 1)[0], sent


async def test_a_request_with_megabytes_of_headers_is_refused_before_the_guard_buffers_them(tmp_path: Path) -> None:
    async with gateway(tmp_path, {"probe": stdio(probe())}) as url:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        pid = _guard_pid(port)
        before = _rss_kib(pid)
        started = time.monotonic()
        first_line, took = await anyio.to_thread.run_sync(_send_huge_header, port, HEADER_MIB)
        spent = time.monotonic() - started
        grown_mib = (_rss_kib(pid) - before) / 1024
        with anyio.fail_after(30):
            alive = httpx.get(url.replace("/mcp", "/healthz"), timeout=10).status_code
    assert alive == 200
    assert " 401 " not in first_line + " ", (
        f"the guard read a {HEADER_MIB} MiB header from a client without a token and only then refused it"
        f" ({first_line!r} after {took} MiB, {spent:.1f} s; its memory grew {grown_mib:.0f} MiB)"
    )


async def test_unknown_methods_and_made_up_tool_names_put_no_caller_chosen_label_in_metrics(tmp_path: Path) -> None:
    alice = create_token("alice")
    marker = "atkmarker"
    chosen = [f"{marker}/x", f"{marker}" * 40, f'{marker}"}}\nmcp_guard_forged 1\n#']
    async with gateway(tmp_path, {"probe": stdio(probe())}) as url:
        with anyio.fail_after(60):
            async with httpx.AsyncClient(timeout=30) as http:
                headers = {**ACCEPT, **bearer(alice), "Accept": "application/json"}
                sid = (await http.post(url, content=json.dumps(LEGACY_INIT), headers=headers)).headers["mcp-session-id"]
                headers["Mcp-Session-Id"] = sid
                await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
                for rid, method in enumerate(chosen, 10):
                    await http.post(url, json={"jsonrpc": "2.0", "id": rid, "method": method, "params": {}}, headers=headers)
                for rid, tool in enumerate([f"{marker}_tool", f"probe__{marker}", f"{marker}@example.com"], 20):
                    call = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
                    await http.post(url, json=call, headers=headers)
                metrics = await http.get(url.replace("/mcp", "/metrics"), headers=bearer(alice))
                unauthenticated = await http.get(url.replace("/mcp", "/metrics"))
    assert metrics.status_code == 200 and unauthenticated.status_code == 401
    assert marker not in metrics.text and "mcp_guard_forged" not in metrics.text
    assert "alice" not in metrics.text  # no caller names either


def _raw_post(port: int, headers: bytes, body: bytes) -> str:
    """One POST /mcp written in a single send (head and body together): the status line back."""
    head = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + headers + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return sock.recv(200).decode("latin-1").split("\r\n", 1)[0]


async def test_a_large_body_sent_with_its_head_and_a_head_near_the_bound_are_read_as_usual(tmp_path: Path) -> None:
    async with gateway(tmp_path, {"probe": stdio(probe())}) as url:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        body = json.dumps({**LEGACY_INIT, "params": {**LEGACY_INIT["params"], "pad": "x" * 2_000_000}}).encode()
        with anyio.fail_after(60):
            big_body = await anyio.to_thread.run_sync(_raw_post, port, b"", body)
            near = b"X-Pad: " + b"p" * 60_000 + b"\r\n"
            big_head = await anyio.to_thread.run_sync(_raw_post, port, near, b"{}")
            # A head longer than one read of the socket (asyncio reads up to 256 KiB at a time).
            over = b"X-Pad: " + b"p" * 1_000_000 + b"\r\n"
            too_big = await anyio.to_thread.run_sync(_raw_post, port, over, b"{}")
    # Past the head, the body counts against the message limit (413) or authentication (401), never 431.
    assert " 431 " not in big_body + " " and big_body.startswith("HTTP/1.1 4"), big_body
    assert big_head.startswith("HTTP/1.1 401"), big_head
    assert too_big.startswith("HTTP/1.1 431"), too_big

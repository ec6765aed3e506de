"""Red team, who decides: the CLI's `--url` sends the reviewer's token only over https://, or to
loopback over plain HTTP; never to another host in clear, and never on to wherever a redirect
points."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CANARY = "mgr_" + "R" * 43  # shaped like a token, built here; never a real one


class Catcher(BaseHTTPRequestHandler):
    """Records every Authorization header; with ``redirect`` set, answers 307 towards it."""

    seen: list[str] = []
    redirect = ""

    def _any(self) -> None:
        Catcher.seen.append(self.headers.get("Authorization", "") + self.path)
        if Catcher.redirect:
            self.send_response(307)
            self.send_header("Location", Catcher.redirect + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _any  # noqa: N815 - the stdlib's names

    def log_message(self, *args: Any) -> None:
        pass


def outside_address() -> str:
    """An address of this machine that is not loopback (what another host would be)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
        address = probe.getsockname()[0]
    finally:
        probe.close()
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


def catcher(host: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, 0), Catcher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MCP_GUARD_REVIEW_TOKEN": CANARY}
    return subprocess.run(
        [sys.executable, "-m", "mcp_guard", "review", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("verb", ["list", "approve"])
def test_the_token_is_never_sent_in_clear_to_a_host_that_is_not_loopback(verb: str) -> None:
    Catcher.seen, Catcher.redirect = [], ""
    outside = catcher(outside_address())
    try:
        host, port = outside.server_address[:2]
        args = ["list"] if verb == "list" else ["approve", "0badc0de"]
        done = cli(*args, "--url", f"http://{host}:{port}")
    finally:
        outside.shutdown()
        outside.server_close()
    assert done.returncode != 0
    assert not any(CANARY in seen for seen in Catcher.seen), "the token went over plain HTTP to another host"


@pytest.mark.parametrize("verb", ["list", "approve"])
def test_a_redirect_from_the_served_api_does_not_carry_the_token_elsewhere(verb: str) -> None:
    outside = catcher(outside_address())
    local = None
    try:
        Catcher.seen = []
        o_host, o_port = outside.server_address[:2]
        Catcher.redirect = f"http://{o_host}:{o_port}"
        local = catcher("127.0.0.1")
        args = ["list"] if verb == "list" else ["approve", "0badc0de"]
        cli(*args, "--url", f"http://127.0.0.1:{local.server_address[1]}")
    finally:
        Catcher.redirect = ""
        outside.shutdown()
        outside.server_close()
        if local is not None:
            local.shutdown()
            local.server_close()
    carried = [seen for seen in Catcher.seen[1:] if CANARY in seen]
    assert not carried, "a redirect carried the token to another host over plain HTTP"

"""Red team round 2: serve bounds a request's line and headers to 64 KiB (431, connection closed)
before authentication reads them (README), whatever shape the head takes: many short header
lines, a huge URL, HTTP/1.0, the second request of a pipelined pair, a chunked body."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import httpx
import pytest

from tests.auth.support import gateway, stdio
from tests.conftest import probe

pytestmark = pytest.mark.anyio

KIB = 1024


def _head(port: int, shape: str) -> bytes:
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    if shape == "many short header lines":
        return b"POST /mcp HTTP/1.1\r\n" + host + b"".join(b"X-%d: y\r\n" % i for i in range(20_000)) + b"Content-Length: 2\r\n\r\n{}"
    if shape == "a huge url":
        return b"POST /mcp?" + b"a" * (200 * KIB) + b" HTTP/1.1\r\n" + host + b"Content-Length: 2\r\n\r\n{}"
    if shape == "http/1.0":
        return b"POST /mcp HTTP/1.0\r\n" + b"X-Pad: " + b"A" * (200 * KIB) + b"\r\nContent-Length: 2\r\n\r\n{}"
    if shape == "the second of a pipelined pair":
        first = b"GET /healthz HTTP/1.1\r\n" + host + b"\r\n"
        return first + b"POST /mcp HTTP/1.1\r\n" + host + b"X-Pad: " + b"A" * (200 * KIB) + b"\r\nContent-Length: 2\r\n\r\n{}"
    if shape == "a chunked body":
        return (b"POST /mcp HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\nX-Pad: " + b"A" * (200 * KIB)
                + b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    if shape == "folded continuation lines":
        return b"POST /mcp HTTP/1.1\r\n" + host + b"X-Fold: a\r\n" + b" b\r\n" * 40_000 + b"Content-Length: 2\r\n\r\n{}"
    raise AssertionError(shape)


def _send(port: int, data: bytes) -> str:
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass
        try:
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                got += part
        except OSError:
            pass
    return got.decode("latin-1")


SHAPES = ["many short header lines", "a huge url", "http/1.0", "the second of a pipelined pair", "a chunked body",
          "folded continuation lines"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_head_past_64_kib_is_refused_with_431_whatever_its_shape(tmp_path: Path, shape: str) -> None:
    async with gateway(tmp_path, {"probe": stdio(probe())}) as url:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        with anyio.fail_after(60):
            answer = await anyio.to_thread.run_sync(_send, port, _head(port, shape))
            alive = httpx.get(url.replace("/mcp", "/healthz"), timeout=10).status_code
    statuses = [line.split(" ")[1] for line in answer.split("\r\n") if line.startswith("HTTP/1.")]
    assert alive == 200
    # Obsolete line folding is malformed (RFC 9112 5.2): a 400 refuses it as well as a 431.
    refused = ("431", "400") if shape == "folded continuation lines" else ("431",)
    assert statuses and statuses[-1] in refused, f"{shape}: answered {statuses}, not 431"
    assert " 401 " not in answer, f"{shape}: authentication read the over-long head ({statuses})"

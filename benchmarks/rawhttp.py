"""A deliberately small HTTP/1.1 client for load generation: one keep-alive connection per session.

httpx costs a few hundred microseconds of CPU per request, which at hundreds of calls per second
on a 2-core machine would take a core away from the server under test. This client does only
what the MCP streamable HTTP exchange needs: a POST or DELETE with a JSON body, and an answer
that is either ``application/json`` (Content-Length) or an SSE stream (chunked), whose events
are returned as parsed JSON-RPC messages.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

# Bounds what one answer may make the generator buffer (the guard's own limit is 32 MB).
MAX_BODY = 64 * 1024 * 1024


class Stale(ConnectionError):
    """The kept-alive connection was closed by the server before any byte of the answer came."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    messages: list[dict[str, Any]] = field(default_factory=list)


class Connection:
    """One persistent connection to ``host:port``; requests on it run one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None

    async def request(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Answer:
        """Send one request; a connection the server closed while idle is reopened once.

        Only when nothing of the answer was read: the request then never reached the server's
        application (uvicorn closes idle keep-alive connections between requests)."""
        fresh = self.writer is None
        if fresh:
            await self._open()
        try:
            return await self._exchange(method, path, body, headers)
        except Stale:
            if fresh:
                raise
            self.reconnects += 1
            await self.close()
            await self._open()
            return await self._exchange(method, path, body, headers)

    async def _exchange(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Answer:
        assert self.reader is not None and self.writer is not None
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(data)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        try:
            await self.writer.drain()
            status_line = await self.reader.readline()
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise Stale() from exc
        if not status_line:
            raise Stale()
        status = int(status_line.split(b" ", 2)[1])
        answer_headers = await self._headers()
        raw = await self._body(answer_headers)
        answer = Answer(status, answer_headers)
        if answer_headers.get("connection", "").lower() == "close":
            await self.close()
        ctype = answer_headers.get("content-type", "")
        if ctype.startswith("text/event-stream"):
            answer.messages = _sse_messages(raw)
        elif ctype.startswith("application/json") and raw:
            answer.messages = [json.loads(raw)]
        return answer

    async def _headers(self) -> dict[str, str]:
        assert self.reader is not None
        out: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                return out
            name, _, value = line.decode("latin-1").partition(":")
            out[name.strip().lower()] = value.strip()

    async def _body(self, headers: dict[str, str]) -> bytes:
        assert self.reader is not None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = bytearray()
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()  # no trailers are sent by uvicorn: the blank line
                    return bytes(chunks)
                chunks += await self.reader.readexactly(size + 2)
                del chunks[-2:]
                if len(chunks) > MAX_BODY:
                    raise ValueError("answer over the generator's limit")
        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY:
            raise ValueError("answer over the generator's limit")
        return await self.reader.readexactly(length) if length else b""


def _sse_messages(raw: bytes) -> list[dict[str, Any]]:
    messages = []
    for event in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
        if data:
            messages.append(json.loads(b"\n".join(data)))
    return messages

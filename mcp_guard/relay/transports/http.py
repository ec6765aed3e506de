"""A streamable HTTP upstream (MCP 2025-03-26 and later), as a message transport.

Each request is one POST; its answer comes back as a JSON body or as an SSE stream that may
carry the server's own requests and notifications before the response. Those POSTs run as
tasks, so a long call never holds up the others. After a handshake-era ``initialize`` the
transport keeps ``Mcp-Session-Id`` and opens the GET stream for messages not tied to a
request. 2026-07-28 requests carry the ``MCP-Protocol-Version``, ``Mcp-Method`` and
``Mcp-Name`` headers instead of a session, and a call of a tool whose input schema marks
arguments with ``x-mcp-header`` (learned from the server's tools/list answers) carries each as its
``Mcp-Param-*`` header, from the arguments as sent (placeholders put back).

HTTP failures become JSON-RPC errors for the request that met them, so the hub sees one shape:
an error status, a body that is not JSON-RPC, a 202 to a request, a stream that ends without
the answer and cannot be resumed. A server that closes a stream after giving an event id is
asked to resume it (GET with ``Last-Event-ID`` after its ``retry:``), a bounded number of times.
Bodies and events are read up to the message size limit, never further.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import httpx

from ...protocol import era, jsonrpc, mirrored
from ...errors import UpstreamError
from ...protocol import sse
from ..lines import DEFAULT_MAX_MESSAGE_BYTES, Oversize

logger = logging.getLogger(__name__)

# Connecting and sending are quick or broken; reading may wait on a person or a long tool.
CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 30.0
# Between attempts to reopen a dropped GET stream.
GET_RETRY_S = 1.0
# Resuming a POST's stream the server closed (spec: GET with Last-Event-ID): how many attempts
# in a row may bring nothing before the request fails, and the most a server's `retry:` may ask.
MAX_RESUME_ATTEMPTS = 5
MAX_RETRY_S = 30.0
SNIFF_BYTES = 4096


@dataclass
class _Stream:
    """What one request's answer stream has shown so far."""

    rid: jsonrpc.RequestId
    answered: bool = False
    reason: str | None = None  # why the request failed, once it has
    last_id: str | None = None  # the last SSE event id, to resume after
    retry_s: float = GET_RETRY_S
    delivered: int = 0  # messages received on it
    method: str | None = None  # the request's method


class HttpTransport:
    def __init__(
        self, name: str, url: str, headers: dict[str, str] | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        self.name = name
        self.url = url
        self.headers = dict(headers or {})
        self.max_message_bytes = max_message_bytes
        self.session_id: str | None = None
        self.version: str | None = None
        self._client: httpx.AsyncClient | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._in, self._out = anyio.create_memory_object_stream[Any](math.inf)
        self._closed = False
        self._get_started = False
        self._exchanges: dict[jsonrpc.RequestId, anyio.CancelScope] = {}  # POSTs awaiting their answer
        # Input schemas of the tools that mirror arguments in Mcp-Param-* headers (2026-07-28),
        # learned from tools/list answers: a call of one must carry those headers.
        self._marked: dict[str, Any] = {}

    def describe(self) -> str:
        return self.url

    def exit_status(self) -> str:
        return "connection closed" if self._closed else "connected"

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        timeout = httpx.Timeout(connect=CONNECT_TIMEOUT_S, write=WRITE_TIMEOUT_S, read=None, pool=None)
        self._client = httpx.AsyncClient(headers=self.headers, timeout=timeout, follow_redirects=False)
        self._tg = task_group

    async def messages(self) -> AsyncIterator[jsonrpc.Message | Oversize | jsonrpc.ParseError]:
        async for item in self._out:
            yield item

    async def send(self, message: jsonrpc.Message) -> None:
        if self._closed or self._client is None or self._tg is None:
            raise UpstreamError(f"upstream {self.name!r} is closed")
        if jsonrpc.is_request(message):
            self._tg.start_soon(self._exchange, message)
            return
        if message.get("method") == "notifications/cancelled":
            # The request was withdrawn: stop reading (or resuming) its stream too.
            rid = (message.get("params") or {}).get("requestId")
            scope = self._exchanges.get(rid) if jsonrpc.valid_id(rid) else None
            if scope is not None:
                scope.cancel()
        await self._post_one_way(message)

    def _headers_for(self, message: jsonrpc.Message) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        params = message.get("params")
        if era.request_version(params) == era.MODERN:
            headers["MCP-Protocol-Version"] = era.MODERN
            headers["Mcp-Method"] = str(message.get("method", ""))
            name = params.get("uri") if message.get("method") == "resources/read" else params.get("name")  # type: ignore[union-attr]
            if isinstance(name, str):
                headers["Mcp-Name"] = mirrored.encode_value(name)  # a non-ASCII name travels as base64
            if message.get("method") == "tools/call" and isinstance(name, str) and name in self._marked:
                arguments = params.get("arguments")  # type: ignore[union-attr]
                headers.update(mirrored.param_headers(self._marked[name], arguments))  # as sent: rehydrated
        else:
            if self.session_id:
                headers["Mcp-Session-Id"] = self.session_id
            if self.version:
                headers["MCP-Protocol-Version"] = self.version
        return headers

    async def _post_one_way(self, message: jsonrpc.Message) -> None:
        assert self._client is not None
        try:
            response = await self._client.post(self.url, content=jsonrpc.dumps(message), headers=self._headers_for(message))
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream {self.name!r} at {self.url} is not reachable: {exc}") from exc
        if response.status_code >= 400:
            logger.warning("upstream %s answered %s to a %s", self.name, response.status_code, message.get("method", "response"))

    async def _exchange(self, message: jsonrpc.Message) -> None:
        """One request's POST, its answer, and the resumption of a stream the server closed."""
        rid = message["id"]
        stream = _Stream(rid, method=str(message.get("method")))
        with anyio.CancelScope() as scope:
            self._exchanges[rid] = scope
            try:
                await self._post_and_read(message, stream)
                if stream.reason is None and stream.last_id is not None:
                    await self._resume(message, stream)
            finally:
                if self._exchanges.get(rid) is scope:
                    del self._exchanges[rid]
        if scope.cancelled_caught:
            return  # the request was withdrawn (cancelled, or its deadline passed): no one waits
        if not stream.answered:
            unanswered = f"upstream {self.name!r} closed the stream for request {rid} without answering it"
            self._fail(rid, stream.reason or unanswered)
        if message.get("method") == "initialize" and self.session_id and not self._get_started:
            self._get_started = True
            assert self._tg is not None
            self._tg.start_soon(self._listen)

    async def _post_and_read(self, message: jsonrpc.Message, stream: _Stream) -> None:
        assert self._client is not None
        body, headers = jsonrpc.dumps(message), self._headers_for(message)
        try:
            request = self._client.build_request("POST", self.url, content=body, headers=headers)
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            stream.reason = f"upstream {self.name!r} at {self.url} is not reachable: {exc}"
            return
        try:
            if message.get("method") == "initialize" and response.headers.get("mcp-session-id"):
                self.session_id = response.headers["mcp-session-id"]
            await self._read_answer(response, stream)
        except httpx.HTTPError as exc:
            if stream.last_id is None:
                stream.reason = f"upstream {self.name!r} broke the response off: {exc}"
        finally:
            await response.aclose()

    async def _read_answer(self, response: httpx.Response, stream: _Stream) -> None:
        status, ctype = response.status_code, response.headers.get("content-type", "")
        if status >= 400:
            head = await self._read_body(response, 500)
            text = (head.head if isinstance(head, Oversize) else head).decode("utf-8", "replace")
            stream.reason = f"upstream {self.name!r} answered HTTP {status}: {text[:500]}"
        elif ctype.startswith("text/event-stream"):
            await self._read_events(response, stream)
        elif ctype.startswith("application/json"):
            body = await self._read_body(response, self.max_message_bytes)
            self._deliver(body, stream, whole=True)
        elif status == 202:
            stream.reason = f"upstream {self.name!r} accepted request {stream.rid} (HTTP 202) but will never answer it"
        else:
            stream.reason = f"upstream {self.name!r} answered with content type {ctype!r}"

    async def _read_events(self, response: httpx.Response, stream: _Stream, tied: bool = True) -> None:
        """Deliver a stream's messages; ``tied``: it is a request's own stream, which ends at its answer."""
        try:
            source = sse.lines(response.aiter_bytes(), self.max_message_bytes)
            async for frame in sse.frames(source, self.max_message_bytes):
                if frame.id is not None:
                    stream.last_id = frame.id
                if frame.retry is not None:
                    stream.retry_s = min(frame.retry / 1000, MAX_RETRY_S)
                if frame.data.strip():
                    stream.delivered += 1
                    self._deliver(frame.data.encode(), stream if tied else None)
                if stream.answered:
                    return
        except sse.TooLong as exc:
            stream.reason = f"the answer from {self.name!r} was {exc.size} bytes, over mcp-guard's message size limit"

    async def _resume(self, message: jsonrpc.Message, stream: _Stream) -> None:
        """Reopen a stream the server closed before answering: GET with ``Last-Event-ID``.

        Per the streamable HTTP spec the server replays what followed that event. Attempts that
        bring no message count toward :data:`MAX_RESUME_ATTEMPTS`; the request's own deadline
        bounds the whole."""
        assert self._client is not None
        fruitless = 0
        while not stream.answered and stream.reason is None:
            if fruitless >= MAX_RESUME_ATTEMPTS:
                stream.reason = (
                    f"upstream {self.name!r} closed the stream for request {stream.rid} and did not answer "
                    f"on any of {MAX_RESUME_ATTEMPTS} attempts to resume it"
                )
                return
            await anyio.sleep(stream.retry_s)
            headers = {k: v for k, v in self._headers_for(message).items() if k != "Content-Type"}
            headers.update({"Accept": "text/event-stream", "Last-Event-ID": stream.last_id or ""})
            before = stream.delivered
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code >= 400:
                        stream.reason = (
                            f"upstream {self.name!r} refused to resume the stream for request {stream.rid}: "
                            f"HTTP {response.status_code}"
                        )
                        return
                    await self._read_events(response, stream)
            except httpx.HTTPError as exc:
                logger.info("resuming a stream of %s failed: %s", self.name, exc)
            fruitless = 0 if stream.delivered > before else fruitless + 1

    async def _read_body(self, response: httpx.Response, limit: int) -> bytes | Oversize:
        """The body, or an :class:`Oversize` marker as soon as it passes ``limit``."""
        buf = bytearray()
        async for chunk in response.aiter_bytes():
            buf += chunk
            if len(buf) > limit:
                return Oversize(bytes(buf[:SNIFF_BYTES]), len(buf))
        return bytes(buf)

    def _deliver(self, data: bytes | Oversize, stream: _Stream | None = None, whole: bool = False) -> None:
        """Hand one message to the upstream's reader; note when it is ``stream``'s answer.

        ``whole``: the data is the entire answer to the request (a JSON body), so anything
        wrong with it fails that request at once."""
        item = self._parse(data)
        if stream is None:
            self._in.send_nowait(item)
            return
        if isinstance(item, Oversize):
            found = jsonrpc.sniff_id(item.head)
        elif isinstance(item, jsonrpc.ParseError):
            found = item.id
        else:
            found = item.get("id") if "method" not in item else None
        if whole and found != stream.rid and not isinstance(item, dict):
            reason = "over mcp-guard's message size limit" if isinstance(item, Oversize) else f"not JSON-RPC: {item}"
            stream.reason = f"upstream {self.name!r} answered request {stream.rid} with a body that is {reason}"
            return
        self._in.send_nowait(item)
        if found == stream.rid and stream.method == "tools/list" and isinstance(item, dict):
            self._learn_marks(item.get("result"))
        stream.answered = stream.answered or found == stream.rid

    def _learn_marks(self, result: Any) -> None:
        tools = result.get("tools") if isinstance(result, dict) else None
        for tool in tools if isinstance(tools, list) else ():
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                if mirrored.marks_parameters(tool.get("inputSchema")):
                    self._marked[tool["name"]] = tool["inputSchema"]
                else:
                    self._marked.pop(tool["name"], None)

    def _parse(self, data: bytes | Oversize) -> jsonrpc.Message | Oversize | jsonrpc.ParseError:
        if isinstance(data, Oversize):
            return data
        if len(data) > self.max_message_bytes:
            return Oversize(data[:SNIFF_BYTES], len(data))
        try:
            message = jsonrpc.loads(data)
        except jsonrpc.ParseError as exc:
            return exc
        if message.get("method") is None and isinstance(message.get("result"), dict):
            version = message["result"].get("protocolVersion")
            if isinstance(version, str) and version in era.HANDSHAKE_VERSIONS:
                self.version = version
        return message

    def _fail(self, rid: jsonrpc.RequestId, reason: str) -> None:
        logger.warning("%s", reason)
        self._in.send_nowait(jsonrpc.error(rid, jsonrpc.UPSTREAM_UNAVAILABLE, reason))

    async def _listen(self) -> None:
        """The GET stream: server messages not tied to a request (list changes, logs).

        Reopened after it drops, after the server's ``retry:`` and from its last event id."""
        assert self._client is not None
        stream = _Stream(rid="")
        while not self._closed:
            headers = {"Accept": "text/event-stream"}
            if self.session_id:
                headers["Mcp-Session-Id"] = self.session_id
            if self.version:
                headers["MCP-Protocol-Version"] = self.version
            if stream.last_id is not None:
                headers["Last-Event-ID"] = stream.last_id
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code == 405:
                        return  # the server offers no such stream
                    if response.status_code >= 400:
                        logger.info("upstream %s refused the GET stream: HTTP %s", self.name, response.status_code)
                        return
                    await self._read_events(response, stream, tied=False)
            except httpx.HTTPError as exc:
                logger.info("GET stream of %s dropped: %s", self.name, exc)
            if stream.reason is not None:
                logger.info("GET stream of %s dropped: %s", self.name, stream.reason)
                stream.reason = None
            await anyio.sleep(stream.retry_s)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if self._client is not None:
                if self.session_id:
                    with anyio.move_on_after(2):
                        try:
                            await self._client.delete(self.url, headers={"Mcp-Session-Id": self.session_id})
                        except httpx.HTTPError:
                            pass
                await self._client.aclose()
            self._in.close()

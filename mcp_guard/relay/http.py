"""A streamable HTTP upstream (MCP 2025-03-26 and later), as a message transport.

Each request is one POST; its answer comes back as a JSON body or as an SSE stream that may
carry the server's own requests and notifications before the response. Those POSTs run as
tasks, so a long call never holds up the others. After a handshake-era ``initialize`` the
transport keeps ``Mcp-Session-Id`` and opens the GET stream for messages not tied to a
request. 2026-07-28 requests carry the ``MCP-Protocol-Version``, ``Mcp-Method`` and
``Mcp-Name`` headers instead of a session.

HTTP failures become JSON-RPC errors for the request that met them, so the hub sees one shape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import httpx

from .. import era, jsonrpc
from ..errors import UpstreamError
from . import sse
from .lines import DEFAULT_MAX_MESSAGE_BYTES, Oversize

logger = logging.getLogger(__name__)

# Connecting and sending are quick or broken; reading may wait on a person or a long tool.
CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 30.0
# Between attempts to reopen a dropped GET stream.
GET_RETRY_S = 1.0


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
        else:
            await self._post_one_way(message)

    def _headers_for(self, message: jsonrpc.Message) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        params = message.get("params")
        if era.request_version(params) == era.MODERN:
            headers["MCP-Protocol-Version"] = era.MODERN
            headers["Mcp-Method"] = str(message.get("method", ""))
            name = params.get("uri") if message.get("method") == "resources/read" else params.get("name")  # type: ignore[union-attr]
            if isinstance(name, str):
                headers["Mcp-Name"] = name
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
        assert self._client is not None
        rid = message["id"]
        try:
            request = self._client.build_request("POST", self.url, content=jsonrpc.dumps(message), headers=self._headers_for(message))
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            self._fail(rid, f"upstream {self.name!r} at {self.url} is not reachable: {exc}")
            return
        try:
            if message.get("method") == "initialize" and response.headers.get("mcp-session-id"):
                self.session_id = response.headers["mcp-session-id"]
            if response.status_code >= 400:
                body = (await response.aread())[:500].decode("utf-8", "replace")
                self._fail(rid, f"upstream {self.name!r} answered HTTP {response.status_code}: {body}")
                return
            ctype = response.headers.get("content-type", "")
            if ctype.startswith("text/event-stream"):
                async for _, data in sse.events(response.aiter_lines()):
                    self._deliver(data.encode())
            elif ctype.startswith("application/json"):
                body = await response.aread()
                self._deliver(body)
            elif response.status_code != 202:
                self._fail(rid, f"upstream {self.name!r} answered with content type {ctype!r}")
        except httpx.HTTPError as exc:
            self._fail(rid, f"upstream {self.name!r} broke the response off: {exc}")
        finally:
            await response.aclose()
        if message.get("method") == "initialize" and self.session_id and not self._get_started:
            self._get_started = True
            assert self._tg is not None
            self._tg.start_soon(self._listen)

    def _deliver(self, data: bytes) -> None:
        if not data.strip():
            return  # priming events (an id for resumption, no message)
        if len(data) > self.max_message_bytes:
            self._in.send_nowait(Oversize(data[:4096], len(data)))
            return
        try:
            message = jsonrpc.loads(data)
        except jsonrpc.ParseError as exc:
            self._in.send_nowait(exc)
            return
        if message.get("method") is None and isinstance(message.get("result"), dict):
            version = message["result"].get("protocolVersion")
            if isinstance(version, str) and version in era.HANDSHAKE_VERSIONS:
                self.version = version
        self._in.send_nowait(message)

    def _fail(self, rid: jsonrpc.RequestId, reason: str) -> None:
        logger.warning("%s", reason)
        self._in.send_nowait(jsonrpc.error(rid, jsonrpc.UPSTREAM_UNAVAILABLE, reason))

    async def _listen(self) -> None:
        """The GET stream: server messages not tied to a request (list changes, logs)."""
        assert self._client is not None
        while not self._closed:
            headers = {"Accept": "text/event-stream"}
            if self.session_id:
                headers["Mcp-Session-Id"] = self.session_id
            if self.version:
                headers["MCP-Protocol-Version"] = self.version
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code == 405:
                        return  # the server offers no such stream
                    if response.status_code >= 400:
                        logger.info("upstream %s refused the GET stream: HTTP %s", self.name, response.status_code)
                        return
                    async for _, data in sse.events(response.aiter_lines()):
                        self._deliver(data.encode())
            except httpx.HTTPError as exc:
                logger.info("GET stream of %s dropped: %s", self.name, exc)
            await anyio.sleep(GET_RETRY_S)

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

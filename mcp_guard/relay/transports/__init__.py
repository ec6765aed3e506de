"""How the guard reaches an upstream server: a child process on stdio, or streamable HTTP.

A transport moves whole JSON-RPC messages and knows nothing of MCP: ``stdio.StdioTransport``
starts, frames and stops a server process; ``http.HttpTransport`` speaks streamable HTTP (one
upstream session per client session), resuming SSE streams the server closes early.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import anyio.abc

from ...protocol import jsonrpc
from ..lines import Oversize

__all__ = ["Transport", "for_spec"]


class Transport(Protocol):
    name: str

    def describe(self) -> str: ...
    async def start(self, task_group: anyio.abc.TaskGroup) -> None: ...
    def messages(self) -> AsyncIterator[jsonrpc.Message | Oversize | jsonrpc.ParseError]: ...
    async def send(self, message: jsonrpc.Message) -> None: ...
    def exit_status(self) -> str: ...
    async def aclose(self) -> None: ...


def for_spec(spec: Any, max_message_bytes: int) -> Transport:
    """The transport an upstream spec names: ``url`` for streamable HTTP, else ``command``."""
    if spec.url is not None:
        from .http import HttpTransport  # httpx is imported only when an HTTP upstream is configured

        return HttpTransport(spec.name, spec.url, dict(spec.headers), max_message_bytes=max_message_bytes)
    from .stdio import StdioTransport

    if spec.command is None:
        raise ValueError(f"upstream {spec.name!r} names neither a url nor a command")
    return StdioTransport(spec.name, spec.command, spec.args, spec.env, spec.cwd, max_message_bytes=max_message_bytes)

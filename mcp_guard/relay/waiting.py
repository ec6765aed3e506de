"""What a request toward an upstream waits on: its answer, under a deadline that can move.

A :class:`Waiter` is resolved once, by the answer, an error, or the upstream going away. Its
deadline restarts on news about the request (progress) and is held while the upstream is
itself waiting on the client, so only an upstream that has gone quiet runs out of time.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ..errors import RPCError

ProgressFn = Callable[[dict[str, Any]], Awaitable[None]]


class Waiter:
    __slots__ = ("event", "result", "error", "progress", "deadline")

    def __init__(self, progress: ProgressFn | None, timeout: float | None) -> None:
        self.event = anyio.Event()
        self.result: Any = None
        self.error: RPCError | None = None
        self.progress = progress
        # anyio.current_time() by which an answer is due; inf: none (a stream meant to stay open)
        self.deadline = math.inf if timeout is None else anyio.current_time() + timeout

    def resolve(self, message: dict[str, Any]) -> None:
        if "error" in message:
            self.error = RPCError.from_error(message["error"])
        else:
            self.result = message.get("result")
        self.event.set()

    def fail(self, error: RPCError) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()

    def restart(self, timeout: float) -> None:
        """Give the upstream ``timeout`` seconds from now (unless this waiter has no deadline)."""
        if self.deadline != math.inf:
            self.deadline = anyio.current_time() + timeout

    async def wait(self, timeout: float, held: Callable[[], bool]) -> None:
        """Until resolved; TimeoutError once the deadline passes while ``held()`` is false."""
        while not self.event.is_set():
            with anyio.move_on_at(self.deadline):
                await self.event.wait()
            if self.event.is_set() or anyio.current_time() < self.deadline:
                continue  # answered, or the deadline moved while we waited
            if held():
                self.restart(timeout)
                continue
            raise TimeoutError


class Handshake:
    """One handshake in progress; everyone who needs the server waits on the same one."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: RPCError | None = None

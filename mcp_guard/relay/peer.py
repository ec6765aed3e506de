"""One JSON-RPC peer's bookkeeping, shared by client sessions and upstreams.

Each side of a connection mints its own request ids and keeps, in :class:`Outgoing`, the
requests it sent and waits on (answered, failed, withdrawn); and, in :class:`Incoming`, the
requests it received and is serving, each in its own cancel scope so that the other side's
``notifications/cancelled`` cancels exactly that one. Neither knows about MCP methods, eras or
transports: :class:`~mcp_guard.relay.session.Session` and
:class:`~mcp_guard.relay.upstream.Upstream` send the messages.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, ItemsView
from typing import Any

import anyio

from ..errors import RPCError
from ..protocol import jsonrpc

__all__ = ["Incoming", "Outgoing", "Waiter"]

ProgressFn = Callable[[dict[str, Any]], Awaitable[None]]


class Waiter:
    """One request sent; set once, with a result or an error."""

    __slots__ = ("event", "result", "error", "progress", "deadline")

    def __init__(self, progress: ProgressFn | None = None, deadline: float = math.inf) -> None:
        self.event = anyio.Event()
        self.result: Any = None
        self.error: RPCError | None = None
        self.progress = progress
        self.deadline = deadline  # anyio.current_time() by which an answer is due; inf: none

    @property
    def done(self) -> bool:
        return self.event.is_set()

    def settle(self, message: jsonrpc.Message) -> None:
        if self.event.is_set():
            return
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
        """Give the other side ``timeout`` seconds from now (unless this waiter has no deadline)."""
        if self.deadline != math.inf:
            self.deadline = anyio.current_time() + timeout

    async def wait(self, timeout: float, held: Callable[[], bool]) -> None:
        """Until settled; TimeoutError once the deadline passes while ``held()`` is false.

        The deadline restarts on news about the request (progress), and is held while the other
        side is itself waiting on us (``held``), so only a peer that has gone quiet runs out of time.
        """
        while not self.event.is_set():
            with anyio.move_on_at(self.deadline):
                await self.event.wait()
            if self.event.is_set() or anyio.current_time() < self.deadline:
                continue  # answered, or the deadline moved while we waited
            if held():
                self.restart(timeout)
                continue
            raise TimeoutError


class Outgoing:
    """The requests this side sent, by the integer ids it minted for them."""

    def __init__(self) -> None:
        self._next_id = 0
        self._waiting: dict[int, Waiter] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def open(self, progress: ProgressFn | None = None, deadline: float = math.inf) -> tuple[int, Waiter]:
        self._next_id += 1
        waiter = self._waiting[self._next_id] = Waiter(progress, deadline)
        return self._next_id, waiter

    def get(self, rid: Any) -> Waiter | None:
        return self._waiting.get(rid) if type(rid) is int else None

    def take(self, rid: Any) -> Waiter | None:
        """The waiter for ``rid``, no longer waiting (None: unknown, answered or withdrawn)."""
        return self._waiting.pop(rid, None) if type(rid) is int else None

    def answer(self, message: jsonrpc.Message) -> bool:
        """Settle the request ``message`` answers; False for a stray answer (unknown id)."""
        waiter = self.take(message.get("id"))
        if waiter is None:
            return False
        waiter.settle(message)
        return True

    def fail_all(self, error: RPCError) -> None:
        for waiter in self._waiting.values():
            waiter.fail(error)
        self._waiting.clear()

    def items(self) -> ItemsView[int, Waiter]:
        return self._waiting.items()


class Incoming:
    """The requests the other side sent that this side is serving, each cancellable alone."""

    def __init__(self) -> None:
        self._scopes: dict[jsonrpc.RequestId, anyio.CancelScope] = {}

    def __len__(self) -> int:
        return len(self._scopes)

    def __contains__(self, rid: object) -> bool:
        return rid in self._scopes

    def begin(self, rid: jsonrpc.RequestId) -> anyio.CancelScope:
        """The scope ``rid`` is served in (taken before its task runs, so a cancel finds it)."""
        scope = self._scopes[rid] = anyio.CancelScope()
        return scope

    def end(self, rid: jsonrpc.RequestId, scope: anyio.CancelScope) -> None:
        if self._scopes.get(rid) is scope:
            del self._scopes[rid]

    def cancel(self, rid: Any) -> bool:
        """The other side withdrew ``rid``: cancel its handler. False when none is running."""
        scope = self._scopes.get(rid) if jsonrpc.valid_id(rid) else None
        if scope is None:
            return False
        scope.cancel()
        return True

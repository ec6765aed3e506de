"""The guard as a stdio server: one client on stdin/stdout, until EOF or a signal.

Lifecycle: the hub starts the upstreams first (so their boot overlaps ours), then the session
reads stdin. EOF on stdin, SIGTERM, SIGINT or SIGHUP cancel everything; each upstream then
stops from its own ``finally`` (EOF, SIGTERM, SIGKILL, bounded), so no server is orphaned.
"""

from __future__ import annotations

import logging
import signal

import anyio

from ...protocol import jsonrpc
from ..hub import Hub
from ..lines import DEFAULT_MAX_MESSAGE_BYTES, FdWriter, LineSplitter, Oversize, read_fd_chunks, restore_blocking
from ..session import Session

logger = logging.getLogger(__name__)

# After stdin closes, how long requests in flight may still finish. Clients send SIGTERM about
# 2 s after EOF, and the upstream's own stop must fit in that too.
EOF_GRACE_S = 0.3


async def serve_stdio(hub: Hub, *, user: str = "", max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    writer = FdWriter(1)

    async def send(message: jsonrpc.Message, related: jsonrpc.RequestId | None = None) -> None:
        await writer.write(jsonrpc.dumps(message))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signal, tg.cancel_scope)
            await tg.start(hub.run)
            session = Session(hub, send, user=user, label="stdio")
            await tg.start(session.run)
            await _pump(session, send, max_message_bytes)
            # EOF: answers already on their way may finish briefly; the client is leaving.
            with anyio.move_on_after(EOF_GRACE_S):
                await session.drained()
            tg.cancel_scope.cancel()
    finally:
        restore_blocking(0, 1)


async def _pump(session: Session, send: object, max_message_bytes: int) -> None:
    splitter = LineSplitter(max_message_bytes)
    async for chunk in read_fd_chunks(0, lasting=True):
        for line in splitter.feed(chunk):
            if isinstance(line, Oversize):
                rid = jsonrpc.sniff_id(line.head)
                logger.warning("client sent a %d-byte message, over the %d-byte limit", line.size, max_message_bytes)
                if rid is not None:
                    await session.send_safely(
                        jsonrpc.error(rid, jsonrpc.MESSAGE_TOO_LARGE, f"message of {line.size} bytes is over mcp-guard's limit of {max_message_bytes}")
                    )
                continue
            try:
                message = jsonrpc.loads(line)
            except jsonrpc.ParseError as exc:
                # Answer under the id it seems to carry, so that request does not wait forever.
                text = f"mcp-guard could not read this message: {exc}"
                await session.send_safely(jsonrpc.error(exc.id, exc.code, text))
                continue
            await session.feed(message)


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            logger.info("received %s; stopping", signal.Signals(signum).name)
            scope.cancel()
            return

"""Server-sent events: the framing streamable HTTP uses for streamed JSON-RPC messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .. import jsonrpc


def encode(message: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n".encode() if event_id else b""
    # jsonrpc.dumps writes one line of valid UTF-8 whatever the strings hold.
    return head + b"event: message\ndata: " + jsonrpc.dumps(message)[:-1] + b"\n\n"


async def events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs from a stream of SSE lines; comments and ids are skipped."""
    event, data = "message", []
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    if data:
        yield event, "\n".join(data)

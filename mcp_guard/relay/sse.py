"""Server-sent events: the framing streamable HTTP uses for streamed JSON-RPC messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any


def encode(message: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: message\ndata: {body}\n\n".encode()


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

"""Server-sent events: the framing streamable HTTP uses for streamed JSON-RPC messages.

Reading is bounded: a line longer than the message size limit ends the stream with
:class:`TooLong` rather than growing a buffer without end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from . import jsonrpc


@dataclass(frozen=True)
class Event:
    """One dispatched event. ``id`` and ``retry`` (milliseconds) are None when not sent."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class TooLong(ValueError):
    """A line or an event's data passed the size limit."""

    def __init__(self, size: int) -> None:
        super().__init__(f"an event of more than {size} bytes")
        self.size = size


def encode(message: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n".encode() if event_id else b""
    # jsonrpc.dumps writes one line of valid UTF-8 whatever the strings hold.
    return head + b"event: message\ndata: " + jsonrpc.dumps(message)[:-1] + b"\n\n"


async def lines(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[str]:
    """Lines of an event stream (LF or CRLF), each at most ``max_bytes``."""
    buf = b""
    async for chunk in chunks:
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1 :]
            yield line.rstrip(b"\r").decode("utf-8", "replace")
        if len(buf) > max_bytes:
            raise TooLong(len(buf))
    if buf:
        yield buf.rstrip(b"\r").decode("utf-8", "replace")


async def frames(source: AsyncIterator[str], max_bytes: int | None = None) -> AsyncIterator[Event]:
    """Every event of a stream, with the ``id`` and ``retry`` fields the spec's resumption uses.

    An event without data is still yielded when it carries an id or retry (a priming event)."""
    event, data, size = "message", [], 0
    event_id: str | None = None
    retry: int | None = None
    async for line in source:
        if not line:
            if data or event_id is not None or retry is not None:
                yield Event(event, "\n".join(data), event_id, retry)
            event, data, size, event_id, retry = "message", [], 0, None, None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
            size += len(value)
            if max_bytes is not None and size > max_bytes:
                raise TooLong(size)
        elif field == "event":
            event = value
        elif field == "id" and "\0" not in value:
            event_id = value
        elif field == "retry" and value.isdigit():
            retry = int(value)
    if data:
        yield Event(event, "\n".join(data), event_id, retry)


async def events(source: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs from a stream of SSE lines; comments and ids are skipped."""
    async for frame in frames(source):
        if frame.data:
            yield frame.event, frame.data

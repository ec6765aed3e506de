"""A bound on a request's head (its request line and headers) before anything reads it.

uvicorn's httptools protocol buffers a request's head however long it grows, and only then hands
it on: anyone who reaches the port, with no credential, could make the guard hold megabytes per
connection before authentication says 401. Here the bytes read while the head is incomplete are
counted, and once they pass ``MAX_HEAD_BYTES`` the connection gets 431 and is closed (nginx and
HAProxy refuse past 8 to 32 KiB alike): a head costs at most that plus one read of the socket.
Built on first use: only ``serve`` imports uvicorn.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

logger = logging.getLogger(__name__)

# What one request's line and headers may take; a bearer JWT with many groups is a few KiB.
MAX_HEAD_BYTES = 64 * 1024

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
)


@functools.cache
def protocol() -> type:
    """uvicorn's httptools protocol, counting each request's head."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHead(HttpToolsProtocol):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_head = True

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                logger.warning("refused a request whose head ran past %d bytes", MAX_HEAD_BYTES)
                text = f"a request's line and headers may take at most {MAX_HEAD_BYTES} bytes".encode()
                self.transport.write(_REFUSAL % (len(text), text))
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0  # the next request on this connection

    return BoundedHead

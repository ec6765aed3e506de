"""Newline framing with a size limit, and non-blocking file-descriptor I/O on anyio.

stdin/stdout are read and written through their file descriptors: no thread per direction, no
copy through asyncio streams. On asyncio a pipe keeps one reader registered with the event loop
for as long as it is read (:class:`Readiness`), where ``anyio.wait_readable`` would register and
unregister it around every message (two ``epoll_ctl`` calls and a future each time, on both pipes
of every call). Other backends use ``anyio.wait_readable``. Regular files (``< file``) cannot be
polled, so those fall back to a worker thread. An upstream's pipe keeps its reader registered too,
through a :class:`Readiness` its transport closes before it closes the pipe (see read_fd_chunks).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio

# A message larger than this is refused; a tool returning a big file should use a resource.
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# One read's buffer. A pipe holds 64 KiB (Linux's default), so a larger buffer reads no more; and
# above 128 KiB malloc maps fresh pages for every read (an mmap, page faults and an munmap: ~10 us
# a message on both pipes of every call, where this size costs well under one).
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Oversize:
    """A line that passed the size limit; ``head`` holds its first bytes, to find its id."""

    head: bytes
    size: int


class LineSplitter:
    """Turns chunks into lines; a line over ``max_bytes`` becomes an :class:`Oversize` marker."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._skipping: Oversize | None = None  # inside an oversize line, until its newline

    def feed(self, chunk: bytes) -> list[bytes | Oversize]:
        out: list[bytes | Oversize] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            piece = chunk[start:nl]
            start = nl + 1
            if self._skipping is not None:
                out.append(Oversize(self._skipping.head, self._skipping.size + len(piece)))
                self._skipping = None
            elif self._buf:
                self._buf += piece
                line = bytes(self._buf)
                self._buf.clear()
                out.append(self._check(line))
            else:
                out.append(self._check(piece))
        rest = chunk[start:]
        if rest:
            if self._skipping is not None:
                self._skipping = Oversize(self._skipping.head, self._skipping.size + len(rest))
            else:
                self._buf += rest
                if len(self._buf) > self.max_bytes:
                    self._skipping = Oversize(bytes(self._buf[:4096]), len(self._buf))
                    self._buf.clear()
        return [x for x in out if not (isinstance(x, bytes) and not x.strip())]

    def _check(self, line: bytes) -> bytes | Oversize:
        if len(line) > self.max_bytes:
            return Oversize(line[:4096], len(line))
        return line


async def read_fd_chunks(fd: int, *, lasting: bool = False, readiness: Readiness | None = None) -> AsyncIterator[bytes]:
    """Chunks from ``fd`` until EOF.

    ``lasting``: the fd lives as long as the process (the guard's own stdin), so a reader may
    stay registered on it. An upstream's pipes are closed and their numbers reused when it stops,
    and a generator's cleanup can run after that: a lingering registration would then belong to
    another process's pipe. Such a pipe is watched through ``readiness`` (:meth:`Readiness.open`),
    which its owner closes before it closes the pipe; once closed, this reads no more. Without
    either, the fd is watched one wait at a time."""
    pollable = _make_nonblocking(fd)
    if readiness is None and pollable and lasting:
        readiness = Readiness.open(fd)
    if readiness is not None and pollable:
        try:
            while True:
                await readiness.wait()
                if readiness.closed:
                    return  # the owner closed the pipe (its number may be another's by now)
                try:
                    chunk = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                yield chunk
        finally:
            readiness.close()
    while True:
        if pollable:
            try:
                await anyio.wait_readable(fd)
            except (OSError, ValueError):
                pollable = False
                continue
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
        else:
            chunk = await anyio.to_thread.run_sync(os.read, fd, READ_CHUNK)
        if not chunk:
            return
        yield chunk


class Readiness:
    """A reader that stays registered with the asyncio loop while the fd is read.

    Level-triggered: while data waits unread the loop calls :meth:`_ready` on every turn. When
    nobody is waiting (the consumer is busy, say writing to a slow client) the reader pauses
    itself, so a pipe with data in it cannot make the loop spin; the next :meth:`wait` resumes it.
    After :meth:`close` it never registers again, and :meth:`wait` returns at once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self._loop = loop
        self._fd = fd
        self._event = asyncio.Event()
        self._waiting = False
        self._paused = False
        self.closed = False
        loop.add_reader(fd, self._ready)

    @classmethod
    def open(cls, fd: int) -> Readiness | None:
        """One for ``fd`` on asyncio; None elsewhere, or where the loop cannot watch the fd."""
        try:
            return cls(asyncio.get_running_loop(), fd)  # RuntimeError: not on asyncio
        except (OSError, ValueError, RuntimeError, NotImplementedError):
            return None

    def _ready(self) -> None:
        self._event.set()
        if not self._waiting:
            self._loop.remove_reader(self._fd)
            self._paused = True

    async def wait(self) -> None:
        """Return once the fd may be readable (a read may still find nothing: EAGAIN) or closed."""
        if self.closed:
            return
        if self._paused:
            self._paused = False
            self._loop.add_reader(self._fd, self._ready)
        if not self._event.is_set():
            self._waiting = True
            try:
                await self._event.wait()
            finally:
                self._waiting = False
        self._event.clear()

    def close(self) -> None:
        """Unregister for good (idempotent); a reader waiting now wakes and stops."""
        if self.closed:
            return
        self.closed = True
        self._event.set()
        if not self._paused:
            self._paused = True
            try:
                self._loop.remove_reader(self._fd)
            except (OSError, ValueError, RuntimeError):
                pass  # the fd or the loop is already gone


class FdWriter:
    """Writes whole messages to a file descriptor in order, without blocking the loop.

    The common case costs one ``os.write`` and no await: only when the pipe is full does the
    rest wait in a buffer that one drainer empties, and later writes queue behind it.
    """

    def __init__(self, fd: int, close: Callable[[], None] | None = None) -> None:
        self.fd = fd
        # Who closes the fd: the file object that owns it, when there is one. Closing the number
        # here as well would close it twice, and the second time it may be another pipe's.
        self._close = close
        self._pollable = _make_nonblocking(fd)
        self._backlog = bytearray()
        self._drained: anyio.Event | None = None
        self.closed = False

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise anyio.BrokenResourceError("the peer closed the pipe")
        if self._backlog:
            self._backlog += data
        else:
            written = self._write_some(data)
            if written == len(data):
                return
            self._backlog += data[written:]
        if self._drained is None:
            self._drained = anyio.Event()
            try:
                await self._drain()
            finally:
                self._drained.set()
                self._drained = None
        else:
            await self._drained.wait()
            if self.closed:
                raise anyio.BrokenResourceError("the peer closed the pipe")

    async def _drain(self) -> None:
        while self._backlog:
            if self._pollable:
                await anyio.wait_writable(self.fd)
            else:
                await anyio.sleep(0.001)
            written = self._write_some(self._backlog)
            del self._backlog[:written]

    def _write_some(self, data: bytes | bytearray) -> int:
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self.closed = True
            self._backlog.clear()
            if exc.errno in (errno.EPIPE, errno.EBADF, errno.EINVAL):
                raise anyio.BrokenResourceError("the peer closed the pipe") from exc
            raise

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._close() if self._close is not None else os.close(self.fd)
        except OSError:
            pass


def _make_nonblocking(fd: int) -> bool:
    """Set O_NONBLOCK where the fd can be polled; regular files cannot."""
    import stat

    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    if stat.S_ISREG(mode):
        return False
    try:
        os.set_blocking(fd, False)
    except OSError:
        return False
    return True


def restore_blocking(*fds: int) -> None:
    """Give the descriptors back in blocking mode: a shell sharing our terminal expects it."""
    for fd in fds:
        try:
            os.set_blocking(fd, True)
        except OSError:
            pass

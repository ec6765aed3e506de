"""A stdio upstream: spawn the server, frame its messages, stop it without leaving orphans.

Lifecycle: ``start()`` spawns the command in its own process group with the guard's whole
environment plus the configured ``env`` (servers need their API keys). Its stderr is copied to
ours line by line with a ``[name]`` prefix. ``aclose()`` runs shielded from ``finally``: EOF on
stdin first, then SIGTERM to the group, then SIGKILL, each wait bounded by ``STOP_GRACE_S``.
Clients give the guard about 2 s between EOF and their own SIGTERM, so the whole sequence
must fit well inside that.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
import anyio.abc

from .. import jsonrpc
from ..errors import UpstreamError
from .lines import DEFAULT_MAX_MESSAGE_BYTES, LineSplitter, Oversize

logger = logging.getLogger(__name__)

# How long each step of a stop waits: EOF, then SIGTERM, then SIGKILL.
STOP_GRACE_S = 0.5


class StdioTransport:
    """Newline-delimited JSON-RPC over a child process's stdin/stdout."""

    def __init__(
        self,
        name: str,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.name = name
        self.argv = [command, *args]
        self.env = dict(env or {})
        self.cwd = cwd
        self.max_message_bytes = max_message_bytes
        self.process: anyio.abc.Process | None = None
        self._send_lock = anyio.Lock()

    def describe(self) -> str:
        return " ".join(self.argv)

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        try:
            self.process = await anyio.open_process(
                self.argv,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise UpstreamError(f"upstream {self.name!r} could not start: {self.describe()}: {exc.strerror or exc}") from exc
        task_group.start_soon(self._copy_stderr)

    async def messages(self) -> AsyncIterator[jsonrpc.Message | Oversize | jsonrpc.ParseError]:
        assert self.process is not None and self.process.stdout is not None
        splitter = LineSplitter(self.max_message_bytes)
        stream = self.process.stdout
        while True:
            try:
                chunk = await stream.receive(256 * 1024)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            for line in splitter.feed(chunk):
                if isinstance(line, Oversize):
                    yield line
                    continue
                try:
                    yield jsonrpc.loads(line)
                except jsonrpc.ParseError as exc:
                    yield exc

    async def send(self, message: jsonrpc.Message) -> None:
        process = self.process
        if process is None or process.stdin is None or process.returncode is not None:
            raise UpstreamError(f"upstream {self.name!r} is not running")
        data = jsonrpc.dumps(message)
        try:
            async with self._send_lock:
                await process.stdin.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise UpstreamError(f"upstream {self.name!r} closed its input") from exc

    def exit_status(self) -> str:
        process = self.process
        if process is None:
            return "never started"
        code = process.returncode
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"

    async def aclose(self) -> None:
        """Stop the server: EOF, SIGTERM, SIGKILL, each bounded. Safe to call twice."""
        process = self.process
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                try:
                    await process.stdin.aclose()
                except (OSError, anyio.BrokenResourceError):
                    pass
            for sig in (signal.SIGTERM, signal.SIGKILL, None):
                with anyio.move_on_after(STOP_GRACE_S):
                    await process.wait()
                    break
                if sig is None:
                    logger.warning("upstream %s (pid %d) did not exit after SIGKILL", self.name, process.pid)
                    break
                if sig is signal.SIGKILL:
                    logger.warning("upstream %s ignored EOF and SIGTERM; sending SIGKILL", self.name)
                _signal_group(process.pid, sig)
            # The server may have left children in its group (npx -> node); end them too.
            _signal_group(process.pid, signal.SIGKILL)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    await stream.aclose()

    async def _copy_stderr(self) -> None:
        assert self.process is not None
        stream = self.process.stderr
        if stream is None:
            return
        prefix = f"[{self.name}] ".encode()
        pending = b""
        err = sys.stderr.buffer
        while True:
            try:
                chunk = await stream.receive(65536)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                break
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            if len(pending) > 65536:  # a never-ending line still gets shown
                lines.append(pending)
                pending = b""
            if lines:
                try:
                    err.write(b"".join(prefix + line + b"\n" for line in lines))
                    err.flush()
                except (OSError, ValueError):
                    return
        if pending:
            try:
                err.write(prefix + pending + b"\n")
                err.flush()
            except (OSError, ValueError):
                pass


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

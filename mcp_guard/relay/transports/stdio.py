"""A stdio upstream: spawn the server, frame its messages, stop it without leaving orphans.

Lifecycle: ``start()`` spawns the command in its own process group with the guard's whole
environment plus the configured ``env`` (servers need their API keys). Its pipes are driven
as non-blocking file descriptors on the event loop (see ``lines``). Its stderr is copied to
ours line by line with a ``[name]`` prefix. ``aclose()`` runs shielded from ``finally``: EOF
on stdin first, then SIGTERM to the group, then SIGKILL, each wait bounded by
``STOP_GRACE_S``. Clients give the guard about 2 s between EOF and their own SIGTERM, so the
whole sequence must fit well inside that.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
import anyio.abc

from ...protocol import jsonrpc
from ...errors import UpstreamError
from .. import prestart
from ..prestart import upstream_env
from ..lines import DEFAULT_MAX_MESSAGE_BYTES, FdWriter, LineSplitter, Oversize, Readiness, read_fd_chunks

logger = logging.getLogger(__name__)

# How long each step of a stop waits: EOF, then SIGTERM, then SIGKILL.
STOP_GRACE_S = 0.5
# How often a stop checks whether the process has exited.
EXIT_POLL_S = 0.01


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
        self.process: subprocess.Popen[bytes] | None = None
        self._stdin: FdWriter | None = None
        # Watches the server's stdout between reads (one registration, not two syscalls a message);
        # closed in aclose() before the pipe is, so it never outlives the fd's number.
        self._stdout_ready: Readiness | None = None

    def describe(self) -> str:
        return " ".join(self.argv)

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        self._stdout_ready = None  # (a new process, new pipes)
        env = upstream_env(self.env)
        try:
            self.process = prestart.take(self.argv, self.cwd, env) or prestart.spawn(self.argv, self.cwd, env)
        except OSError as exc:
            raise UpstreamError(f"upstream {self.name!r} could not start: {self.describe()}: {exc.strerror or exc}") from exc
        assert self.process.stdin is not None
        self._stdin = FdWriter(self.process.stdin.fileno(), close=self.process.stdin.close)
        task_group.start_soon(self._copy_stderr)

    async def messages(self) -> AsyncIterator[jsonrpc.Message | Oversize | jsonrpc.ParseError]:
        assert self.process is not None and self.process.stdout is not None
        splitter = LineSplitter(self.max_message_bytes)
        fd = self.process.stdout.fileno()
        if self._stdout_ready is None:
            self._stdout_ready = Readiness.open(fd)
        async for chunk in read_fd_chunks(fd, readiness=self._stdout_ready):
            for line in splitter.feed(chunk):
                if isinstance(line, Oversize):
                    yield line
                    continue
                try:
                    yield jsonrpc.loads(line)
                except jsonrpc.ParseError as exc:
                    yield exc

    async def send(self, message: jsonrpc.Message) -> None:
        if self._stdin is None or self._stdin.closed:
            raise UpstreamError(f"upstream {self.name!r} is not running")
        try:
            await self._stdin.write(jsonrpc.dumps(message))
        except (anyio.BrokenResourceError, OSError) as exc:
            raise UpstreamError(f"upstream {self.name!r} closed its input") from exc

    def exit_status(self) -> str:
        process = self.process
        if process is None:
            return "never started"
        code = process.poll()
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
            if self._stdin is not None:
                self._stdin.close()
            for sig in (signal.SIGTERM, signal.SIGKILL, None):
                if await _exited(process, STOP_GRACE_S):
                    break
                if sig is None:
                    logger.warning("upstream %s (pid %d) did not exit after SIGKILL", self.name, process.pid)
                    break
                if sig is signal.SIGKILL:
                    logger.warning("upstream %s ignored EOF and SIGTERM; sending SIGKILL", self.name)
                _signal_group(process.pid, sig)
            # The server may have left children in its group (npx -> node); end them too.
            _signal_group(process.pid, signal.SIGKILL)
            if self._stdout_ready is not None:
                self._stdout_ready.close()  # before the pipe: its number may be reused at once
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()

    async def _copy_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        prefix = f"[{self.name}] ".encode()
        pending = b""
        err = sys.stderr.buffer
        async for chunk in read_fd_chunks(self.process.stderr.fileno()):
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


async def _exited(process: subprocess.Popen[bytes], within: float) -> bool:
    with anyio.move_on_after(within):
        while process.poll() is None:
            await anyio.sleep(EXIT_POLL_S)
        return True
    return process.poll() is not None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass



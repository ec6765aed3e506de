"""Start a stdio upstream before the guard has built anything, so the two starts overlap.

A server started by ``npx`` or ``uvx`` takes most of a second; the guard's own start (its
policy, its masking patterns) takes a few hundred milliseconds. ``run -- CMD`` starts CMD here
first, with exactly the argv, environment and folder its transport would use; the transport
takes that process when it starts the upstream (:func:`take`), and starts its own if none
matches. A process nobody took (the guard failed to start, the client never connected) is
ended at exit with its whole process group. Only the standard library is imported here: the
point is to run before anything slow.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

_Key = tuple[tuple[str, ...], str | None, tuple[tuple[str, str], ...]]
_waiting: dict[_Key, subprocess.Popen[bytes]] = {}


# Credentials of the people who decide: an upstream (or anything it runs) holding one could
# approve calls, so they are never handed on, whether inherited or configured.
WITHHELD = ("MCP_GUARD_REVIEW_TOKEN",)


def upstream_env(configured: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment an upstream process gets: the guard's own and its configured variables,
    less the credentials in :data:`WITHHELD`."""
    env = {**os.environ, **(configured or {})}
    for name in WITHHELD:
        env.pop(name, None)
    return env


def _key(argv: Sequence[str], cwd: str | None, env: Mapping[str, str]) -> _Key:
    return tuple(argv), cwd, tuple(sorted(env.items()))


def spawn(argv: Sequence[str], cwd: str | None, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """The one way a stdio upstream is started (here early, or by its transport)."""
    return subprocess.Popen(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env), cwd=cwd,
        start_new_session=True, bufsize=0,
    )


def early(argv: Sequence[str], cwd: str | None = None, extra_env: Mapping[str, str] | None = None) -> None:
    """Start ``argv`` now; a failure here is left for the transport to report as it always does."""
    env = upstream_env(extra_env)
    try:
        _waiting[_key(argv, cwd, env)] = spawn(argv, cwd, env)
    except OSError:
        return
    if len(_waiting) == 1:
        atexit.register(_end_untaken)


def take(argv: Sequence[str], cwd: str | None, env: Mapping[str, str]) -> subprocess.Popen[bytes] | None:
    """The early process for exactly this start, if it is still running."""
    process = _waiting.pop(_key(argv, cwd, env), None)
    if process is not None and process.poll() is not None:
        _close(process)
        return None  # it died before anyone spoke to it: start afresh, as without an early start
    return process


def _end_untaken() -> None:
    for process in _waiting.values():
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        _close(process)
        process.wait()
    _waiting.clear()


def _close(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()

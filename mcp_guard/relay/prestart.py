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


# The guard's own settings, credentials of the people who decide among them (review token, Slack
# signing secret and bot token, webhook secret, web keys): an upstream (or anything it runs)
# holding one could approve calls or forge a decider's click. No upstream needs any of them, so
# every variable with this prefix is withheld, whether inherited or configured, and a setting
# added later is withheld without anyone remembering to list it.
WITHHELD_PREFIX = "MCP_GUARD_"


def withheld(name: str) -> bool:
    """Whether the variable ``name`` is kept from upstreams (case-insensitively: Windows is)."""
    return name.upper().startswith(WITHHELD_PREFIX)


def upstream_env(configured: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment an upstream process gets: the guard's own and its configured variables,
    less every ``MCP_GUARD_*`` one."""
    env = {**os.environ, **(configured or {})}
    return {name: value for name, value in env.items() if not withheld(name)}


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
        # SIGTERM or SIGHUP (a client stopping its server) ends the interpreter without atexit:
        # until the guard's own front takes these signals, they end the early process first.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _stopped)


def _stopped(signum: int, _frame: object) -> None:
    _end_untaken()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # and die of it, as without this handler


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

"""Running the real CLI with its stdout on a real pseudo-terminal (the pty module), or piped.

A terminal gets a window size (TIOCSWINSZ), as a person's does, so the commands' tables fit to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import selectors
import struct
import subprocess
import termios

ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def clean_env(**extra: str) -> dict[str, str]:
    """This run's environment without what would change a terminal's output (NO_COLOR, COLUMNS, LINES)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    return {**env, **extra}


def on_terminal(argv: list[str], env: dict[str, str], columns: int = 100) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of a command whose stdout and stderr are each their own terminal,
    ``columns`` wide."""
    masters, slaves = zip(*(pty.openpty() for _ in range(2)))
    for fd in slaves:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slaves[0], stderr=slaves[1], env=env)
    for fd in slaves:
        os.close(fd)
    got = {fd: b"" for fd in masters}
    with selectors.DefaultSelector() as sel:
        for fd in masters:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select():
                try:
                    chunk = os.read(key.fd, 65536)
                except OSError:  # EIO: the child closed its side
                    chunk = b""
                if chunk:
                    got[key.fd] += chunk
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
    code = proc.wait(timeout=60)
    out, err = (got[fd].decode().replace("\r\n", "\n") for fd in masters)
    return code, out, err


def piped(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60)
    return done.returncode, done.stdout, done.stderr


def offsets(header: str, *titles: str) -> list[int]:
    """Where each title starts in a table's header line (colour codes taken out)."""
    plain = COLOUR.sub("", header)
    found = [re.search(rf"(?:^|(?<=  )){re.escape(title)}(?=  |$)", plain) for title in titles]
    assert all(found), (plain, titles)
    return [match.start() for match in found if match]


HELLO = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


def tools_through(argv: list[str], env: dict[str, str]) -> tuple[list[dict[str, object]], str]:
    """The tools a guard started with ``argv`` lists to a client that stays until its answer
    (a client closing stdin at once may leave before a slow upstream has answered), and what the
    guard wrote on stderr meanwhile."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               text=True, encoding="utf-8")
    assert process.stdin and process.stdout and process.stderr
    for message in ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": HELLO},
                    {"jsonrpc": "2.0", "method": "notifications/initialized"},
                    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}):
        process.stdin.write(json.dumps(message) + "\n")
    process.stdin.flush()
    tools: list[dict[str, object]] = []
    for line in process.stdout:
        answer = json.loads(line)
        if answer.get("id") == 2:
            tools = answer["result"]["tools"]
            break
    process.stdin.close()  # the guard ends with its client
    stderr = process.stderr.read()
    process.wait(timeout=30)
    process.stdout.close()
    process.stderr.close()
    return tools, stderr

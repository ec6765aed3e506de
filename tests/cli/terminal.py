"""Running the real CLI with its stdout on a real pseudo-terminal (the pty module), or piped.

A terminal gets a window size (TIOCSWINSZ), as a person's does, so the commands' tables fit to it.
"""

from __future__ import annotations

import fcntl
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

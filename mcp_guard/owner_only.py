"""The guard's home and store files are its own, as ssh keeps ``~/.ssh``.

The store holds reviewer token hashes, web sessions, grants and the pending requests with their
previews; anyone who reads it learns what is being decided and by whom, and anyone who writes it
decides. A home made by ``useradd --create-home`` or ``mkdir`` under umask 022 is readable by
every account, and SQLite creates its files under the process umask. So the home is narrowed to
its owner (with a warning, since someone chose otherwise) and the database, which SQLite's
``-wal`` and ``-shm`` files copy their mode from, is created 0600. A home that is open to others
and not ours to narrow is refused: nothing secret is written there.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["HomeNotPrivate", "private_file", "private_home", "read_own", "write_own"]

logger = logging.getLogger(__name__)

# Group and other bits: none of them may be set on the home or a store file.
OTHERS = stat.S_IRWXG | stat.S_IRWXO


class HomeNotPrivate(OSError):
    """The home is open to other accounts and the guard may not narrow it."""


def private_home(home: Path) -> None:
    """Make ``home`` (created 0700 when missing) reachable only by its owner, or refuse it."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = home.stat()
    if not info.st_mode & OTHERS:
        return
    if info.st_uid != os.geteuid():
        raise HomeNotPrivate(
            f"{home} is open to other accounts (mode {stat.S_IMODE(info.st_mode):o}) and belongs to another "
            f"account: `chmod 700` it as its owner, or run as that account"
        )
    logger.warning(
        "%s was open to other accounts (mode %o): narrowed to 700, the guard's state is its own",
        home, stat.S_IMODE(info.st_mode),
    )
    os.chmod(home, stat.S_IMODE(info.st_mode) & ~OTHERS)


def private_file(path: Path) -> None:
    """Create ``path`` 0600 if missing; narrow an existing one of ours that others could open.

    An existing file is never opened here: closing any descriptor of a database drops every
    POSIX lock this process holds on it, the locks SQLite's open connections rely on."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        return
    except FileExistsError:
        pass
    info = path.stat()
    if info.st_mode & OTHERS and info.st_uid == os.geteuid():
        logger.warning("%s was open to other accounts (mode %o): narrowed to 600", path, stat.S_IMODE(info.st_mode))
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~OTHERS)


def read_own(path: Path) -> bytes | None:
    """The bytes of ``path`` when it is a regular file of this account that no other account can
    write (a kept policy, a compiled pattern database); else None, and the caller builds it anew.

    A cache folder may be shared, even writable by others: what another account put there, or
    could have changed, is never taken for the guard's own work. Checked on the open file, so a
    file swapped after the check is not the one read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return None
        return file.read()


def write_own(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Replace ``path`` with ``data``, whole or not at all, readable by this account only; with
    ``sync``, on disk before it replaces the old file. Raises OSError (a read-only or foreign
    folder): a cache's caller goes on without it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


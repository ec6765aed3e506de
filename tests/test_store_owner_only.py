"""The store's home and files are the guard's own, whatever the umask and however the home was made."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_guard.store import Store, StoreError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_store_made_under_umask_022_in_a_home_left_open_is_owner_only(guard_home: Path) -> None:
    guard_home.mkdir(mode=0o755)
    guard_home.chmod(0o755)
    old = os.umask(0o022)
    try:
        store = Store()
        store.execute("CREATE TABLE IF NOT EXISTS t (x)")  # a write, so the -wal and -shm files exist
        modes = {p.name: mode(p) for p in guard_home.glob("guard.db*")}  # before close removes -wal, -shm
        store.close()
    finally:
        os.umask(old)
    assert mode(guard_home) == 0o700
    assert modes == {"guard.db": 0o600, "guard.db-shm": 0o600, "guard.db-wal": 0o600}


def test_a_store_file_an_older_version_left_world_readable_is_narrowed_when_opened(guard_home: Path) -> None:
    Store().close()
    (guard_home / "guard.db").chmod(0o644)
    Store().close()
    assert mode(guard_home / "guard.db") == 0o600


def test_a_store_path_of_the_users_choosing_leaves_its_folder_alone_but_not_the_file(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    Store(shared / "x.db").close()
    assert mode(shared) == 0o755 and mode(shared / "x.db") == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the home to another account")
def test_a_home_open_to_others_and_owned_by_another_account_is_refused(guard_home: Path) -> None:
    guard_home.mkdir()
    guard_home.chmod(0o755)
    os.chown(guard_home, 65534, 65534)  # nobody's
    with pytest.raises(StoreError, match="chmod 700"):
        Store()
    assert not (guard_home / "guard.db").exists()
    listed = subprocess.run([sys.executable, "-m", "mcp_guard", "review", "list", "--home", str(guard_home)],
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode != 0 and "chmod 700" in listed.stderr and "Traceback" not in listed.stderr

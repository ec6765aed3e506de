"""Red team, audit (issue 14 item 7): the model has a shell as the user and can edit the guard's home.

Each test makes real records through the guard (approved calls to fixtures/attack_approve_server.py), lets the
guard close cleanly, tampers with the store the way an attacker without audit.key can, and expects
`mcp-guard audit verify` to fail."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.attack.approve_common import open_asked
from tests.conftest import PY

pytestmark = pytest.mark.anyio


async def session(tmp_path: Path, calls: int = 3) -> None:
    process, client, _ = await open_asked(tmp_path)
    with anyio.fail_after(60):
        for i in range(1, calls + 1):
            reply = await client.call_raw(i, '{"n":%d}' % i)
            assert "result" in reply
        assert process.stdin is not None
        await process.stdin.aclose()  # a clean close: the guard seals its head
        await process.wait()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "mcp_guard", "audit", *args], capture_output=True, text=True, timeout=60,
                          env=os.environ.copy())


def db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "guard.db", isolation_level=None)


async def test_a_clean_chain_verifies(tmp_path: Path, guard_home: Path) -> None:
    await session(tmp_path)
    assert cli("verify").returncode == 0


async def test_cutting_the_last_session_and_its_seals_is_detected(tmp_path: Path, guard_home: Path) -> None:
    (tmp_path / "a").mkdir()
    await session(tmp_path / "a")
    with db(guard_home) as conn:
        first_end = conn.execute("select max(seq) from audit").fetchone()[0]
        first_seals = conn.execute("select max(seq) from audit_heads").fetchone()[0]
    (tmp_path / "b").mkdir()
    await session(tmp_path / "b")
    assert cli("verify").returncode == 0
    # Without audit.key: drop the second session's records, every seal above the first session's last,
    # and the second session's spool row: what is left is exactly the first session's sealed chain.
    with db(guard_home) as conn:
        spools = [r[0] for r in conn.execute("select name from audit_spools")]
        conn.execute("delete from audit where seq > ?", (first_end,))
        conn.execute("delete from audit_heads where seq > ?", (first_seals,))
        for name in spools[1:]:
            conn.execute("delete from audit_spools where name = ?", (name,))
    for spool in (guard_home / "audit-spool").glob("*"):
        spool.unlink()
    result = cli("verify")
    assert result.returncode != 0, "a whole session's records were cut and verify still passed: " + result.stdout


async def test_cutting_the_tail_after_close_is_detected(tmp_path: Path, guard_home: Path) -> None:
    await session(tmp_path)
    with db(guard_home) as conn:
        last = conn.execute("select max(seq) from audit").fetchone()[0]
        conn.execute("delete from audit where seq = ?", (last,))
    assert cli("verify").returncode != 0


async def test_modifying_a_record_is_detected(tmp_path: Path, guard_home: Path) -> None:
    await session(tmp_path)
    with db(guard_home) as conn:
        seq, body = conn.execute("select seq, body from audit order by seq limit 1 offset 2").fetchone()
        conn.execute("update audit set body = ? where seq = ?", (body.replace("send", "echo"), seq))
    assert cli("verify").returncode != 0


async def test_reordering_records_is_detected(tmp_path: Path, guard_home: Path) -> None:
    await session(tmp_path)
    with db(guard_home) as conn:
        rows = conn.execute("select seq, ts, kind, body, prev, hash from audit order by seq").fetchall()
        a, b = rows[2], rows[3]
        conn.execute("update audit set ts=?, kind=?, body=?, prev=?, hash=? where seq=?", (*b[1:], a[0]))
        conn.execute("update audit set ts=?, kind=?, body=?, prev=?, hash=? where seq=?", (*a[1:], b[0]))
    assert cli("verify").returncode != 0


async def test_an_emptied_chain_fails_verify_and_expect(tmp_path: Path, guard_home: Path) -> None:
    await session(tmp_path)
    head = cli("head")
    assert head.returncode == 0
    anchor = head.stdout.strip().split()[-1]
    with db(guard_home) as conn:
        conn.execute("delete from audit")
        conn.execute("delete from audit_heads")
        conn.execute("delete from audit_spools")
    assert cli("verify").returncode != 0
    assert cli("verify", "--expect", anchor).returncode != 0


async def test_a_chain_cut_below_the_anchored_head_fails_expect(tmp_path: Path, guard_home: Path) -> None:
    await session(tmp_path)
    anchor = cli("head").stdout.strip().split()[-1]
    seq = int(anchor.split(":")[0])
    with db(guard_home) as conn:
        conn.execute("delete from audit where seq >= ?", (seq - 1,))
        conn.execute("delete from audit_heads where seq >= ?", (seq - 1,))
    assert cli("verify", "--expect", anchor).returncode != 0


async def test_a_removed_audit_key_is_not_silently_replaced(tmp_path: Path, guard_home: Path) -> None:
    await session(tmp_path)
    (guard_home / "audit.key").unlink()
    assert cli("verify").returncode != 0
    (tmp_path / "again").mkdir()
    with pytest.raises((AssertionError, Exception)):
        await session(tmp_path / "again")
    assert not (guard_home / "audit.key").exists(), "a fresh audit.key was made over existing records"


async def test_a_spool_deleted_before_it_was_chained_is_named_or_its_records_are_kept(
        tmp_path: Path, guard_home: Path) -> None:
    process, client, _ = await open_asked(tmp_path)
    with anyio.fail_after(60):
        for i in range(1, 4):
            assert "result" in await client.call_raw(i, '{"n":%d}' % i)
    process.kill()  # no clean close: what is still in the spool has not been chained
    with anyio.CancelScope(shield=True):
        await process.aclose()
    for spool in (guard_home / "audit-spool").glob("*"):
        spool.unlink()
    result = cli("verify")
    exported = cli("export", "--format", "jsonl").stdout
    finished = [line for line in exported.splitlines() if '"call.finished"' in line]
    assert len(finished) == 3 or result.returncode != 0, (
        f"{3 - len(finished)} finished call(s) vanished with the spool and verify passed")


async def test_a_store_replaced_wholesale_fails_the_anchored_head(tmp_path: Path, guard_home: Path) -> None:
    await session(tmp_path)
    anchor = cli("head").stdout.strip().split()[-1]
    for name in ["guard.db", "guard.db-wal", "guard.db-shm", "audit.key"]:
        (guard_home / name).unlink(missing_ok=True)
    for spool in (guard_home / "audit-spool").glob("*"):
        spool.unlink()
    (tmp_path / "fresh").mkdir()
    await session(tmp_path / "fresh", calls=6)  # a fresh store, as long or longer than the old one
    assert cli("verify", "--expect", anchor).returncode != 0

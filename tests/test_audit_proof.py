"""An audit that proves it: heads sealed at close and within seconds, a head to anchor
elsewhere and check against, no silent new key, spools that cannot vanish unnoticed, and no
raw secret anywhere in the guard's home, whichever field of a call it was planted in."""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import secrets
import signal
import sqlite3
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp.shared.exceptions import MCPError
from mcp_guard.audit import Audit
from mcp_guard.store import Store
from tests.conftest import FIXTURES, PY, connect, guard, node_server, probe
from tests.rawclient import RawClient, open_raw
from tests.reviewing import review

pytestmark = pytest.mark.anyio

ALLOW = "version: 1\ndefaults: {action: allow}\nrules: []\n"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_guard", *args, "--home", str(home)], capture_output=True, text=True, timeout=30)


def sql(db: Path, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(statement, args).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def allow_policy(tmp_path: Path) -> str:
    path = tmp_path / "allow.yaml"
    path.write_text(ALLOW)
    return str(path)


def fill(home: Path, count: int) -> None:
    audit = Audit(Store(home / "guard.db"))
    for i in range(count):
        audit.append("call.finished", {"tool": f"t{i}", "outcome": "completed"})


# -- sealing -----------------------------------------------------------------------------------


async def test_cutting_the_last_records_after_the_guard_closed_is_found(tmp_path: Path, guard_home: Path) -> None:
    with anyio.fail_after(30):
        async with connect(guard(*probe(), policy=allow_policy(tmp_path))) as client:
            for i in range(3):
                await client.call_tool("echo", {"message": f"m{i}"})
    db = guard_home / "guard.db"
    [(last,)] = sql(db, "SELECT MAX(seq) FROM audit")
    assert last < 100  # far below the every-100-records seal
    sql(db, "DELETE FROM audit WHERE seq > ?", last - 2)
    verified = cli(guard_home, "audit", "verify")
    assert verified.returncode == 1 and "cut off the end" in verified.stderr


async def test_a_running_guard_seals_its_records_within_seconds(tmp_path: Path, guard_home: Path) -> None:
    db = guard_home / "guard.db"
    with anyio.fail_after(30):
        async with connect(guard(*probe(), policy=allow_policy(tmp_path))) as client:
            await client.call_tool("echo", {"message": "sealed soon"})
            while True:  # bounded by fail_after; the writer seals at most SEAL_INTERVAL_S after a record
                rows = sql(db, "SELECT MAX(seq) FROM audit WHERE kind='call.finished'")
                finished = rows[0][0]
                [(sealed,)] = sql(db, "SELECT MAX(seq) FROM audit_heads")
                if finished is not None and sealed is not None and sealed >= finished:
                    break
                await anyio.sleep(0.1)


# -- anchoring ---------------------------------------------------------------------------------


def test_verify_expect_catches_a_cut_below_the_anchored_head_and_a_chain_replaced_wholesale(guard_home: Path) -> None:
    fill(guard_home, 10)
    printed = cli(guard_home, "audit", "head")
    assert printed.returncode == 0, printed.stderr
    head = printed.stdout.strip()
    assert head.startswith("10:") and len(head) == 3 + 64
    assert cli(guard_home, "audit", "verify", "--expect", head).returncode == 0
    db = guard_home / "guard.db"
    # Cut records and the seals that would give it away. Without the key audit.head still tells (see
    # test_cutting_the_tail_and_its_seals_without_the_key_is_caught_by_the_head_file); with the key the
    # attacker rewrites audit.head too, and only the anchored head can tell.
    sql(db, "DELETE FROM audit WHERE seq > 6")
    sql(db, "DELETE FROM audit_heads WHERE seq > 6")
    assert cli(guard_home, "audit", "verify").returncode == 1
    [(hash6,)] = sql(db, "SELECT hash FROM audit WHERE seq = 6")
    key = bytes.fromhex((guard_home / "audit.key").read_text().strip())
    mac = hmac.new(key, f"6:{hash6}".encode(), hashlib.sha256).hexdigest()
    (guard_home / "audit.head").write_text(f"6:{hash6}:{mac}\n")
    assert cli(guard_home, "audit", "verify").returncode == 0
    cut = cli(guard_home, "audit", "verify", "--expect", head)
    assert cut.returncode == 1 and "record 7" in cut.stderr
    # Replaced wholesale: a new store and key with more records than before.
    db.unlink()
    (guard_home / "audit.key").unlink()
    fill(guard_home, 12)
    replaced = cli(guard_home, "audit", "verify", "--expect", head)
    assert replaced.returncode == 1 and "record 10" in replaced.stderr and "rewritten" in replaced.stderr
    bad = cli(guard_home, "audit", "verify", "--expect", "ten:abc")
    assert bad.returncode == 2 and "SEQ:HASH" in bad.stderr


def test_an_emptied_chain_fails_verify_while_a_fresh_home_does_not(guard_home: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh-home"
    fresh.mkdir(mode=0o700)
    assert cli(fresh, "audit", "verify").returncode == 0
    assert cli(fresh, "audit", "verify").returncode == 0  # reading never makes a key that would say otherwise
    assert not (fresh / "audit.key").exists()
    fill(guard_home, 5)
    db = guard_home / "guard.db"
    sql(db, "DELETE FROM audit")
    sql(db, "DELETE FROM audit_heads")
    emptied = cli(guard_home, "audit", "verify")
    assert emptied.returncode == 1 and "records were removed" in emptied.stderr


async def test_a_guard_whose_audit_key_vanished_stops_with_a_recovery_message(tmp_path: Path, guard_home: Path) -> None:
    argv = guard(*probe(), policy=allow_policy(tmp_path))
    with anyio.fail_after(30):
        async with connect(argv) as client:
            await client.call_tool("echo", {"message": "recorded"})
    (guard_home / "audit.key").unlink()
    started = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert started.returncode != 0
    assert "audit.key is missing" in started.stderr and "Restore audit.key" in started.stderr
    assert not (guard_home / "audit.key").exists()  # never silently made anew
    reader = cli(guard_home, "audit", "verify")
    assert reader.returncode == 1 and "Restore audit.key" in reader.stderr  # a finding, like tampering


# -- spools ------------------------------------------------------------------------------------


async def test_a_spool_deleted_before_it_was_chained_is_named_by_verify(tmp_path: Path, guard_home: Path) -> None:
    process = await open_raw(guard(*probe(), policy=allow_policy(tmp_path)))
    with anyio.fail_after(30):
        client = RawClient(process)
        await client.initialize()
        answer = await client.request(2, "tools/call", {"name": "echo", "arguments": {"message": "lost?"}})
        assert "result" in answer
        os.kill(process.pid, signal.SIGKILL)  # the guard dies with records maybe still in its spool
        await process.wait()
    spools = list((guard_home / "audit-spool").glob("*.jsonl"))
    assert len(spools) == 1
    spools[0].unlink()  # removed before any reader or guard chained it
    verified = cli(guard_home, "audit", "verify")
    assert verified.returncode == 1
    assert spools[0].stem in verified.stderr and "vanished" in verified.stderr


async def test_a_guard_that_closes_cleanly_leaves_its_spool_closed_in_the_chain(tmp_path: Path, guard_home: Path) -> None:
    with anyio.fail_after(30):
        async with connect(guard(*probe(), policy=allow_policy(tmp_path))) as client:
            await client.call_tool("echo", {"message": "x"})
    assert list((guard_home / "audit-spool").glob("*.jsonl")) == []
    records = [json.loads(line) for line in cli(guard_home, "audit", "export").stdout.splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds.count("audit.spool_opened") == 1 and kinds.count("audit.spool_closed") == 1
    assert cli(guard_home, "audit", "verify").returncode == 0


def test_verify_of_a_home_that_does_not_exist_is_a_usage_error_and_makes_nothing(tmp_path: Path) -> None:
    misspelt = tmp_path / "no-such-home"
    verified = cli(misspelt, "audit", "verify")
    assert verified.returncode == 2 and "no mcp-guard home" in verified.stderr
    assert not misspelt.exists()


def test_a_new_chain_grown_past_a_deleted_ones_sealed_head_never_seals_over_its_proof(guard_home: Path) -> None:
    fill(guard_home, 5)
    assert cli(guard_home, "audit", "head").returncode == 0
    for path in guard_home.glob("guard.db*"):
        path.unlink()  # the key and audit.head stay: the old chain's proof
    fill(guard_home, 12)
    assert Audit(Store(guard_home / "guard.db")).seal() is not None  # as a guard seals its new chain at close
    verified = cli(guard_home, "audit", "verify")
    assert verified.returncode == 1, verified.stderr


def test_a_spool_no_guard_announced_is_named_by_verify_and_never_chained(guard_home: Path) -> None:
    fill(guard_home, 3)
    assert cli(guard_home, "audit", "head").returncode == 0
    spools = guard_home / "audit-spool"
    spools.mkdir(mode=0o700, exist_ok=True)
    forged = {"n": 1, "ts": 1.0, "kind": "call.finished", "body": {"server": "prod-db", "tool": "forged_sql", "decision": "approve"}}
    (spools / "host-deadbeef-99999-00000000.jsonl").write_text(json.dumps(forged) + "\n")
    verified = cli(guard_home, "audit", "verify")
    assert verified.returncode == 1 and "host-deadbeef-99999-00000000" in verified.stderr and "never announced" in verified.stderr
    assert "forged_sql" not in cli(guard_home, "audit", "export").stdout


# -- no raw secret anywhere in the home ----------------------------------------------------------

REVIEWED = """version: 1
defaults: {action: allow, wait: 30, timeout: 60}
rules:
  - name: writes-wait
    match: {tool: write_file}
    action: approve
"""


def canary_key() -> str:
    """An AWS-style access key id made at run time (never a literal in the repo)."""
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def canary_token() -> str:
    return "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


async def first_pending(home: Path) -> str:
    while True:
        items = json.loads(cli(home, "review", "list", "--json").stdout or "[]")
        if items:
            return str(items[0]["id"])
        await anyio.sleep(0.05)


async def test_secrets_planted_in_every_field_of_a_call_reach_no_file_in_the_guard_home(tmp_path: Path, guard_home: Path) -> None:
    in_arguments, in_tool, in_error, in_note = canary_key(), canary_token(), canary_key(), canary_token()
    policy = tmp_path / "reviewed.yaml"
    policy.write_text(REVIEWED)
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=str(policy))
    results: list[Any] = []
    with anyio.fail_after(60):
        async with connect(argv) as client:
            # The tool name itself (the upstream's "not found" error repeats it).
            results.append(await client.call_tool(in_tool, {"x": in_arguments}))
            # A file the model named with a secret in it: the upstream's tool error repeats it.
            results.append(await client.call_tool("read_text_file", {"path": str(tmp_path / in_arguments)}))
            # Arguments held for approval, and a decider's note.

            async def held() -> None:
                results.append(await client.call_tool("write_file", {"path": str(tmp_path / "o.txt"), "content": in_arguments}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(held)
                request = await first_pending(guard_home)
                denied = review(guard_home, "deny", request, "--reason", f"do not paste {in_note} here", "--as", getpass.getuser())
                assert denied.returncode == 0, denied.stderr
        # An upstream whose JSON-RPC error text repeats the arguments (kept as the call's error).
        async with connect(guard(PY, str(FIXTURES / "hostile_server.py"), policy=str(policy))) as client:
            with pytest.raises(MCPError) as leaky:
                await client.call_tool("leaky_error", {"token": in_error})
    assert in_error not in str(leaky.value)  # the model sees it masked; the store must too
    assert all(r.is_error for r in results)
    assert cli(guard_home, "audit", "verify").returncode == 0
    canaries = {"arguments": in_arguments, "tool": in_tool, "error": in_error, "note": in_note}
    found = {
        (field, str(path.relative_to(guard_home)))
        for path in guard_home.rglob("*") if path.is_file()
        for field, canary in canaries.items() if canary.encode() in path.read_bytes()
    }
    assert found == set(), found  # names the field and file, never the secret


# -- the sealed head kept beside the key (audit.head) ---------------------------------------------


def sealed_fill(home: Path, count: int) -> None:
    fill(home, count)
    Audit(Store(home / "guard.db")).seal()  # as a guard does at close


def test_cutting_the_tail_and_its_seals_without_the_key_is_caught_by_the_head_file(guard_home: Path) -> None:
    sealed_fill(guard_home, 10)
    db = guard_home / "guard.db"
    sql(db, "DELETE FROM audit WHERE seq > 6")
    sql(db, "DELETE FROM audit_heads WHERE seq > 6")
    cut = cli(guard_home, "audit", "verify")
    assert cut.returncode == 1 and "record 7" in cut.stderr and "audit.head" in cut.stderr


def test_a_removed_head_file_fails_verify_while_records_exist(guard_home: Path) -> None:
    sealed_fill(guard_home, 3)
    (guard_home / "audit.head").unlink()
    gone = cli(guard_home, "audit", "verify")
    assert gone.returncode == 1 and "missing" in gone.stderr


def test_a_head_file_lowered_without_the_key_is_not_valid(guard_home: Path) -> None:
    sealed_fill(guard_home, 5)
    [(hash2,)] = sql(guard_home / "guard.db", "SELECT hash FROM audit WHERE seq = 2")
    seq, head, mac = (guard_home / "audit.head").read_text().strip().split(":")
    assert seq == "5"
    (guard_home / "audit.head").write_text(f"2:{hash2}:{mac}\n")
    forged = cli(guard_home, "audit", "verify")
    assert forged.returncode == 1 and "tampered" in forged.stderr


def test_the_head_file_is_private_and_follows_every_seal(guard_home: Path) -> None:
    sealed_fill(guard_home, 4)
    path = guard_home / "audit.head"
    assert path.stat().st_mode & 0o777 == 0o600
    [(hash4,)] = sql(guard_home / "guard.db", "SELECT hash FROM audit WHERE seq = 4")
    assert path.read_text().startswith(f"4:{hash4}:")
    assert cli(guard_home, "audit", "verify").returncode == 0

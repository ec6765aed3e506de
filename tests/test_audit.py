"""The audit trail: every decision recorded, tampering found at the right record, no secrets."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcp_guard.audit import Audit, digest, load_key
from mcp_guard.masking import detect
from mcp_guard.store import Store
from tests.conftest import connect, everything, guard, probe

pytestmark = pytest.mark.anyio

ALLOW = "version: 1\ndefaults: {action: allow}\nrules:\n  - name: no-crash\n    match: {tool: crash}\n    action: deny\n"
GITHUB = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_guard", "audit", *args, "--home", str(home)], capture_output=True, text=True, timeout=30)


def fill(home: Path, count: int) -> Audit:
    audit = Audit(Store(home / "guard.db"))
    for i in range(count):
        audit.append("call.finished", {"tool": f"t{i}", "outcome": "completed"})
    return audit


async def test_calls_and_decisions_are_recorded_and_hold_no_secret(tmp_path: Path, guard_home: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(ALLOW)
    argv = guard("env", f"GITHUB_TOKEN={GITHUB}", "OWNER=jane.doe@example.com", *everything(), policy=str(policy))
    with anyio.fail_after(30):
        async with connect(argv) as client:
            await client.call_tool("get-env", {})
            await client.call_tool("echo", {"message": f"my token is {GITHUB}"})
    verified = cli(guard_home, "verify")
    assert verified.returncode == 0, verified.stderr
    exported = cli(guard_home, "export", "--format", "jsonl").stdout
    records = [json.loads(line) for line in exported.splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "policy.loaded"
    assert kinds.count("call.forwarded") == 2 and kinds.count("call.finished") == 2
    finished = [r["body"] for r in records if r["kind"] == "call.finished"]
    assert finished[0]["tool"] == "get-env" and finished[0]["masked"]["SECRET"] >= 1
    assert all("result_digest" in b and "latency_ms" in b for b in finished)
    assert all(b["result_tokens"] > 0 and b["argument_tokens"] >= 0 for b in finished)
    assert finished[1]["argument_tokens"] > 5  # {"message": "my token is <SECRET_1>"}
    assert all(b["tokens_estimated"] for b in finished)  # no token budget: tiktoken is not loaded
    assert GITHUB not in exported and "jane.doe@example.com" not in exported
    leaks = [s for s in detect(exported) if s.label in ("SECRET", "EMAIL")]
    assert leaks == [], [exported[s.start:s.end] for s in leaks]
    csv_out = cli(guard_home, "export", "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("seq,time,kind,session,user,server,tool")


async def test_a_denied_call_is_recorded_with_its_rule_and_reason(tmp_path: Path, guard_home: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(ALLOW)
    with anyio.fail_after(30):
        async with connect(guard(*probe(), policy=str(policy))) as client:
            await client.call_tool("crash", {})
    # The guard's last records announce its spool's close; the call's record is just before.
    tail = [json.loads(line) for line in cli(guard_home, "tail", "-n", "5", "--json").stdout.splitlines()]
    tail = [r for r in tail if r["kind"].startswith("call.")][-1]
    assert tail["kind"] == "call.denied"
    assert tail["body"]["rule"] == "no-crash" and "not run" in tail["body"]["reason"]


def test_an_untouched_chain_verifies(guard_home: Path) -> None:
    fill(guard_home, 250)
    assert cli(guard_home, "verify").returncode == 0


def tamper(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db)
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()


TAMPERING = [
    ("edit", ["UPDATE audit SET body='{\"tool\":\"t9\",\"outcome\":\"denied\"}' WHERE seq=10"], 10, "edited"),
    ("delete", ["DELETE FROM audit WHERE seq=40"], 41, "deleted"),
    ("insert", ["UPDATE audit SET seq=seq+1000 WHERE seq>=30", "UPDATE audit SET seq=seq-999 WHERE seq>=1030",
                "INSERT INTO audit (seq, ts, kind, body, prev, hash) SELECT 30, ts, kind, body, prev, hash FROM audit WHERE seq=29"], 30, ""),
    ("reorder", ["UPDATE audit SET seq=-1 WHERE seq=20", "UPDATE audit SET seq=20 WHERE seq=21", "UPDATE audit SET seq=21 WHERE seq=-1"], 20, ""),
    ("truncate", ["DELETE FROM audit WHERE seq>150"], 151, "cut off the end"),
]


@pytest.mark.parametrize(("name", "statements", "first_bad", "words"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_is_found_at_the_right_record(guard_home: Path, name: str, statements: list[str], first_bad: int, words: str) -> None:
    fill(guard_home, 250)
    tamper(guard_home / "guard.db", *statements)
    done = cli(guard_home, "verify")
    assert done.returncode == 1
    assert f"record {first_bad}" in done.stderr
    assert words in done.stderr


async def test_killing_the_guard_mid_calls_leaves_a_chain_that_verifies_with_every_forwarded_call(tmp_path: Path, guard_home: Path) -> None:
    await kill_mid_calls(tmp_path, guard_home, {})


async def kill_mid_calls(tmp_path: Path, home: Path, env: dict[str, str], store: tuple[str, ...] = ()) -> None:
    """SIGKILL the guard while 100 calls are in flight; every call the server saw has its record."""
    from tests.rawclient import RawClient, open_raw

    policy = tmp_path / "p.yaml"
    policy.write_text(ALLOW)
    log = tmp_path / "probe.jsonl"
    log.touch()
    process = await open_raw(guard(*probe(), policy=str(policy)), env={"PROBE_LOG": str(log), **env})
    with anyio.fail_after(60):
        client = RawClient(process)
        await client.initialize()
        for i in range(100):
            await client.send({"jsonrpc": "2.0", "id": 100 + i, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": f"m{i}"}}})
        while len(log.read_text().splitlines()) < 30:  # some calls reached the server, others not yet
            await anyio.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
    verified = cli(home, "verify", *store)
    assert verified.returncode == 0, verified.stderr
    records = [json.loads(line) for line in cli(home, "export", *store).stdout.splitlines()]
    forwarded = {r["body"]["arguments_digest"] for r in records if r["kind"] == "call.forwarded"}
    reached = [json.loads(line)["arguments"]["message"] for line in log.read_text().splitlines()]
    key = load_key(home)
    assert reached and all(digest(key, {"message": m}) in forwarded for m in reached)


async def test_when_the_audit_cannot_be_written_calls_are_refused_until_it_can(tmp_path: Path, guard_home: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(ALLOW)
    with anyio.fail_after(60):
        async with connect(guard(*probe(), policy=str(policy))) as client:
            assert not (await client.call_tool("echo", {"message": "recorded"})).is_error
            tamper(guard_home / "guard.db", "ALTER TABLE audit RENAME TO audit_gone")
            while True:  # the writer fails on the next batch; from then on nothing runs unrecorded
                result = await client.call_tool("echo", {"message": "must not run unrecorded"})
                if result.is_error:
                    break
            assert "not run" in result.content[0].text
            tamper(guard_home / "guard.db", "ALTER TABLE audit_gone RENAME TO audit")
            while (await client.call_tool("echo", {"message": "recorded again"})).is_error:
                pass  # the writer retries, chains what waited in the spool, and calls run again
    verified = cli(guard_home, "verify")
    assert verified.returncode == 0, verified.stderr
    messages = [r["body"].get("arguments_digest") for r in (json.loads(x) for x in cli(guard_home, "export").stdout.splitlines())]
    key = load_key(guard_home)
    assert digest(key, {"message": "recorded again"}) in messages


def test_records_folded_from_a_spool_link_and_read_back_as_verify_recomputes_them(guard_home: Path) -> None:
    audit = Audit(Store(guard_home / "guard.db"))
    bodies = [
        {"tool": "écho", "nested": {"z": [1, 2.5, None, True], "a": "line\u2028sep \"quoted\""}},
        {"tool": "t", "latency_ms": 1e-7, "count": 12345678901234567890},
        {},
    ]
    entries = [{"n": i + 1, "ts": ts, "kind": kind, "body": body}
               for i, (ts, kind, body) in enumerate(zip([1700000000.123456, 1.0, 0.5e-7], ["call.finished", "ü\"k", "x"], bodies))]
    assert audit.fold("some-spool", entries) == 3
    audit.seal()
    assert audit.verify() is None
    assert [r["body"] for r in audit.records()][-3:] == bodies


def test_guards_starting_together_on_a_fresh_home_all_use_one_whole_key(tmp_path: Path) -> None:
    import threading

    keys: list[bytes] = []
    start = threading.Barrier(16)

    def load() -> None:
        start.wait()
        keys.append(load_key(tmp_path / "fresh"))

    threads = [threading.Thread(target=load) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 16 and len(set(keys)) == 1 and len(keys[0]) == 32
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["audit.key"]


def test_a_csv_export_shows_formulas_and_escape_codes_from_a_call_as_text(guard_home: Path) -> None:
    audit = Audit(Store(guard_home / "guard.db"))
    audit.append("call.finished", {"tool": '=HYPERLINK("http://evil.example","open")', "reason": "ev\x1b[2Jil", "user": "@SUM(A1)"})
    audit.close()
    exported = cli(guard_home, "export", "--format", "csv").stdout
    row = next(line for line in exported.splitlines() if "HYPERLINK" in line)
    assert "\x1b" not in exported and "ev\\x1b[2Jil" in row
    assert "'=HYPERLINK" in row and "'@SUM(A1)" in row
    assert ',"=HYPERLINK' not in row and ",=HYPERLINK" not in row and ",@SUM" not in row

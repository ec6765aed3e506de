"""The PostgreSQL store: one audit chain, one review queue and one set of grants for several
guard instances, on a real PostgreSQL server started for the tests (tests/postgres.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp import Client
from mcp_guard.audit import Audit
from mcp_guard.store import PostgresStore, StoreError, open_store
from tests.conftest import PY, background, free_port, node_server
from tests.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.test_audit import TAMPERING, kill_mid_calls
from tests.web.test_review_page import POLICY as REVIEWED_BY_SECOPS

pytestmark = pytest.mark.anyio


def cli(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mcp_guard", *args, "--home", str(home), "--store", url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def fill(url: str, count: int) -> None:
    audit = Audit(PostgresStore(url))
    for i in range(count):
        audit.append("call.finished", {"tool": f"t{i}", "outcome": "completed"})
    audit.store.close()


def test_an_untouched_postgresql_chain_verifies(postgres_url: str, guard_home: Path) -> None:
    fill(postgres_url, 250)
    done = cli(guard_home, postgres_url, "audit", "verify")
    assert done.returncode == 0, done.stderr
    assert "250 records" in done.stderr


@pytest.mark.parametrize(("name", "statements", "first_bad", "words"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_in_postgresql_is_found_at_the_right_record(
    postgres_url: str, guard_home: Path, name: str, statements: list[str], first_bad: int, words: str
) -> None:
    import psycopg

    fill(postgres_url, 250)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
    done = cli(guard_home, postgres_url, "audit", "verify")
    assert done.returncode == 1
    assert f"record {first_bad}" in done.stderr
    assert words in done.stderr


def test_concurrent_writers_on_two_connections_keep_one_chain(postgres_url: str, guard_home: Path) -> None:
    """Two stores (as two instances have) append at once, directly and through spools."""
    errors: list[BaseException] = []

    def writer(tag: str, spooled: bool) -> None:
        try:
            audit = Audit(PostgresStore(postgres_url))
            if spooled:
                audit.spool = None
                spool = audit.start_spool()
                for i in range(300):
                    audit.record("call.forwarded", {"writer": tag, "i": i})
                assert spool.flush(30)
                audit.close()
            else:
                for i in range(300):
                    audit.append("call.forwarded", {"writer": tag, "i": i})
            audit.store.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}", i % 2 == 0)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    audit = Audit(PostgresStore(postgres_url))
    assert audit.verify() is None
    records = list(audit.records())
    audit.store.close()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    # Each spooled writer also announced its spool's opening and closing in the chain.
    assert [r["kind"] for r in records].count("audit.spool_opened") == 2
    records = [r for r in records if r["kind"] == "call.forwarded"]
    assert len(records) == 1200
    for tag in ("w0", "w1", "w2", "w3"):
        assert [r["body"]["i"] for r in records if r["body"]["writer"] == tag] == list(range(300))


def test_a_wrong_postgresql_url_is_a_clear_error_without_the_password(guard_home: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://guard:hunter2-secret@127.0.0.1:{port}/nowhere"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert "hunter2-secret" not in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)
    done = cli(guard_home, url, "audit", "verify")
    assert done.returncode != 0
    assert "cannot open the mcp-guard store" in done.stderr and "hunter2-secret" not in done.stderr


async def test_a_call_waiting_on_one_instance_is_approved_through_another_and_completes(
    tmp_path: Path, guard_home: Path, postgres_url: str
) -> None:
    """Instance A holds the call; a reviewer approves through instance B's API; A runs it at once.

    Each instance has its own home (as on two machines; they share the audit key). The
    fallback poll is set far beyond the test's deadline, so only NOTIFY can wake A in time."""
    policy = tmp_path / "reviewed.yaml"
    policy.write_text(REVIEWED_BY_SECOPS)  # the default timeout (120 s) outlasts the test
    homes = [tmp_path / "home-a", tmp_path / "home-b"]
    for home in homes:
        home.mkdir()
    for home in homes:
        (home / "audit.key").write_text("ab" * 32)  # instances sharing a store share the seal key
    alice = cli(homes[1], postgres_url, "review", "token", "create", "alice", "--role", "secops").stdout.strip()
    ports = [free_port(), free_port()]
    target = tmp_path / "reviewed.txt"
    env = {"MCP_GUARD_USER": "carol", "MCP_GUARD_PG_POLL_S": "600", "MCP_GUARD_STORE": postgres_url}

    def serve(i: int) -> Any:
        argv = [PY, "-m", "mcp_guard", "serve", "--home", str(homes[i]), "--policy", str(policy), "--port", str(ports[i]),
                "--", *node_server("server-filesystem", str(tmp_path))]
        return background(argv, f"http://127.0.0.1:{ports[i]}/healthz", env=env)

    result: list[Any] = []
    async with serve(0), serve(1):
        with anyio.fail_after(30):
            async with Client(f"http://127.0.0.1:{ports[0]}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]

                async def call() -> None:
                    result.append(await client.call_tool("write_file", {"path": str(target), "content": "approved on B"}))

                async with anyio.create_task_group() as tg, httpx.AsyncClient() as http:
                    tg.start_soon(call)
                    b = f"http://127.0.0.1:{ports[1]}"
                    auth = {"Authorization": f"Bearer {alice}"}
                    while not (pending := (await http.get(f"{b}/api/review/pending", headers=auth)).json()):
                        await anyio.sleep(0.05)
                    assert not target.exists()
                    decided = await http.post(f"{b}/api/review/{pending[0]['id']}/approve", headers=auth, json={})
                    assert decided.status_code == 200, decided.text
    assert not result[0].is_error, result[0]
    assert target.read_text() == "approved on B"
    exported = [json.loads(line) for line in cli(homes[1], postgres_url, "audit", "export").stdout.splitlines()]
    finished = [r["body"] for r in exported if r["kind"] == "call.finished" and r["body"].get("tool") == "write_file"]
    assert finished and finished[-1]["approver"] == "alice" and finished[-1]["outcome"] == "completed"
    assert cli(homes[0], postgres_url, "audit", "verify").returncode == 0


async def test_killing_a_guard_on_postgresql_mid_calls_leaves_a_chain_with_every_forwarded_call(
    tmp_path: Path, guard_home: Path, postgres_url: str
) -> None:
    await kill_mid_calls(tmp_path, guard_home, {"MCP_GUARD_STORE": postgres_url}, ("--store", postgres_url))


def test_a_dropped_connection_fails_one_operation_closed_and_the_next_reconnects(postgres_url: str, guard_home: Path) -> None:
    import psycopg

    audit = Audit(PostgresStore(postgres_url))
    audit.append("call.finished", {"tool": "before"})
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()")
    with pytest.raises(StoreError):
        audit.append("call.finished", {"tool": "lost"})
    audit.append("call.finished", {"tool": "after"})
    assert [r["body"]["tool"] for r in audit.records()] == ["before", "after"]
    assert audit.verify() is None
    audit.store.close()

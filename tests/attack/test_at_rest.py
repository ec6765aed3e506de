"""Red team: raw values are held in memory only (README, Masking): after results were masked, placeholders
put back toward their origin, and a call parked for approval with a rehydrated argument, no canary is
written anywhere under the guard's home (store, audit, caches)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest

from tests.attack.common import attack_canaries, open_guard, stop

pytestmark = pytest.mark.anyio

APPROVE_STORE = """version: 1
defaults: {action: allow}
rules:
  - name: store-needs-a-reviewer
    match: {tool: store}
    action: approve
    approvers: reviewers
    timeout: 1
    reason: red team
"""


def _files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file()]


@pytest.mark.parametrize("policy", ["allow", "approve"])
async def test_no_raw_value_is_written_under_the_guard_home(tmp_path: Path, guard_home: Path, policy: str) -> None:
    env = attack_canaries()
    text = "version: 1\ndefaults: {action: allow}\n" if policy == "allow" else APPROVE_STORE
    process, client = await open_guard(tmp_path, env, policy=text)
    try:
        with anyio.fail_after(30):
            for i, route in enumerate(["link", "keys", "error_data", "log_keys", "audio"], start=1):
                await client.request(i, "tools/call", {"name": "leak2", "arguments": {"route": route}})
            ph = re.search(r"<EMAIL_\d+>", json.dumps(client.seen))
            assert ph is not None
            # Toward its origin the placeholder becomes the raw value again: that call is audited.
            await client.request(20, "tools/call", {"name": "store", "arguments": {"value": f"to {ph.group(0)}"}})
            await client.request(21, "ping")
    finally:
        await stop(process)
    files = _files(guard_home)
    assert files, "the guard wrote nothing under its home"
    found = [(name, _where(path, env[name])) for path in files for name in ("LEAK_KEY", "LEAK_EMAIL")
             if env[name].encode() in path.read_bytes()]
    assert found == [], f"stored raw: {found}"


def _where(path: Path, value: str) -> str:
    """The file, and for the SQLite store the tables that hold the value."""
    import sqlite3

    if path.suffix != ".db" and not path.name.endswith((".db-wal", ".db-shm")):
        return path.name
    db = path.with_name(path.name.split(".db")[0] + ".db")
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        tables = [t for (t,) in conn.execute("select name from sqlite_master where type='table'")]
        hits = [t for t in tables if any(value in json.dumps(row, default=str) for row in conn.execute(f"select * from {t}"))]
        conn.close()
    except sqlite3.Error:
        hits = []
    return f"{path.name} (tables: {', '.join(hits) or '?'})"

"""Red team, policy reload: whatever a broken edit puts in the policy file, the running guard keeps the last
good policy (fail closed), keeps answering, and says so on stderr."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from tests.conftest import FIXTURES, PY
from tests.rawclient import RawClient

pytestmark = pytest.mark.anyio

GOOD = (
    'version: 1\ndefaults: {action: allow}\nrules:\n  - name: no-etc\n    match: {args: {"$.path": "/etc/*"}}\n'
    "    action: deny\n"
)
BROKEN = {
    "invalid-utf8": b"version: 1\ndefaults: {action: allow}\n\xff\xfe: x\n",
    "deep-nesting": b"version: 1\ndefaults: {action: allow}\nrules: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "duplicate-key": b"version: 1\ndefaults: {action: deny}\ndefaults: {action: allow}\n",
    "empty": b"",
}


# What the guard writes on stderr once it has looked at the edit: the promised line, or the signs of a crash.
SIGNS = ("policy reload failed", "Traceback", "hook PolicyHook failed")


@pytest.mark.parametrize("kind", sorted(BROKEN))
async def test_a_broken_policy_edit_keeps_the_last_good_policy_and_the_guard_answering(
    tmp_path: Path, guard_home: Path, kind: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    log, err = tmp_path / "ran.log", tmp_path / "guard.err"
    argv = [PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", PY, str(FIXTURES / "attack_match_server.py")]
    with err.open("wb") as stderr:
        process = await anyio.open_process(argv, env={**os.environ, "MATCH_LOG": str(log)}, stderr=stderr)
    client = RawClient(process)
    replies = []
    try:
        with anyio.fail_after(60):
            await client.initialize()
            await client.request(1, "tools/list", {})
            policy.write_bytes(BROKEN[kind])
            rid = 2
            while not any(sign in err.read_text(errors="replace") for sign in SIGNS):  # the guard checks each second
                replies.append(
                    await client.request(rid, "tools/call", {"name": "read_file", "arguments": {"path": "/etc/shadow"}})
                )
                rid += 1
                await anyio.sleep(0.1)
            replies.append(
                await client.request(rid, "tools/call", {"name": "read_file", "arguments": {"path": "/etc/shadow"}})
            )
            harmless = await client.request(
                rid + 1, "tools/call", {"name": "read_file", "arguments": {"path": "/tmp/x"}}
            )
    finally:
        process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()
    ran = log.read_text() if log.exists() else ""
    assert "/etc/shadow" not in ran
    assert all(r.get("error") or r["result"].get("isError") for r in replies)
    assert "result" in harmless and not harmless["result"].get("isError"), harmless
    said = err.read_text(errors="replace")
    assert "policy reload failed" in said and "Traceback" not in said, said[-800:]


@pytest.mark.parametrize("kind", ["invalid-utf8", "deep-nesting"])
def test_policy_check_names_the_file_for_a_policy_that_cannot_be_decoded_or_is_nested_too_deep(
    tmp_path: Path, kind: str
) -> None:
    import subprocess

    policy = tmp_path / "policy.yaml"
    policy.write_bytes(BROKEN[kind])
    out = subprocess.run(
        [PY, "-m", "mcp_guard", "policy", "check", str(policy)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "policy.yaml" in out.stderr + out.stdout, out.stderr[-800:]

"""Every vote and decision a reviewer makes is chained in the audit as it is made, by whoever
made it: a quorum's first vote is evidence too, and a decision that cannot be recorded is not made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.attack.test_decide_names import reviewed_write, status
from tests.reviewing import review, reviewer_token

pytestmark = pytest.mark.anyio


def audit(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mcp_guard", "audit", *args, "--home", str(home)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def records(home: Path) -> list[dict[str, Any]]:
    done = audit(home, "tail", "-n", "1000", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_each_reviewers_vote_and_the_deciding_one_are_chained_with_who_cast_them(tmp_path: Path, guard_home: Path) -> None:
    async def decide(rid: str) -> None:
        assert review(guard_home, "approve", rid, "--as", "bob", "--reason", "looks fine").returncode == 0
        assert status(guard_home, rid) == "pending"
        assert review(guard_home, "approve", rid, "--as", "alice").returncode == 0

    result, target = await reviewed_write(tmp_path, guard_home, "carol", decide, quorum=2)
    assert not result.is_error and target.read_text() == "reviewed"
    chain = records(guard_home)
    votes = [r["body"] for r in chain if r["kind"] == "approval.vote"]
    decided = [r["body"] for r in chain if r["kind"] == "approval.decided"]
    assert [(v["by"], v["decision"], v["reason"], v["channel"]) for v in votes] == [("bob", "approve", "looks fine", "cli")]
    assert [(d["by"], d["decision"], d["requester"], d["tool"]) for d in decided] == [("alice", "approve", "carol", "write_file")]
    call = next(r["body"] for r in chain if r["body"].get("approval_request") == decided[0]["request"])
    assert call["preview_sha256"] == decided[0]["preview_sha256"] == votes[0]["preview_sha256"]
    assert sorted(call["approver"].split(",")) == ["alice", "bob"]
    assert audit(guard_home, "verify").returncode == 0
    lines = audit(guard_home, "tail", "-n", "1000").stdout
    assert "approval.vote" in lines and "by=bob" in lines and "by=alice" in lines and "approver=" in lines


async def test_a_decision_the_audit_cannot_record_is_not_made(tmp_path: Path, guard_home: Path) -> None:
    async def decide(rid: str) -> None:
        bob = reviewer_token(guard_home, "bob")
        key = guard_home / "audit.key"
        kept = key.read_bytes()
        key.unlink()  # records exist: with the seal key gone nothing can be chained, so nothing is decided
        tried = review(guard_home, "approve", rid, token=bob)
        assert tried.returncode != 0 and "Traceback" not in tried.stderr, tried.stderr
        assert status(guard_home, rid) == "pending"
        key.write_bytes(kept)
        key.chmod(0o600)
        assert review(guard_home, "deny", rid, "--as", "bob", "--reason", "end").returncode == 0

    result, target = await reviewed_write(tmp_path, guard_home, "carol", decide)
    assert result.is_error and not target.exists()
    decided = [r["body"] for r in records(guard_home) if r["kind"].startswith("approval.")]
    assert [(d["by"], d["decision"]) for d in decided] == [("bob", "deny")]

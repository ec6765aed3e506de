"""A large result's audit facts (digest, token counts) are worked out off the event loop, and are
the same facts: the record of a large call reads like the record of a small one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcp_guard.masking.outbound import THREAD_CHARS
from tests.conftest import connect, everything, guard

pytestmark = pytest.mark.anyio

ALLOW = "version: 1\ndefaults: {action: allow}\n"


def finished_records(home: Path) -> list[dict[str, object]]:
    out = subprocess.run([sys.executable, "-m", "mcp_guard", "audit", "export", "--format", "jsonl", "--home", str(home)],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return [r["body"] for r in map(json.loads, out.splitlines()) if r["kind"] == "call.finished"]


async def test_a_large_result_is_recorded_with_its_digest_and_tokens_like_a_small_one(tmp_path: Path, guard_home: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(ALLOW)
    message = "word " * (THREAD_CHARS // 2)  # over the size that sends the work to a worker thread
    with anyio.fail_after(60):
        async with connect(guard(*everything(), policy=str(policy))) as client:
            await client.call_tool("echo", {"message": "small"})
            await client.call_tool("echo", {"message": message})
    small, large = finished_records(guard_home)
    assert set(small) == set(large)
    assert large["outcome"] == "completed" and large["result_digest"] != small["result_digest"]
    assert int(large["result_tokens"]) >= len(message) // 4 > int(small["result_tokens"])  # type: ignore[call-overload]

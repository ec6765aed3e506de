"""The gate: a 2026 retry resumes only a state the guard sealed or a call it parked; anything else
that claims to be the guard's is refused, audited, and never reaches the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcp.shared.exceptions import MCPError
from tests.conftest import PY, ROOT, connect, guard

pytestmark = pytest.mark.anyio

DEFAULT = str(ROOT / "policies" / "default.yaml")


@pytest.mark.parametrize(
    "state",
    ["mcp-guard.forged-handle", "mcp-guard.s.forged.0000", "mcp-guard."],
    ids=["bridge-handle-shape", "sealed-shape", "bare-prefix"],
)
async def test_a_forged_guard_state_is_refused_and_the_denied_tool_never_runs(
    tmp_path: Path, guard_home: Path, state: str
) -> None:
    log = tmp_path / "calls.jsonl"
    log.touch()
    argv = guard(sys.executable, str(ROOT / "examples" / "risky_server.py"), policy=DEFAULT)
    with anyio.fail_after(30):
        async with connect(argv, "2026-07-28", env={"PROBE_LOG": str(log), "PYTHONPATH": str(ROOT)}) as client:
            with pytest.raises(MCPError, match="Invalid or expired requestState") as refused:
                await client.session.call_tool(
                    "wire_money", {"iban": "DE00", "amount": 1}, input_responses={}, request_state=state
                )
            assert refused.value.error.code == -32602
            still_denied = await client.call_tool("wire_money", {"iban": "DE00", "amount": 1})
            assert still_denied.is_error
    assert log.read_text() == ""  # the server never saw wire_money
    tail = subprocess.run(
        [PY, "-m", "mcp_guard", "audit", "tail", "--json", "-n", "50"], capture_output=True, text=True, check=True
    )
    kinds = [json.loads(line)["kind"] for line in tail.stdout.splitlines() if line.strip()]
    assert "call.refused" in kinds

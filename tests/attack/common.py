"""Helpers for the red-team tests: run-time canaries, the guard around the attack fixture, a raw client
that keeps every byte it received."""

from __future__ import annotations

import os
import random
import secrets
import string
import subprocess
from pathlib import Path
from typing import Any

import anyio

from tests.conftest import FIXTURES, PY
from tests.relay.test_egress import CAPS, LeakClient, assert_clean

ALLOW_ALL = "version: 1\ndefaults: {action: allow}\n"
__all__ = ["ALLOW_ALL", "CAPS", "LeakClient", "assert_clean", "attack_canaries", "attack_server", "open_guard"]


def luhn_card() -> str:
    """A 16-digit Visa-shaped number that passes Luhn, fresh per run."""
    digits = [4] + [random.randint(0, 9) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def attack_canaries() -> dict[str, str]:
    alphabet = string.ascii_uppercase + "234567"
    return {
        "LEAK_KEY": "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
        "LEAK_EMAIL": f"atk.{secrets.token_hex(4)}@example.com",
        "LEAK_PASSWORD": "Pw" + secrets.token_hex(8) + "-horse",
        "LEAK_CARD": luhn_card(),
    }


def attack_server() -> list[str]:
    return [PY, str(FIXTURES / "attack_server.py")]


def policy_file(tmp_path: Path, text: str = ALLOW_ALL) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    return policy


async def open_guard(tmp_path: Path, env: dict[str, str], upstream: list[str] | None = None,
                     policy: str = ALLOW_ALL, caps: dict[str, Any] | None = None) -> tuple[Any, LeakClient]:
    argv = [PY, "-m", "mcp_guard", "run", "--policy", str(policy_file(tmp_path, policy)), "--",
            *(upstream or attack_server())]
    process = await anyio.open_process(argv, env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    client = LeakClient(process)
    init = {"protocolVersion": "2025-11-25", "clientInfo": {"name": "attack", "version": "1"},
            "capabilities": CAPS if caps is None else caps}
    reply = await client.request(0, "initialize", init)
    assert "result" in reply, reply
    await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return process, client


async def stop(process: Any) -> None:
    process.kill()
    with anyio.CancelScope(shield=True):
        await process.aclose()

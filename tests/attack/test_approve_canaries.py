"""Red team, audit at rest (issue 14 item 7): no raw secret anywhere in the guard home.

Canaries built at run time go where the model or a hostile upstream can put them: arguments of an
approved call, a tool's name, the upstream's error text. Then every file under MCP_GUARD_HOME (the
SQLite store, its WAL, spools, caches) is read as bytes and must not hold any of them."""

from __future__ import annotations

import json
import secrets
import string
from pathlib import Path

import anyio
import pytest

from tests.attack.approve_common import APPROVE_SEND, open_asked

pytestmark = pytest.mark.anyio


def canary_key() -> str:
    alphabet = string.ascii_uppercase + "234567"
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


async def close(process) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(30):
        await process.stdin.aclose()
        await process.wait()


def leaks(home: Path, values: list[str]) -> list[str]:
    found = []
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name} holds canary #{i}" for i, v in enumerate(values) if v.encode() in data]
    return found


async def test_a_secret_in_approved_arguments_is_nowhere_in_the_home(tmp_path: Path, guard_home: Path) -> None:
    key = canary_key()
    process, client, _ = await open_asked(tmp_path)
    with anyio.fail_after(60):
        reply = await client.call_raw(1, json.dumps({"token": key, "note": f"use {key} now"}))
    assert "result" in reply
    await close(process)
    assert leaks(guard_home, [key]) == []


@pytest.mark.parametrize("joiner", ["_", "-", " "])
async def test_a_secret_in_a_tool_name_is_nowhere_in_the_home(tmp_path: Path, guard_home: Path, joiner: str) -> None:
    # "_" and "-" also reach the audit record's tool field; every joiner reaches the pinned definition.
    key = canary_key()
    policy = "version: 1\ndefaults: {action: allow}\n"
    process, client, _ = await open_asked(tmp_path, env={"ATTACK_TOOL": f"send{joiner}{key}"}, policy=policy)
    with anyio.fail_after(60):
        await client.request(1, "tools/list", {})
        await client.call_raw(2, '{"n":1}', tool=f"send{joiner}{key}")
    await close(process)
    assert leaks(guard_home, [key]) == []


async def test_a_secret_in_an_upstream_error_text_is_nowhere_in_the_home(tmp_path: Path, guard_home: Path) -> None:
    key = canary_key()
    password = "Pw" + secrets.token_hex(8) + "-horse"
    error = f"auth failed for key {key} password={password}"
    process, client, _ = await open_asked(tmp_path, env={"ATTACK_ERROR": error})
    with anyio.fail_after(60):
        await client.call_raw(1, '{"n":1}')
    await close(process)
    assert leaks(guard_home, [key, password]) == []


async def test_a_secret_in_a_decline_reason_is_nowhere_in_the_home(tmp_path: Path, guard_home: Path) -> None:
    key = canary_key()
    answer = {"action": "accept", "content": {"approve": False, "reason": f"no, and here is {key}"}}
    process, client, seen = await open_asked(tmp_path, policy=APPROVE_SEND, answer=answer)
    with anyio.fail_after(60):
        await client.call_raw(1, '{"n":1}')
    await close(process)
    assert not seen.exists()
    assert leaks(guard_home, [key]) == []


@pytest.mark.parametrize("joiner", ["/", "?k=", "_"])
async def test_a_secret_in_a_resource_uri_is_nowhere_in_the_home(tmp_path: Path, guard_home: Path, joiner: str) -> None:
    key = canary_key()
    email = f"uri.{secrets.token_hex(4)}@example.com"
    policy = "version: 1\ndefaults: {action: allow}\n"
    process, client, _ = await open_asked(tmp_path, policy=policy)
    with anyio.fail_after(60):
        await client.request(1, "resources/read", {"uri": f"file:///srv/{email}/x{joiner}{key}"})
    await close(process)
    assert leaks(guard_home, [key, email]) == []

"""Two serve instances behind HAProxy on one PostgreSQL store: routing, shared review, shared audit.

Every client here talks only to the load balancer (tests/instances/gateway.py); which instance
ran a call is what the upstream fixture says (``where``)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from mcp import Client
from tests.instances.gateway import Gateway, open_gateway, text_of

pytestmark = pytest.mark.anyio

ALLOW = "version: 1\ndefaults: {action: allow}\nrules: []\n"
REVIEWED = """version: 1
defaults: {action: allow}
groups: {secops: [alice]}
rules:
  - name: runs-are-reviewed
    match: {tool: run_once}
    action: approve
    approvers: reviewers
    group: secops
"""
SESSIONS = 12
CALLS_PER_SESSION = 4


def policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


async def where(client: Client) -> str:
    return str(json.loads(text_of(await client.call_tool("where", {})))["instance"])


async def test_handshake_sessions_stick_to_the_instance_that_created_them_and_keep_their_own_state(
    tmp_path: Path, postgres_url: str
) -> None:
    seen: dict[int, set[str]] = {}
    recalled: dict[int, str] = {}

    async def session(gateway: Gateway, n: int) -> None:
        async with Client(gateway.url, mode="legacy", cache=None) as client:  # type: ignore[arg-type]
            assert text_of(await client.call_tool("remember", {"text": f"session-{n}"})) == "remembered"
            seen[n] = {await where(client) for _ in range(CALLS_PER_SESSION)}
            recalled[n] = text_of(await client.call_tool("recall", {}))

    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for n in range(SESSIONS):
                    tg.start_soon(session, gateway, n)
    assert recalled == {n: f"session-{n}" for n in range(SESSIONS)}
    assert all(len(instances) == 1 for instances in seen.values()), seen
    assert set().union(*seen.values()) == {"a", "b"}, "the load balancer sent every session to one instance"


async def test_2026_requests_are_answered_by_either_instance(tmp_path: Path, postgres_url: str) -> None:
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(120):
            async with Client(gateway.url, mode="2026-07-28", cache=None) as client:  # type: ignore[arg-type]
                answered = [await where(client) for _ in range(6)]
                tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"where", "run_once"} <= tools
    assert set(answered) == {"a", "b"}, answered

"""2026-07-28 input-required rounds behind the load balancer.

A 2026 client's call can take several requests: the guard (or a handshake-era upstream through
it) asks a question, the client retries with the answers and the ``requestState`` it was given.
That state names a call parked on, or sealed by, one instance only, while the balancer spreads
2026 requests round-robin: the retry must still reach the instance that issued the state."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from mcp import Client
from tests.conftest import accept_elicitation
from tests.instances.gateway import open_gateway, text_of
from tests.instances.test_balanced import ALLOW, policy

pytestmark = pytest.mark.anyio

ASKED_BY_THE_USER = """version: 1
defaults: {action: allow}
rules:
  - name: runs-need-the-user
    match: {tool: run_once}
    action: approve
    approvers: user
"""
ROUNDS = 6


async def test_a_2026_call_whose_upstream_asks_mid_call_resumes_on_the_instance_that_parked_it(
    tmp_path: Path, postgres_url: str
) -> None:
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(120):
            async with Client(gateway.url, mode="2026-07-28", cache=None,  # type: ignore[arg-type]
                              elicitation_callback=accept_elicitation) as client:
                results = [await client.call_tool("ask", {"question": f"q{n}"}) for n in range(ROUNDS)]
    assert not any(result.is_error for result in results), [text_of(r) for r in results]
    answered = [json.loads(text_of(result)) for result in results]
    assert all(a["reply"]["content"]["name"] == "Tester" for a in answered), answered
    assert {a["instance"] for a in answered} == {"a", "b"}


async def test_a_2026_call_approved_by_the_user_runs_once_on_whichever_instance_sealed_the_question(
    tmp_path: Path, postgres_url: str
) -> None:
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ASKED_BY_THE_USER)) as gateway:
        with anyio.fail_after(120):
            async with Client(gateway.url, mode="2026-07-28", cache=None,  # type: ignore[arg-type]
                              elicitation_callback=accept_elicitation) as client:
                results = [await client.call_tool("run_once", {"tag": f"t{n}"}) for n in range(ROUNDS)]
    assert not any(result.is_error for result in results), [text_of(r) for r in results]
    runs = gateway.runs()
    assert sorted(run["tag"] for run in runs) == [f"t{n}" for n in range(ROUNDS)]
    assert {run["instance"] for run in runs} == {"a", "b"}


async def test_a_2026_retry_with_100_kb_of_arguments_still_reaches_the_instance_that_parked_the_call(
    tmp_path: Path, postgres_url: str
) -> None:
    """Past HAProxy's 16 kB buffer: the state is still found (and without the example's
    use-server lines every one of these retries is refused elsewhere)."""
    question = "q" * 100_000
    async with open_gateway(tmp_path, postgres_url, policy(tmp_path, ALLOW)) as gateway:
        with anyio.fail_after(120):
            async with Client(gateway.url, mode="2026-07-28", cache=None,  # type: ignore[arg-type]
                              elicitation_callback=accept_elicitation) as client:
                results = [await client.call_tool("ask", {"question": question}) for _ in range(4)]
    assert not any(result.is_error for result in results), [text_of(r)[:200] for r in results]
    assert {json.loads(text_of(result))["instance"] for result in results} == {"a", "b"}

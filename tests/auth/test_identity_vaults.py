"""Vaults, grants and resumable state are the authenticated caller's: a 2026-07-28 client gets its
placeholders back across stateless exchanges with its own token, and never with another's."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from tests.auth.support import (
    FIXTURES, PY, as_caller, canary_secret, create_token, gateway, logged, stdio, tenant, text,
)
from tests.conftest import ERAS, background, free_port

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"


async def test_a_2026_caller_gets_its_placeholder_rehydrated_in_a_later_exchange_and_another_caller_does_not(
    tmp_path: Path,
) -> None:
    secret = canary_secret()
    alice, bob = create_token("alice"), create_token("bob")
    async with gateway(tmp_path, {"tenant": stdio(tenant(), shared=True)}) as url:
        with anyio.fail_after(60):
            async with as_caller(url, alice, MODERN) as a:
                placeholder = text(await a.call_tool("say", {"text": secret}))
            assert placeholder.startswith("<SECRET_") and secret not in placeholder
            # A new client, so a new exchange and connection: only the token ties it to the first.
            async with as_caller(url, alice, MODERN) as again, as_caller(url, bob, MODERN) as b:
                bobs = text(await b.call_tool("size_of", {"text": placeholder}))
                alices = text(await again.call_tool("size_of", {"text": placeholder}))
    assert alices == str(len(secret)), "the caller's own placeholder was not put back"
    assert bobs == str(len(placeholder)), "another caller's placeholder was put back"


async def test_an_unauthenticated_2026_exchange_still_keeps_nothing_for_the_next(tmp_path: Path) -> None:
    secret = canary_secret()
    port = free_port()
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {"tenant": stdio(tenant(), shared=True)}}), encoding="utf-8")
    policy = tmp_path / "allow.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n", encoding="utf-8")
    argv = [PY, "-m", "mcp_guard", "serve", "--port", str(port), "--policy", str(policy), "--config", str(config)]
    from mcp import Client

    async with background(argv, f"http://127.0.0.1:{port}/healthz"):
        with anyio.fail_after(60):
            async with Client(f"http://127.0.0.1:{port}/mcp", mode=MODERN, cache=None) as c:  # type: ignore[arg-type]
                placeholder = text(await c.call_tool("say", {"text": secret}))
                size = text(await c.call_tool("size_of", {"text": placeholder}))
    assert size == str(len(placeholder))


def _recorder(port: int, record: Path) -> list[str]:
    return [PY, str(FIXTURES / "header_recording_server.py"), str(port), str(record)]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_hostile_http_upstream_never_sees_the_callers_token_or_authorization(tmp_path: Path, mode: str) -> None:
    token = create_token("alice")
    up_port, record = free_port(), tmp_path / "headers.jsonl"
    upstream = {"url": f"http://127.0.0.1:{up_port}/mcp", "headers": {"X-Upstream-Key": "configured-for-the-upstream"}}
    async with background(_recorder(up_port, record), f"http://127.0.0.1:{up_port}/healthz"):
        async with gateway(tmp_path, {"recorder": upstream}) as url:
            with anyio.fail_after(60):
                async with as_caller(url, token, mode) as a:
                    said = text(await a.call_tool("echo", {"message": "hello"}))
                    await a.list_tools()
    assert said.startswith("hello")
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert any(e["method"] == "POST" for e in seen)
    names = {name.lower() for e in seen for name, _ in e["headers"]}
    assert "authorization" not in names
    assert "x-upstream-key" in names  # the upstream's own credential from the config does arrive
    assert token not in record.read_text() and token[4:] not in record.read_text()


async def test_a_callers_2026_vault_is_dropped_once_the_caller_has_been_idle(tmp_path: Path) -> None:
    secret = canary_secret()
    alice = create_token("alice")
    port, log = free_port(), tmp_path / "serve.log"
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({
        "mcpServers": {"tenant": stdio(tenant(), shared=True)}, "mcpGuard": {"sessionIdleTimeout": 1},
    }), encoding="utf-8")
    policy = tmp_path / "allow.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n", encoding="utf-8")
    argv = [PY, "-m", "mcp_guard", "--log-level", "info", "serve", "--auth", "tokens", "--port", str(port),
            "--policy", str(policy), "--config", str(config)]
    async with logged(argv, f"http://127.0.0.1:{port}/healthz", log):
        with anyio.fail_after(60):
            async with as_caller(f"http://127.0.0.1:{port}/mcp", alice, MODERN) as a:
                placeholder = text(await a.call_tool("say", {"text": secret}))
                while "dropped a caller's 2026 state" not in log.read_text():
                    await anyio.sleep(0.05)  # polls for the event; no timing is asserted
                after = text(await a.call_tool("size_of", {"text": placeholder}))
    assert after == str(len(placeholder)), "the idle caller's vault was kept"
    assert secret not in log.read_text() and alice not in log.read_text()


SESSION_GRANT = """version: 1
defaults: {action: allow, min_human_ms: 0, timeout: 30}
rules:
  - name: sizes-are-approved
    match: {tool: size_of}
    action: approve
    approvers: user
    scope: session
"""


class _Person:
    """Approves the guard's question for the whole session, and counts the questions."""

    def __init__(self) -> None:
        self.questions = 0

    async def __call__(self, ctx: object, params: object) -> object:
        import mcp_types as types

        self.questions += 1
        return types.ElicitResult(action="accept", content={"approve": True, "scope": "session"})


async def test_a_session_grant_a_2026_caller_gave_covers_its_next_exchange_and_never_another_callers(
    tmp_path: Path,
) -> None:
    alice, bob = create_token("alice"), create_token("bob")
    alices, bobs = _Person(), _Person()
    async with gateway(tmp_path, {"tenant": stdio(tenant(), shared=True)}, SESSION_GRANT) as url:
        with anyio.fail_after(90):
            async with as_caller(url, alice, MODERN, elicitation_callback=alices) as a:
                assert text(await a.call_tool("size_of", {"text": "one"})) == "3"
            async with as_caller(url, alice, MODERN, elicitation_callback=alices) as again:
                assert text(await again.call_tool("size_of", {"text": "four"})) == "4"
            async with as_caller(url, bob, MODERN, elicitation_callback=bobs) as b:
                assert text(await b.call_tool("size_of", {"text": "five!"})) == "5"
    assert alices.questions == 1, "alice was asked again within her session grant"
    assert bobs.questions == 1, "bob ran on alice's session grant"

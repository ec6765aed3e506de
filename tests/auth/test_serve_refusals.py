"""`serve --auth`: /metrics is not open to anyone who reaches the port, and refused requests are counted
and logged (rate-limited) without the credential. Real serve processes, a real OpenID provider."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from tests.auth.support import create_token
from tests.conftest import PY, background, free_port, probe
from tests.oidc_provider import OidcProvider

pytestmark = pytest.mark.anyio

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}


@asynccontextmanager
async def serving(auth: Sequence[str], log: Path, options: Sequence[str] = ()) -> AsyncIterator[str]:
    """serve with ``auth`` options in front of the probe server; its stderr in ``log``; yields the base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), *auth, *options, "--", *probe()]
    with log.open("wb") as sink:
        async with background(argv, f"{base}/healthz", stderr=sink):
            yield base


def oidc(provider: OidcProvider) -> list[str]:
    return ["--auth", "oidc", "--issuer", provider.issuer, "--audience", "http://127.0.0.1:9/mcp",
            "--resource", "http://127.0.0.1:9/mcp"]


def refused_count(text: str, reason: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(f'mcp_guard_auth_refused_total{{reason="{reason}"}}'))
    return float(line.rsplit(" ", 1)[1])


async def test_metrics_need_a_valid_caller_under_auth_oidc(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    async with serving(oidc(oidc_provider), tmp_path / "serve.log") as base:
        token = oidc_provider.token("alice", "http://127.0.0.1:9/mcp")
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                anonymous = await http.get(f"{base}/metrics")
                forged = await http.get(f"{base}/metrics", headers={"Authorization": "Bearer a.b.c"})
                allowed = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert (anonymous.status_code, forged.status_code) == (401, 401)
    assert "mcp_guard" not in anonymous.text and "mcp_guard" not in forged.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert allowed.status_code == 200 and "mcp_guard_calls" in allowed.text
    assert refused_count(allowed.text, "missing") == 1 and refused_count(allowed.text, "invalid") == 1


async def test_with_a_metrics_token_file_only_that_token_reads_metrics(tmp_path: Path) -> None:
    scraper = secrets.token_hex(32)
    (tmp_path / "metrics.token").write_text(scraper + "\n", encoding="utf-8")
    caller = create_token("alice")
    log = tmp_path / "serve.log"
    options = ["--metrics-token-file", str(tmp_path / "metrics.token")]
    async with serving(["--auth", "tokens"], log, options) as base:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                as_caller = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {caller}"})
                wrong = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {secrets.token_hex(32)}"})
                doubled = await http.get(f"{base}/metrics", headers=[("Authorization", f"Bearer {scraper}")] * 2)
                scraped = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {scraper}"})
                tool = await http.post(f"{base}/mcp", json=INITIALIZE, headers={
                    "Authorization": f"Bearer {scraper}", "Accept": "application/json, text/event-stream"})
    assert [r.status_code for r in (as_caller, wrong, doubled)] == [401, 401, 400]
    assert scraped.status_code == 200
    assert (refused_count(scraped.text, "invalid"), refused_count(scraped.text, "malformed")) == (2, 1)
    assert tool.status_code == 401, "the metrics token is no caller credential"
    logged = log.read_text(encoding="utf-8", errors="replace")
    assert scraper not in logged and caller not in logged


@pytest.mark.parametrize("content", ["", "short", "has a space in it but is long enough"], ids=["empty", "short", "space"])
def test_a_weak_metrics_token_file_stops_serve_from_starting(tmp_path: Path, content: str) -> None:
    path = tmp_path / "metrics.token"
    path.write_text(content, encoding="utf-8")
    done = subprocess.run(
        [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(free_port()), "--auth", "tokens",
         "--metrics-token-file", str(path), "--", *probe()], capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "--metrics-token-file" in done.stderr
    assert not content or content not in done.stderr


async def test_a_token_guessing_flood_is_counted_and_logged_once_per_reason(
    oidc_provider: OidcProvider, tmp_path: Path,
) -> None:
    log = tmp_path / "serve.log"
    guesses = [f"{secrets.token_urlsafe(12)}.{secrets.token_urlsafe(12)}.{secrets.token_urlsafe(12)}" for _ in range(30)]
    async with serving(oidc(oidc_provider), log) as base:
        token = oidc_provider.token("alice", "http://127.0.0.1:9/mcp")
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                for guess in guesses:
                    reply = await http.post(f"{base}/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {guess}"})
                    assert reply.status_code == 401
                for _ in range(3):
                    assert (await http.post(f"{base}/mcp", json=INITIALIZE)).status_code == 401
                text = (await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})).text
    assert refused_count(text, "invalid") == 30 and refused_count(text, "missing") == 3
    assert refused_count(text, "expired") == 0
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.startswith("{")]
    refusals = [x for x in lines if "refused a /mcp request" in x["msg"]]
    assert [(x["level"], x["msg"].split(")")[0]) for x in refusals] == [
        ("warning", "refused a /mcp request (invalid"), ("warning", "refused a /mcp request (missing")], refusals
    logged = log.read_text(encoding="utf-8")
    assert not any(guess in logged for guess in guesses) and token not in logged


def test_refusals_of_one_reason_log_one_warning_per_window_with_the_count_since(caplog: pytest.LogCaptureFixture) -> None:
    from mcp_guard.auth.caller import AuthRefused
    from mcp_guard.relay.fronts.callers import Refusals

    now = [1000.0]
    counted: list[str] = []
    refusals = Refusals(count=counted.append, every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="mcp_guard.relay.fronts.callers"):
        for _ in range(5):
            refusals.refused(AuthRefused(401, "bad", "invalid_token"), "/mcp")
        refusals.refused(AuthRefused(401, "none given"), "/mcp")
        now[0] += 61
        refusals.refused(AuthRefused(401, "bad", "invalid_token"), "/mcp")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "refused a /mcp request (invalid): bad",
        "refused a /mcp request (missing): none given",
        "refused a /mcp request (invalid): bad; 4 more for this reason since the last such line",
    ]
    assert counted == ["invalid"] * 5 + ["missing", "invalid"]

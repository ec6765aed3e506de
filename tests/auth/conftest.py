"""The real OpenID provider fixture for every test of serve's caller authentication, and the hostile issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import FIXTURES, PY, background, free_port
from tests.oidc_provider import oidc_provider  # noqa: F401  (a pytest fixture, found by name)


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    """fixtures/hostile_issuer.py on a free loopback port; its issuers are this base URL + /<case>."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [PY, str(FIXTURES / "hostile_issuer.py"), "--port", str(port)]
    async with background(argv, f"{base}/.well-known/oauth-authorization-server/none"):
        yield base

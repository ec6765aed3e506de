"""An identity provider that hangs (fixtures/hostile_issuer.py, case hang-jwks) cannot hold the guard's requests.

Tokens whose key is known never wait on a JWKS fetch, not even on the background refresh; tokens
with an unknown kid share one fetch and get a clear 401 within the fetch timeout.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from mcp_guard.auth.caller import AuthRefused
from mcp_guard.auth.discovery import FETCH_TIMEOUT_S
from mcp_guard.auth.oidc import OidcAuthenticator, OidcSettings

pytestmark = pytest.mark.anyio

AUDIENCE = "http://127.0.0.1:9/mcp"


def mint(issuer: str, sub: str) -> str:
    now = int(time.time())
    claims = {"sub": sub, "aud": AUDIENCE, "exp": now + 600, "iat": now, "scope": "mcp:tools"}
    return str(httpx.post(f"{issuer}/_token", json=claims, timeout=10).json()["token"])


def jwks_requests(issuer: str) -> int:
    return int(httpx.get(f"{issuer}/_stats", timeout=10).json()["jwks"])


def hang(issuer: str) -> None:
    httpx.post(f"{issuer}/_hang", timeout=10).raise_for_status()


async def until_fetched(issuer: str, count: int) -> None:
    """Until the issuer has received ``count`` JWKS requests (the condition, polled; bounded by the caller)."""
    while jwks_requests(issuer) < count:
        await anyio.sleep(0.05)


@asynccontextmanager
async def discovered(issuer: str, **options: object) -> AsyncIterator[OidcAuthenticator]:
    """An authenticator that has discovered ``issuer`` and checked one token, its background upkeep running."""
    auth = OidcAuthenticator(OidcSettings(issuer=issuer, audience=AUDIENCE, resource=AUDIENCE), **options)  # type: ignore[arg-type]
    with anyio.fail_after(10):
        assert (await auth.authenticate(f"Bearer {mint(issuer, 'alice')}")).user == "alice"
    async with anyio.create_task_group() as tg:
        tg.start_soon(auth.run)
        yield auth
        tg.cancel_scope.cancel()


def unknown_kid_token(issuer: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": issuer, "sub": "mallory", "aud": AUDIENCE, "exp": now + 600}
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": secrets.token_hex(8), "typ": "at+jwt"})


async def test_a_hung_issuer_never_delays_a_token_whose_key_is_known(hostile: str) -> None:
    issuer = f"{hostile}/hang-jwks"
    async with discovered(issuer) as auth:
        assert auth.jwks is not None
        hang(issuer)
        before = jwks_requests(issuer)
        auth.jwks.max_age_s = 0.0  # the keys are stale now: the background refresh starts, and hangs
        auth.jwks._changed.set()
        with anyio.fail_after(30):  # a bound on a loaded machine, not the claim: that is the 1 s below
            await until_fetched(issuer, before + 1)
        fresh = mint(issuer, "bob")  # never seen: checked against the cached key, not the cache of tokens
        with anyio.fail_after(1):  # far below the 5 s the hung fetch holds
            assert (await auth.authenticate(f"Bearer {fresh}")).user == "bob"
            assert (await auth.authenticate(f"Bearer {mint(issuer, 'carol')}")).user == "carol"


async def test_unknown_kids_at_a_hung_issuer_share_one_fetch_and_get_a_clear_401_in_bounded_time(
    hostile: str, caplog: pytest.LogCaptureFixture,
) -> None:
    issuer = f"{hostile}/hang-jwks"
    async with discovered(issuer, jwks_refresh_interval_s=0.5) as auth:
        hang(issuer)
        before = jwks_requests(issuer)
        problems: list[AuthRefused] = []
        tokens = [unknown_kid_token(issuer) for _ in range(20)]

        async def ask(token: str) -> None:
            with pytest.raises(AuthRefused) as caught:
                await auth.authenticate(f"Bearer {token}")
            problems.append(caught.value)

        started = anyio.current_time()
        with caplog.at_level(logging.WARNING, logger="mcp_guard.auth.jwks"), anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                for token in tokens:
                    tg.start_soon(ask, token)
        took = anyio.current_time() - started
        # While those waited, a token with the known key still went straight through.
        with anyio.fail_after(1):
            assert (await auth.authenticate(f"Bearer {mint(issuer, 'dave')}")).user == "dave"
    assert took < 0.5 + FETCH_TIMEOUT_S + 2, f"unknown kids waited {took:.1f} s"
    assert {(p.status, p.reason) for p in problems} == {(401, "unavailable")} and len(problems) == 20
    assert "could not be fetched" in problems[0].description and hostile not in problems[0].description
    assert jwks_requests(issuer) - before == 1, "each waiting request must not open a fetch of its own"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("JWKS fetch failed" in w and "no answer within 5 s" in w for w in warnings), warnings
    assert not any(token in w for w in warnings for token in tokens)


async def test_forged_kids_beyond_the_waiting_limit_are_refused_at_once_and_hold_no_connection(hostile: str) -> None:
    issuer = f"{hostile}/hang-jwks"
    async with discovered(issuer, jwks_refresh_interval_s=0.5) as auth:
        assert auth.jwks is not None
        auth.jwks.max_waiters = 3
        hang(issuer)
        waited: list[float] = []
        tokens = [unknown_kid_token(issuer) for _ in range(10)]

        async def ask(token: str) -> None:
            started = anyio.current_time()
            with pytest.raises(AuthRefused) as caught:
                await auth.authenticate(f"Bearer {token}")
            assert caught.value.status == 401 and caught.value.reason == "unavailable"
            waited.append(anyio.current_time() - started)

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                for token in tokens:
                    tg.start_soon(ask, token)
        assert auth.jwks.waiting == 0, "every waiter is counted out, however its wait ended"
    quick = [w for w in waited if w < 0.4]
    assert len(waited) == 10 and len(quick) == 7, f"waits: {sorted(round(w, 2) for w in waited)}"

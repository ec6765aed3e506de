"""OidcAuthenticator against a real OpenID provider (oidc-provider over loopback HTTP): what it accepts and refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

import anyio
import httpx
import pytest

from mcp_guard.auth.caller import AuthRefused
from mcp_guard.auth.oidc import OidcAuthenticator, OidcSettings
from tests.oidc_provider import OidcProvider, start_provider

pytestmark = pytest.mark.anyio

AUDIENCE = "http://127.0.0.1:9/mcp"


def authenticator(provider: OidcProvider, **overrides: object) -> OidcAuthenticator:
    fields: dict[str, object] = {"issuer": provider.issuer, "audience": AUDIENCE, "resource": AUDIENCE}
    fields.update(overrides)
    return OidcAuthenticator(OidcSettings(**fields))  # type: ignore[arg-type]


async def refused(auth: OidcAuthenticator, header: str | None) -> AuthRefused:
    with anyio.fail_after(10), pytest.raises(AuthRefused) as caught:
        await auth.authenticate(header)
    return caught.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, object], claims: dict[str, object], key: bytes = b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64(signature)}"


def claims_for(provider: OidcProvider, **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": provider.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": now + 600, "iat": now,
            "scope": "mcp:tools", **extra}


async def test_valid_token_gives_the_caller_its_user_groups_and_scopes(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice", AUDIENCE, scope="mcp:tools mcp:read", groups=["devs", "ops"])
    with anyio.fail_after(10):
        caller = await authenticator(oidc_provider).authenticate(f"Bearer {token}")
    assert (caller.user, caller.scheme, caller.issuer) == ("alice", "oidc", oidc_provider.issuer)
    assert caller.groups == {"devs", "ops"} and caller.scopes == {"mcp:tools", "mcp:read"}


async def test_token_from_the_real_client_credentials_grant_is_accepted(oidc_provider: OidcProvider) -> None:
    answer = oidc_provider.client_credentials(AUDIENCE)
    with anyio.fail_after(10):
        caller = await authenticator(oidc_provider).authenticate(f"Bearer {answer['access_token']}")
    assert caller.user == oidc_provider.client_id


async def test_user_and_groups_come_from_the_configured_claims(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("u-1", AUDIENCE, claims={"email": "ann@example.org", "roles": ["approvers"]})
    with anyio.fail_after(10):
        caller = await authenticator(oidc_provider, user_claim="email", groups_claim="roles").authenticate(
            f"Bearer {token}"
        )
    assert caller.user == "ann@example.org" and caller.subject == "u-1" and caller.groups == {"approvers"}


@pytest.mark.parametrize("header", [None, "Basic YTpi", "Bearer", "Bearer a b", "Bearer " + "x" * 20000])
async def test_missing_or_malformed_credentials_are_refused_with_401(oidc_provider: OidcProvider, header) -> None:
    assert (await refused(authenticator(oidc_provider), header)).status == 401


async def test_expired_token_is_refused_past_the_leeway(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice", AUDIENCE, exp=int(time.time()) - 120, iat=int(time.time()) - 900)
    problem = await refused(authenticator(oidc_provider), f"Bearer {token}")
    assert (problem.status, problem.error) == (401, "invalid_token")
    assert problem.description == "the access token has expired"


async def test_token_expired_within_the_leeway_is_still_accepted(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice", AUDIENCE, exp=int(time.time()) - 5)
    with anyio.fail_after(10):
        assert (await authenticator(oidc_provider).authenticate(f"Bearer {token}")).user == "alice"


async def test_token_not_yet_valid_is_refused(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice", AUDIENCE, nbf=int(time.time()) + 300)
    problem = await refused(authenticator(oidc_provider), f"Bearer {token}")
    assert problem.description == "the access token is not valid yet"


async def test_token_for_another_audience_is_refused(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice", "https://other-service.example/mcp")
    problem = await refused(authenticator(oidc_provider), f"Bearer {token}")
    assert problem.description == "the access token is not for this resource (aud)"


async def test_token_from_a_second_provider_is_refused(oidc_provider: OidcProvider) -> None:
    with start_provider() as other:
        token = other.token("alice", AUDIENCE)
        problem = await refused(authenticator(oidc_provider), f"Bearer {token}")
    assert problem.status == 401 and problem.error == "invalid_token"


async def test_second_providers_token_is_refused_for_its_issuer_even_with_its_keys(oidc_provider: OidcProvider) -> None:
    # The guard configured for provider B, handed B's key material but A's issuer name: iss decides.
    with start_provider() as other:
        token = other.token("alice", AUDIENCE)
        auth = authenticator(other, issuer=other.issuer)
        with anyio.fail_after(10):
            assert (await auth.authenticate(f"Bearer {token}")).user == "alice"
        auth.settings = OidcSettings(issuer=oidc_provider.issuer, audience=AUDIENCE, resource=AUDIENCE)
        auth._verified.clear()
        problem = await refused(auth, f"Bearer {token}")
    assert problem.description == "the access token is from another issuer (iss)"


async def test_rotated_key_is_fetched_once_and_its_tokens_accepted(oidc_provider: OidcProvider) -> None:
    auth = authenticator(oidc_provider)
    with anyio.fail_after(10):
        await auth.authenticate(f"Bearer {oidc_provider.token('alice', AUDIENCE)}")
        fetched = oidc_provider.stats()["jwks"]
        new_kid = oidc_provider.rotate()
        token = oidc_provider.token("alice", AUDIENCE)
        assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"] == new_kid
        assert (await auth.authenticate(f"Bearer {token}")).user == "alice"
        assert (await auth.authenticate(f"Bearer {oidc_provider.token('bob', AUDIENCE)}")).user == "bob"
    assert oidc_provider.stats()["jwks"] == fetched + 1


async def test_a_flood_of_unknown_kids_shares_one_jwks_fetch_and_is_refused(oidc_provider: OidcProvider) -> None:
    auth = authenticator(oidc_provider)
    with anyio.fail_after(10):
        await auth.authenticate(f"Bearer {oidc_provider.token('alice', AUDIENCE)}")
    before = oidc_provider.stats()["jwks"]
    problems: list[AuthRefused] = []

    async def forge() -> None:
        token = forged({"alg": "RS256", "typ": "at+jwt", "kid": secrets.token_hex(8)}, claims_for(oidc_provider))
        problems.append(await refused(auth, f"Bearer {token}"))

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(forge)
    assert [p.reason for p in problems] == ["unknown_key"] * 40
    assert oidc_provider.stats()["jwks"] - before == 1


async def test_a_forged_kid_does_not_lock_out_a_key_rotated_right_after(oidc_provider: OidcProvider) -> None:
    auth = authenticator(oidc_provider)
    with anyio.fail_after(10):
        await auth.authenticate(f"Bearer {oidc_provider.token('alice', AUDIENCE)}")
    forgery = forged({"alg": "RS256", "typ": "at+jwt", "kid": secrets.token_hex(8)}, claims_for(oidc_provider))
    assert (await refused(auth, f"Bearer {forgery}")).reason == "unknown_key"  # the refetch budget is spent now
    oidc_provider.rotate()
    with anyio.fail_after(auth.jwks.wait_s + 1):  # type: ignore[union-attr]
        caller = await auth.authenticate(f"Bearer {oidc_provider.token('bob', AUDIENCE)}")
    assert caller.user == "bob"


async def test_concurrent_forgeries_and_a_rotated_key_share_one_fetch_and_the_key_works(
    oidc_provider: OidcProvider,
) -> None:
    auth = authenticator(oidc_provider)
    with anyio.fail_after(10):
        await auth.authenticate(f"Bearer {oidc_provider.token('alice', AUDIENCE)}")
    before = oidc_provider.stats()["jwks"]
    oidc_provider.rotate()
    legit = oidc_provider.token("carol", AUDIENCE)
    users: list[str] = []

    async def forge() -> None:
        token = forged({"alg": "RS256", "typ": "at+jwt", "kid": secrets.token_hex(8)}, claims_for(oidc_provider))
        await refused(auth, f"Bearer {token}")

    async def genuine() -> None:
        users.append((await auth.authenticate(f"Bearer {legit}")).user)

    with anyio.fail_after(2 * auth.jwks.wait_s):  # type: ignore[union-attr]
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(forge)
                if i == 15:
                    tg.start_soon(genuine)
    assert users == ["carol"]
    assert oidc_provider.stats()["jwks"] - before == 1


async def test_missing_scope_is_refused_with_403_naming_the_scope(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice", AUDIENCE, scope="mcp:read")
    auth = authenticator(oidc_provider, scopes=("mcp:tools",))
    problem = await refused(auth, f"Bearer {token}")
    assert (problem.status, problem.error, problem.scope) == (403, "insufficient_scope", "mcp:tools")
    # Cached or not, the scope is checked on every request.
    assert (await refused(auth, f"Bearer {token}")).status == 403


async def test_alg_none_forgery_is_refused(oidc_provider: OidcProvider) -> None:
    kid = httpx.get(f"{oidc_provider.issuer}/jwks").json()["keys"][0]["kid"]
    token = forged({"alg": "none", "typ": "at+jwt", "kid": kid}, claims_for(oidc_provider))
    problem = await refused(authenticator(oidc_provider), f"Bearer {token}")
    assert "algorithm 'none' is not accepted" in problem.description


async def test_hs256_signed_with_the_issuers_public_key_is_refused(oidc_provider: OidcProvider) -> None:
    from cryptography.hazmat.primitives import serialization

    import jwt

    jwk = httpx.get(f"{oidc_provider.issuer}/jwks").json()["keys"][0]
    public = jwt.PyJWK(jwk).key
    for material in (
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwk).encode(),
    ):
        token = forged({"alg": "HS256", "typ": "at+jwt", "kid": jwk["kid"]}, claims_for(oidc_provider), material)
        problem = await refused(authenticator(oidc_provider), f"Bearer {token}")
        assert "algorithm 'HS256' is not accepted" in problem.description


@pytest.mark.parametrize(
    "header",
    [{"alg": ["RS256"]}, {"alg": {"x": 1}}, {"alg": "RS256", "typ": ["at+jwt"]}, {"alg": "RS256", "kid": 7},
     {"alg": "RS256", "typ": {"a": 1}}, {"alg": None}, {"alg": "RS256", "crit": ["exp"]}],
    ids=["alg-list", "alg-object", "typ-list", "kid-number", "typ-object", "alg-null", "crit"],
)
async def test_hostile_jwt_headers_are_refused_not_crashed_on(oidc_provider: OidcProvider, header: dict) -> None:
    token = forged(header, claims_for(oidc_provider))
    assert (await refused(authenticator(oidc_provider), f"Bearer {token}")).status == 401


@pytest.mark.parametrize("claims", [[1, 2], "text", 7, None], ids=["list", "string", "number", "null"])
async def test_a_jwt_whose_payload_is_not_an_object_is_refused(oidc_provider: OidcProvider, claims: object) -> None:
    kid = httpx.get(f"{oidc_provider.issuer}/jwks").json()["keys"][0]["kid"]
    token = forged({"alg": "RS256", "typ": "at+jwt", "kid": kid}, claims)  # type: ignore[arg-type]
    assert (await refused(authenticator(oidc_provider), f"Bearer {token}")).status == 401


async def test_an_id_token_typed_jwt_is_not_taken_for_an_access_token(oidc_provider: OidcProvider) -> None:
    token = forged({"alg": "RS256", "typ": "logout+jwt"}, claims_for(oidc_provider))
    assert "typ" in (await refused(authenticator(oidc_provider), f"Bearer {token}")).description


async def test_tampered_claims_break_the_signature(oidc_provider: OidcProvider) -> None:
    header, payload, signature = oidc_provider.token("alice", AUDIENCE).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "admin"
    token = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert (await refused(authenticator(oidc_provider), f"Bearer {token}")).description == (
        "the access token's signature does not verify"
    )


async def test_opaque_token_is_introspected_and_a_revoked_one_refused() -> None:
    with start_provider(opaque_resources=[AUDIENCE]) as provider:
        auth = authenticator(provider, introspection_client=(provider.introspector_id, provider.introspector_secret))
        good = provider.token("bob", AUDIENCE, groups=["ops"])
        revoked = provider.token("eve", AUDIENCE)
        assert "." not in good and provider.revoke(revoked)
        with anyio.fail_after(10):
            caller = await auth.authenticate(f"Bearer {good}")
            assert caller.user == "bob" and caller.groups == {"ops"}
            asked = provider.stats()["introspection"]
            await auth.authenticate(f"Bearer {good}")
            assert provider.stats()["introspection"] == asked  # answered from the short cache
        problem = await refused(auth, f"Bearer {revoked}")
        assert problem.description == "the access token is not active (introspection)"


async def test_opaque_token_without_introspection_configured_is_refused() -> None:
    with start_provider(opaque_resources=[AUDIENCE]) as provider:
        problem = await refused(authenticator(provider), f"Bearer {provider.token('bob', AUDIENCE)}")
    assert "no introspection is configured" in problem.description


async def test_introspected_token_for_another_audience_is_refused() -> None:
    other = "https://other-service.example/mcp"
    with start_provider(opaque_resources=[other]) as provider:
        auth = authenticator(provider, introspection_client=(provider.introspector_id, provider.introspector_secret))
        problem = await refused(auth, f"Bearer {provider.token('bob', other)}")
    assert problem.status == 401


async def test_unreachable_issuer_answers_503_without_hanging() -> None:
    from tests.conftest import free_port

    nobody = f"http://127.0.0.1:{free_port()}"
    auth = OidcAuthenticator(OidcSettings(issuer=nobody, audience=AUDIENCE, resource=AUDIENCE))
    problem = await refused(auth, "Bearer a.b.c")
    assert problem.status == 503


async def test_a_key_the_issuer_retired_stops_verifying_once_the_jwks_is_refetched(oidc_provider: OidcProvider) -> None:
    auth = authenticator(oidc_provider)
    old = oidc_provider.token("alice", AUDIENCE)
    with anyio.fail_after(10):
        await auth.authenticate(f"Bearer {old}")
        oidc_provider.rotate(retire_old=True)
        await auth.authenticate(f"Bearer {oidc_provider.token('bob', AUDIENCE)}")  # unknown kid: refetch
    problem = await refused(auth, f"Bearer {old}")
    assert problem.description == "the access token is signed with a key the issuer does not publish"


async def test_the_background_refresh_drops_a_retired_key_and_keeps_known_keys_instant(oidc_provider: OidcProvider) -> None:
    auth = authenticator(oidc_provider)
    old = oidc_provider.token("alice", AUDIENCE)
    with anyio.fail_after(10):
        await auth.authenticate(f"Bearer {old}")
    assert auth.jwks is not None
    oidc_provider.rotate(retire_old=True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(auth.run)
        fetches = auth.jwks.fetches
        auth.jwks.max_age_s = 0.0  # stale: the background refresh fetches (no request asks for it)
        auth.jwks._changed.set()
        with anyio.fail_after(auth.jwks.min_interval_s + 5):
            while auth.jwks.fetches == fetches or auth.jwks.fetched_at < auth.jwks._started:
                await auth.jwks._changed.wait()
        tg.cancel_scope.cancel()
    with anyio.fail_after(1):  # the new key is known now: no wait
        assert (await auth.authenticate(f"Bearer {oidc_provider.token('bob', AUDIENCE)}")).user == "bob"
    assert (await refused(auth, f"Bearer {old}")).reason == "unknown_key"


async def test_groups_follow_the_provider_once_a_user_leaves_a_group(oidc_provider: OidcProvider) -> None:
    auth = authenticator(oidc_provider)
    oidc_provider.set_user("carol", ["reviewers", "devs"])
    with anyio.fail_after(10):
        before = await auth.authenticate(f"Bearer {oidc_provider.token('carol', AUDIENCE)}")
        oidc_provider.set_user("carol", ["devs"])
        after = await auth.authenticate(f"Bearer {oidc_provider.token('carol', AUDIENCE)}")
    assert before.groups == {"reviewers", "devs"} and after.groups == {"devs"}


async def test_an_introspected_token_is_not_accepted_past_its_exp_even_while_cached() -> None:
    from mcp_guard.auth.discovery import FetchPolicy
    from mcp_guard.auth.introspection import Introspector

    with start_provider(opaque_resources=[AUDIENCE]) as provider:
        now = [time.time()]
        introspector = Introspector(
            f"{provider.issuer}/token/introspection", FetchPolicy.for_issuer(provider.issuer),
            (provider.introspector_id, provider.introspector_secret), issuer=provider.issuer, audience=AUDIENCE,
            cache_s=30.0, clock=lambda: now[0],
        )
        token = provider.token("bob", AUDIENCE, ttl=10)
        digest = hashlib.sha256(token.encode()).digest()
        with anyio.fail_after(10):
            claims = await introspector.introspect(token, digest)
            assert claims["sub"] == "bob"
            now[0] = float(claims["exp"]) + 1  # within the 30 s cache time, past the token's exp
            with pytest.raises(AuthRefused, match="not active"):
                await introspector.introspect(token, digest)

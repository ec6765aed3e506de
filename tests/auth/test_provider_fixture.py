"""The OpenID provider fixture itself: its real endpoints and its control routes behave as documented."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlparse

import httpx

from tests.oidc_provider import OidcProvider, start_provider

AUDIENCE = "https://guard.example/mcp"


def _segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_minted_token_is_an_at_jwt_for_the_audience_with_the_users_groups(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice", AUDIENCE, scope="mcp:tools mcp:read", groups=["devs"])
    header, claims = _segment(token, 0), _segment(token, 1)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    assert claims["aud"] == AUDIENCE and claims["iss"] == oidc_provider.issuer
    assert claims["sub"] == "alice" and claims["groups"] == ["devs"] and claims["scope"] == "mcp:tools mcp:read"
    kids = [key["kid"] for key in httpx.get(f"{oidc_provider.issuer}/jwks").json()["keys"]]
    assert header["kid"] in kids


def test_rotation_signs_with_a_new_kid_that_the_jwks_then_lists(oidc_provider: OidcProvider) -> None:
    before = _segment(oidc_provider.token("alice", AUDIENCE), 0)["kid"]
    kid = oidc_provider.rotate()
    after = _segment(oidc_provider.token("alice", AUDIENCE), 0)["kid"]
    kids = [key["kid"] for key in httpx.get(f"{oidc_provider.issuer}/jwks").json()["keys"]]
    assert after == kid != before and kid in kids and before in kids


def test_client_credentials_through_the_token_endpoint_gives_a_jwt_bound_to_the_resource(
    oidc_provider: OidcProvider,
) -> None:
    answer = oidc_provider.client_credentials(AUDIENCE, scope="mcp:tools")
    assert _segment(answer["access_token"], 1)["aud"] == AUDIENCE


def test_opaque_token_is_introspected_active_then_inactive_once_revoked() -> None:
    opaque = "https://opaque.example/mcp"
    with start_provider(opaque_resources=[opaque]) as provider:
        token = provider.token("bob", opaque, groups=["ops"])
        assert token.count(".") == 0
        auth = (provider.introspector_id, provider.introspector_secret)
        url = f"{provider.issuer}/token/introspection"
        active = httpx.post(url, data={"token": token}, auth=auth).json()
        assert active["active"] is True and active["sub"] == "bob" and active["aud"] == opaque
        assert active["groups"] == ["ops"]
        assert provider.revoke(token)
        assert httpx.post(url, data={"token": token}, auth=auth).json() == {"active": False}


def test_authorization_code_with_pkce_through_the_dev_login_form() -> None:
    redirect = "http://127.0.0.1:9/cb"
    with start_provider(redirect_uris=[redirect], users={"carol": {"groups": ["reviewers"]}}) as provider:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "client_id": provider.client_id, "response_type": "code", "redirect_uri": redirect,
            "scope": "openid groups", "state": "s1", "nonce": "n1",
            "code_challenge": challenge, "code_challenge_method": "S256",
        }
        with httpx.Client(base_url=provider.issuer, follow_redirects=False) as http:
            location = http.get("/auth", params=query).headers["location"]
            for submission in ({"prompt": "login", "login": "carol"}, {"prompt": "consent"}):
                page = http.get(urljoin(provider.issuer, location)).text
                action = re.search(r'action="([^"]+)"', page).group(1)  # type: ignore[union-attr]
                answer = http.post(urljoin(provider.issuer, action), data=submission)
                location = http.get(urljoin(provider.issuer, answer.headers["location"])).headers["location"]
            assert location.startswith(redirect)
            code = parse_qs(urlparse(location).query)["code"][0]
            tokens = http.post("/token", auth=(provider.client_id, provider.client_secret), data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "code_verifier": verifier,
            }).json()
        id_token = _segment(tokens["id_token"], 1)
        assert id_token["sub"] == "carol" and id_token["nonce"] == "n1" and id_token["groups"] == ["reviewers"]

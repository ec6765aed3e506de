"""The review page's sign-in fetches from its provider as the callers' checks do (auth/discovery):
a provider, or an endpoint its discovery document names, on a private or cloud metadata address
is refused (private ones allowed only on request, metadata never), a redirect hop to the metadata
service is refused, a request carrying a bearer token is not redirected, and an ID token must be
signed by an asymmetric key of the JWKS, for the algorithm it was published for."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mcp_guard.cli import signin as cli_signin
from mcp_guard.auth.discovery import FetchPolicy, address_problem, is_loopback_host
from mcp_guard.cli.support import secret_file
from mcp_guard.errors import ConfigError
from mcp_guard.web.oidc_rp import OidcError, RelyingParty
from tests.web.test_oidc_signin_edges import hostile_provider  # noqa: F401  (fixture)

pytestmark = pytest.mark.anyio

CALLBACK = "http://127.0.0.1:9/cb"


def review_serve(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    argv = [
        sys.executable, "-m", "mcp_guard", "review", "serve", "--port", "0",
        "--reviewer-oidc-client-id", "c", "--reviewer-oidc-client-secret-file", str(secret),
        "--reviewer-public-url", "https://review.example", "--reviewer-group", "sec", *options,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "issuer, refusal",
    [
        ("https://10.0.0.5/realms/staff", "a private address"),
        ("https://[::ffff:192.168.1.10]", "a private address"),
        ("https://[fe80::1]", "a link-local address"),
        ("https://169.254.169.254", "a cloud metadata address"),
        ("http://idp.example", "plain http"),
    ],
)
def test_a_reviewer_issuer_no_fetch_may_reach_is_refused_at_start(
    issuer: str, refusal: str, tmp_path: Path, guard_home: Path
) -> None:
    done = review_serve(tmp_path, "--reviewer-oidc-issuer", issuer)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and refusal in lines[0], done.stderr
    assert "--reviewer-oidc-issuer" in lines[0] and "s3cret" not in done.stderr
    if refusal in ("a private address", "a link-local address"):
        assert "give --reviewer-oidc-allow-private-issuer" in lines[0]  # the way out is named


@pytest.mark.parametrize("issuer", ["https://169.254.169.254", "https://[::ffff:169.254.169.254]/x", "https://[fd00:ec2::254]"])
def test_the_cloud_metadata_service_is_never_a_reviewer_issuer_even_with_private_allowed(
    issuer: str, tmp_path: Path, guard_home: Path
) -> None:
    done = review_serve(tmp_path, "--reviewer-oidc-issuer", issuer, "--reviewer-oidc-allow-private-issuer")
    assert done.returncode == 2 and "a cloud metadata address" in done.stderr, done.stderr
    assert "allow-private" not in done.stderr  # no hint that an option would let it through


def test_an_internal_provider_on_a_private_address_is_accepted_when_allowed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    parser = argparse.ArgumentParser()
    cli_signin.add_options(parser)
    argv = [
        "--reviewer-oidc-issuer", "https://10.0.0.5/realms/staff", "--reviewer-oidc-client-id", "c",
        "--reviewer-oidc-client-secret-file", str(secret), "--reviewer-public-url", "https://review.example",
        "--reviewer-group", "sec",
    ]
    with pytest.raises(ConfigError, match="a private address"):
        cli_signin.page_options(parser.parse_args(argv), lambda: None)
    settings = cli_signin.page_options(
        parser.parse_args([*argv, "--reviewer-oidc-allow-private-issuer"]), lambda: None
    )["signin"]
    assert settings.allow_private_issuer and settings.issuer == "https://10.0.0.5/realms/staff"
    rp = RelyingParty(settings.issuer, settings.client_id, settings.client_secret, CALLBACK, allow_private=True)
    assert rp.policy.allow_private and not rp.policy.allow_loopback


@pytest.mark.parametrize(
    "mode, refusal, even_when_allowed",
    [
        ("private-token", "10.0.0.5 is a private address", False),
        ("mapped-private-userinfo", "::ffff:10.0.0.5 is a private address", False),
        ("private-authorize", "192.168.1.10 is a private address", False),
        ("metadata-jwks", "169.254.169.254 is a cloud metadata address", True),
        ("metadata-userinfo", "::ffff:169.254.169.254 is a cloud metadata address", True),
        ("metadata-end-session", "169.254.169.254 is a cloud metadata address", True),
        ("redirect-metadata", "resolves to 169.254.169.254, a cloud metadata address", True),
    ],
)
async def test_endpoints_the_discovery_document_names_on_forbidden_addresses_are_refused(
    hostile_provider: Any, mode: str, refusal: str, even_when_allowed: bool  # noqa: F811
) -> None:
    base, _ = hostile_provider
    for allow_private in (False, True):
        rp = RelyingParty(f"{base}/{mode}", "client", "secret", CALLBACK, allow_private=allow_private)
        with anyio.fail_after(30):
            if allow_private and not even_when_allowed:
                # An internal provider may keep its endpoints on the private network (none is fetched from here).
                assert "code_challenge=" in await rp.authorization_url("state", "nonce", "v" * 43, "openid")
                continue
            with pytest.raises(OidcError, match=refusal):
                await rp.authorization_url("state", "nonce", "v" * 43, "openid")


async def test_the_honest_provider_is_usable_so_the_refusals_above_are_about_the_addresses(
    hostile_provider: Any,  # noqa: F811
) -> None:
    base, _ = hostile_provider
    rp = RelyingParty(f"{base}/honest", "client", "secret", CALLBACK)
    with anyio.fail_after(30):
        url = await rp.authorization_url("state", "nonce", "v" * 43, "openid")
        assert url.startswith(f"{base}/honest/auth?") and "code_challenge_method=S256" in url
        assert (await rp.userinfo("an-access-token", "alice"))["sub"] == "alice"


async def test_a_userinfo_request_carrying_the_access_token_is_not_redirected(hostile_provider: Any) -> None:  # noqa: F811
    base, _ = hostile_provider
    rp = RelyingParty(f"{base}/userinfo-redirect", "client", "secret", CALLBACK)
    with anyio.fail_after(30), pytest.raises(OidcError, match="carrying credentials; not followed") as caught:
        await rp.userinfo("an-access-token", "alice")
    assert not caught.value.gone  # a provider misbehaving is not the reviewer's access ending
    assert "an-access-token" not in str(caught.value)


def _by_hand(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A JWT put together here: PyJWT itself refuses a public key as an HMAC secret, or a kid that is not a string."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}"
    return f"{signed}.{part(sign(signed.encode()))}"


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    return _by_hand({"alg": "HS256", "kid": "k1"}, claims, lambda data: hmac.new(secret, data, hashlib.sha256).digest())


async def test_id_tokens_under_the_providers_own_key_with_another_algorithm_are_refused(
    hostile_provider: Any,  # noqa: F811
) -> None:
    base, key = hostile_provider
    issuer = f"{base}/honest"
    rp = RelyingParty(issuer, "review-client", "secret", CALLBACK)
    now = int(time.time())
    claims = {"iss": issuer, "aud": "review-client", "sub": "alice", "iat": now, "exp": now + 300, "nonce": "n"}
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    public_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()).encode()
    forged = {
        "HS256 keyed with the public key's PEM": _hs256(claims, public_pem),
        "HS256 keyed with the public JWK": _hs256(claims, public_jwk),
        "alg none": jwt.encode(claims, None, "none", headers={"kid": "k1"}),  # type: ignore[arg-type]
        "PS256 under a key published for RS256": jwt.encode(claims, key, "PS256", headers={"kid": "k1"}),
        "ES256 under an RSA kid": jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256",
                                             headers={"kid": "k1"}),
        "a kid that is not a string": _by_hand(
            {"alg": "RS256", "kid": ["k1"]}, claims, lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        ),
    }
    with anyio.fail_after(30):
        assert (await rp.check_id_token(jwt.encode(claims, key, "RS256", headers={"kid": "k1"}), "n"))["sub"] == "alice"
        for what, token in forged.items():
            with pytest.raises(OidcError):
                await rp.check_id_token(token, "n")
                pytest.fail(f"{what} was accepted")


def test_loopback_that_may_be_trusted_is_this_machine_only() -> None:
    """Plain HTTP and a loopback issuer's leeway are for this machine: an IPv4-mapped 127.x stays
    here, but NAT64 and 6to4 forms of it go to a gateway, and count as loopback nowhere."""
    assert is_loopback_host("localhost") and is_loopback_host("127.0.0.2") and is_loopback_host("::1")
    assert is_loopback_host("::ffff:127.0.0.1") and is_loopback_host("[::1]")
    for host in ("64:ff9b::7f00:1", "2002:7f00:1::", "127.0.0.1.nip.io", "10.0.0.1", "0.0.0.0"):
        assert not is_loopback_host(host), host
    loopback_issuer = FetchPolicy(allow_loopback=True, allow_private=True)
    assert address_problem("::ffff:127.0.0.1", loopback_issuer) is None
    assert "translation" in str(address_problem("64:ff9b::7f00:1", loopback_issuer))


@pytest.mark.parametrize("public", ["http://[64:ff9b::7f00:1]:8", "http://10.0.0.1:8", "http://127.0.0.1.nip.io"])
def test_a_plain_http_review_address_must_be_this_machine(public: str, tmp_path: Path, guard_home: Path) -> None:
    done = review_serve(tmp_path, "--reviewer-oidc-issuer", "https://idp.example", "--reviewer-public-url", public)
    assert done.returncode == 2 and "HTTPS only" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "content, complaint", [(b"", "the file is empty"), (b" \n\t\n", "the file is empty"), (b"\xff\xfe\x00", "UTF-8")]
)
def test_a_secret_file_that_holds_no_secret_is_a_clear_error_naming_the_option(
    content: bytes, complaint: str, tmp_path: Path
) -> None:
    path = tmp_path / "secret"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        secret_file(str(path), "--reviewer-oidc-client-secret-file")
    assert str(caught.value).startswith(f"--reviewer-oidc-client-secret-file {path}:") and complaint in str(caught.value)
    with pytest.raises(ConfigError, match=r"--introspection-secret-file .*missing: No such file"):
        secret_file(str(tmp_path / "missing"), "--introspection-secret-file")
    path.write_text("  s3cret \n")
    assert secret_file(str(path), "--introspection-secret-file") == "s3cret"


async def test_a_key_the_provider_retired_stops_counting_once_its_discovery_is_due_again() -> None:
    from tests.oidc_provider import start_provider

    with start_provider(redirect_uris=(CALLBACK,)) as provider:
        rp = RelyingParty(provider.issuer, provider.client_id, provider.client_secret, CALLBACK)
        with anyio.fail_after(30):
            await rp.provider()
            assert rp._jwks is not None
            retired = set(rp._jwks.keys)
            new_kid = provider.rotate(retire_old=True)
            rp._provider_at = -float("inf")  # an hour on: discovery is due again
            await rp.provider()
    assert new_kid in rp._jwks.keys and not retired & set(rp._jwks.keys), (retired, set(rp._jwks.keys))

"""Discovery fetches are SSRF-safe: private, metadata and disguised loopback addresses are refused, every hop."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import anyio
import pytest

from mcp_guard.auth.caller import AuthRefused
from mcp_guard.auth.discovery import DiscoveryError, FetchPolicy, address_problem, fetch_json
from mcp_guard.auth.oidc import OidcAuthenticator, OidcSettings, discover
from tests.conftest import FIXTURES, PY, free_port

pytestmark = pytest.mark.anyio

NOT_LOOPBACK = FetchPolicy.for_issuer("https://idp.example")


async def refusal(url: str, policy: FetchPolicy, **kwargs: object) -> str:
    with anyio.fail_after(10), pytest.raises(DiscoveryError) as caught:
        await fetch_json(url, policy, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


@pytest.mark.parametrize(
    "issuer",
    ["https://10.0.0.5", "https://192.168.1.10/realms/x", "https://172.16.0.1", "https://169.254.169.254",
     "https://[fd00:ec2::254]", "https://[fe80::1]", "https://100.64.0.1", "https://0.0.0.0"],
)
async def test_issuer_on_a_private_or_metadata_address_is_refused_before_any_connection(issuer: str) -> None:
    with anyio.fail_after(10), pytest.raises(DiscoveryError, match="not fetched"):
        await discover(issuer, FetchPolicy.for_issuer(issuer))


@pytest.mark.parametrize(
    "url",
    ["https://localhost:9/jwks", "https://[::ffff:127.0.0.1]:9/jwks", "https://[::ffff:7f00:1]:9/jwks",
     "https://2130706433:9/jwks", "https://127.1:9/jwks", "https://[64:ff9b::7f00:1]:9/jwks",
     "https://[::1]:9/jwks", "http://[::ffff:127.0.0.1]:9/jwks"],
)
async def test_loopback_in_any_form_is_refused_when_the_issuer_is_not_loopback(url: str) -> None:
    problem = await refusal(url, NOT_LOOPBACK)
    assert "loopback" in problem


def test_private_addresses_pass_only_when_allowed_and_metadata_never() -> None:
    allowed = FetchPolicy(allow_private=True)
    assert address_problem("10.0.0.5", NOT_LOOPBACK) == "a private address"
    assert address_problem("10.0.0.5", allowed) is None
    assert address_problem("::ffff:10.0.0.5", NOT_LOOPBACK) == "a private address"
    assert address_problem("169.254.169.254", allowed) == "a cloud metadata address"
    assert address_problem("::ffff:169.254.169.254", allowed) == "a cloud metadata address"
    assert address_problem("fd00:ec2::254", allowed) == "a cloud metadata address"
    assert address_problem("93.184.215.14", NOT_LOOPBACK) is None


@pytest.mark.parametrize("url", ["ftp://idp.example/x", "file:///etc/passwd", "https://user:pw@idp.example/x",
                                 "http://idp.example/x", "https://idp.example:99999/x", "https://[::1/x",
                                 "https://idp.example:abc/x", "https://xn--a.example/x", "https:///x"])
async def test_only_https_urls_without_credentials_are_fetched(url: str) -> None:
    await refusal(url, NOT_LOOPBACK)


async def test_plain_http_to_loopback_is_refused_unless_the_issuer_is_loopback(hostile: str) -> None:
    problem = await refusal(f"{hostile}/.well-known/oauth-authorization-server/mixup", NOT_LOOPBACK)
    assert "plain http" in problem


@pytest.mark.parametrize("case", ["redirect-metadata", "redirect-http", "redirect-mapped"])
async def test_a_redirect_hop_to_a_forbidden_address_is_refused(hostile: str, case: str) -> None:
    policy = FetchPolicy.for_issuer(hostile)
    problem = await refusal(f"{hostile}/.well-known/oauth-authorization-server/{case}", policy)
    assert "169.254.169.254" in problem or "::ffff:127.0.0.1" in problem


async def test_metadata_naming_another_issuer_is_refused(hostile: str) -> None:
    with anyio.fail_after(10), pytest.raises(DiscoveryError, match="names the issuer 'https://evil.example'"):
        await discover(f"{hostile}/mixup", FetchPolicy.for_issuer(hostile))


async def test_an_issuer_with_only_openid_configuration_is_discovered(hostile: str) -> None:
    with anyio.fail_after(10):
        document = await discover(f"{hostile}/oidc-only", FetchPolicy.for_issuer(hostile))
    assert document["jwks_uri"] == f"{hostile}/oidc-only/jwks"


async def test_a_jwks_uri_on_the_metadata_service_is_never_fetched(hostile: str) -> None:
    settings = OidcSettings(issuer=f"{hostile}/jwks-metadata", audience="a", resource="http://127.0.0.1/mcp")
    auth = OidcAuthenticator(settings)
    with anyio.fail_after(10), pytest.raises(AuthRefused) as caught:
        await auth.authenticate("Bearer a.b.c")
    assert caught.value.status == 503


async def test_a_jwks_of_junk_yields_no_keys_and_refusals_not_crashes(hostile: str) -> None:
    settings = OidcSettings(issuer=f"{hostile}/junk-jwks", audience="a", resource="http://127.0.0.1/mcp")
    auth = OidcAuthenticator(settings)
    for kid in ("a", "b", "c", "d", "e"):
        for alg in ("RS256", "HS256"):
            header = base64.urlsafe_b64encode(json.dumps({"alg": alg, "kid": kid}).encode()).rstrip(b"=").decode()
            with anyio.fail_after(10), pytest.raises(AuthRefused) as caught:
                await auth.authenticate(f"Bearer {header}.e30.c2ln")
            assert caught.value.status == 401
    assert auth.jwks is not None and auth.jwks.keys == {}


async def test_an_oversized_document_is_cut_off(hostile: str) -> None:
    problem = await refusal(f"{hostile}/.well-known/oauth-authorization-server/big", FetchPolicy.for_issuer(hostile))
    assert "over" in problem


async def test_an_issuer_that_never_answers_is_given_up_on(hostile: str) -> None:
    url = f"{hostile}/.well-known/oauth-authorization-server/slow"
    problem = await refusal(url, FetchPolicy.for_issuer(hostile), timeout_s=0.5)
    assert "no answer" in problem


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for the name localhost only (not for 127.0.0.1), and its key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_connects_to_the_checked_address_and_still_verifies_the_certificate_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mcp_guard.auth import discovery

    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    discovery._tls.cache_clear()
    port = free_port()
    argv = [PY, str(FIXTURES / "hostile_issuer.py"), "--port", str(port), "--certfile", str(cert),
            "--keyfile", str(key)]
    process = await anyio.open_process(argv)
    policy = FetchPolicy(allow_loopback=True)
    try:
        with anyio.fail_after(30):
            while True:  # ready once TLS answers
                try:
                    url = f"https://localhost:{port}/.well-known/oauth-authorization-server/hello"
                    document = await fetch_json(url, policy)
                    break
                except DiscoveryError as exc:
                    if "ConnectError" not in str(exc) or "CERTIFICATE" in str(exc):
                        raise
                    await anyio.sleep(0.05)
        assert document["issuer"] == f"https://localhost:{port}/hello"
        problem = await refusal(f"https://127.0.0.1:{port}/.well-known/oauth-authorization-server/hello", policy)
        assert "CERTIFICATE_VERIFY_FAILED" in problem or "certificate" in problem.lower()
    finally:
        process.terminate()
        with anyio.move_on_after(5, shield=True):
            await process.wait()
        discovery._tls.cache_clear()

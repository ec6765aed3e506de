"""The review page over HTTPS (uvicorn serving TLS with a certificate made here): its cookies are
``__Host-``, Secure, HttpOnly and SameSite, for provider sign-in and token sign-in alike; and no
page of the review app or of the loopback approval page may be framed."""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette

from mcp_guard.approvals import Approvals, Reviewers
from mcp_guard.audit import load_key
from mcp_guard.store import open_store
from mcp_guard.web.review import ReviewApp
from mcp_guard.web.signin import SigninSettings
from mcp import Client
from tests.conftest import connect, free_port, guard, node_server
from tests.hooks.test_out_of_band import pending, policy
from tests.oidc_provider import start_provider
from tests.web.oidc_browser import browser, callback, new_context, serve_signin, sign_in
from tests.web.test_review_page import token

pytestmark = pytest.mark.anyio


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made at run time."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@asynccontextmanager
async def https_review(
    tmp_path: Path, public: str, sock: socket.socket, signin: SigninSettings | None
) -> AsyncIterator[None]:
    """The review app as `serve` builds it, behind uvicorn's TLS."""
    store = open_store()
    app = ReviewApp(
        Approvals(store), Reviewers(store), load_key(store.home, "web.key"), set(), public_url=public, signin=signin
    )
    cert_file, key_file = certificate(tmp_path)
    config = uvicorn.Config(
        Starlette(routes=app.routes()),
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.02)
        yield
        server.should_exit = True


def bound() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, int(sock.getsockname()[1])


async def test_over_https_the_provider_sign_in_cookie_is_host_prefixed_secure_and_httponly(
    tmp_path: Path, guard_home: Path
) -> None:
    sock, port = bound()
    public = f"https://localhost:{port}"
    with start_provider(redirect_uris=[callback(public)], users={"alice": {"groups": ["secops"]}}) as provider:
        signin = SigninSettings(
            issuer=provider.issuer,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            public_url=public,
            reviewer_groups=frozenset({"secops"}),
            user_claim="sub",
        )
        async with https_review(tmp_path, public, sock, signin), browser() as chromium:
            with anyio.fail_after(60):
                context = await new_context(chromium, ignore_https_errors=True)
                page = await context.new_page()
                await sign_in(page, public, "alice")
                assert "alice (secops)" in await page.inner_text("header")
                cookies = {c["name"]: c for c in await context.cookies()}
                assert "mcp_guard_review" not in cookies
                session = cookies["__Host-mcp_guard_review"]
                assert session["secure"] and session["httpOnly"] and session["sameSite"] in ("Lax", "Strict")
                assert session["path"] == "/" and session["domain"] == "localhost"  # host-only: no Domain attribute


async def test_over_https_a_token_sign_in_cookie_is_host_prefixed_too(tmp_path: Path, guard_home: Path) -> None:
    sock, port = bound()
    public = f"https://localhost:{port}"
    alice = token(guard_home, "alice", "secops")
    async with https_review(tmp_path, public, sock, None):
        with anyio.fail_after(30):
            async with httpx.AsyncClient(verify=False) as http:  # noqa: S501  # the certificate is the test's own
                done = await http.post(f"{public}/review/login", data={"token": alice}, headers={"Origin": public})
    cookie = done.headers["set-cookie"]
    assert done.status_code == 303 and cookie.startswith("__Host-mcp_guard_review=")
    assert (
        all(part in cookie for part in ("Secure", "HttpOnly", "SameSite=strict", "Path=/")) and "Domain" not in cookie
    )


async def test_no_page_of_the_review_app_may_be_framed(tmp_path: Path, guard_home: Path) -> None:
    sock, port = bound()
    public = f"https://localhost:{port}"
    pages = [
        ("GET", "/review"),
        ("GET", "/review/login"),
        ("POST", "/review/login"),
        ("POST", "/review/logout"),
        ("POST", "/review/r1/decide"),
        ("GET", "/api/review/pending"),
        ("GET", "/review/oidc/callback?state=x&code=y"),
    ]
    with start_provider(redirect_uris=[callback(public)]) as provider:
        signin = SigninSettings(
            issuer=provider.issuer,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            public_url=public,
            reviewer_groups=frozenset({"secops"}),
        )
        async with https_review(tmp_path, public, sock, signin):
            with anyio.fail_after(30):
                async with httpx.AsyncClient(verify=False) as http:  # noqa: S501
                    answers = [
                        await http.request(method, public + path, headers={"Origin": public}) for method, path in pages
                    ]
                    answers.append(await http.get(f"{public}/review/oidc/start"))
    for answer in answers:
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], answer.url
        assert answer.headers["x-frame-options"] == "DENY", answer.url


async def test_the_loopback_approval_page_may_not_be_framed(tmp_path: Path, guard_home: Path) -> None:
    with anyio.fail_after(60):
        async with connect(
            guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path, wait=40))
        ) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_write, client, tmp_path)
                url = (await pending(guard_home))["page_url"]
                async with httpx.AsyncClient() as http:
                    answers = [
                        await http.get(url),
                        await http.get(url.split("?")[0]),
                        await http.post(url.split("?")[0] + "/decide", data={"decision": "deny"}),
                    ]
                    decide = await http.get(url)
                    csrf = decide.text.split("name='csrf' value='")[1].split("'")[0]
                    answers.append(
                        await http.post(
                            url.split("?")[0] + "/decide",
                            headers={"Origin": url.split("/r/")[0]},
                            data={"t": url.split("t=")[1], "csrf": csrf, "decision": "deny"},
                        )
                    )
    for answer in answers:
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], (answer.status_code, answer.url)
        assert answer.headers["x-frame-options"] == "DENY"


async def _write(client: Any, tmp_path: Path) -> None:
    await client.call_tool("write_file", {"path": str(tmp_path / "out.txt"), "content": "x"})


async def test_clients_are_offered_the_review_link_at_the_configured_public_url(
    tmp_path: Path, guard_home: Path
) -> None:
    offered: list[str] = []

    async def on_elicit(ctx: Any, params: Any) -> Any:
        import mcp_types as types

        offered.append(str(getattr(params, "url", "")))
        return types.ElicitResult(action="accept")

    port = free_port()
    options = ["--reviewer-public-url", "https://review.example.org"]
    async with serve_signin(tmp_path, port, options):
        with anyio.fail_after(60):
            async with Client(
                f"http://127.0.0.1:{port}/mcp", mode="legacy", cache=None, elicitation_callback=on_elicit
            ) as client:  # type: ignore[arg-type]
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.call_tool, "write_file", {"path": str(tmp_path / "x.txt"), "content": "x"})
                    while not offered:
                        await anyio.sleep(0.05)
                    tg.cancel_scope.cancel()
    assert offered[0].startswith("https://review.example.org/review#req-")

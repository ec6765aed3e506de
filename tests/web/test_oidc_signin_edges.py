"""The review page's provider sign-in at its edges, over plain HTTP against the real provider: a
login left for more than ten minutes, a provider that cannot be reached when a re-check is due,
ID tokens the provider did not sign, the login and session records on both stores, and sign-in
options that do not fit together."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from mcp import Client
from mcp_guard.store import open_store
from mcp_guard.web.idp_sessions import LOGIN_S, IdpSessions
from mcp_guard.web.oidc_rp import OidcError, RelyingParty
from tests.conftest import FIXTURES
from tests.oidc_provider import start_provider
from tests.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.web.oidc_browser import http_login
from tests.web.test_oidc_signin import Setup

pytestmark = pytest.mark.anyio


async def test_a_login_older_than_ten_minutes_is_refused_at_its_callback(tmp_path: Path, guard_home: Path) -> None:
    setup = Setup(tmp_path, guard_home)
    with setup.provider() as provider:
        async with setup.guard(provider):
            with anyio.fail_after(60):
                async with httpx.AsyncClient() as http:
                    held = await http_login(http, setup.public, "alice")
                    store = open_store()  # the guard's own SQLite file: time moves by editing when the login began
                    store.execute("UPDATE reviewer_logins SET created = created - ?", (LOGIN_S + 1,))
                    late = await http.get(held)
    assert late.status_code == 400 and "has expired" in late.text
    assert "mcp_guard_review=" not in late.headers.get("set-cookie", "")


async def test_a_decision_due_for_a_recheck_is_refused_while_the_provider_is_down(
    tmp_path: Path, guard_home: Path
) -> None:
    setup = Setup(tmp_path, guard_home, recheck_s=0)
    with setup.provider() as provider:
        async with setup.guard(provider):
            with anyio.fail_after(90):
                async with Client(f"{setup.public}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(setup.call, client)
                        rid = await setup.waiting_call()
                        async with httpx.AsyncClient() as http:
                            assert (await http.get(await http_login(http, setup.public, "alice"))).status_code == 303
                            queue = await http.get(f"{setup.public}/review")
                            found = re.search(r"name='csrf' value='([^']+)'", queue.text)
                            assert found is not None
                            csrf = found.group(1)
                            provider.stop()
                            form = {"csrf": csrf, "decision": "approve"}
                            refused = await http.post(
                                f"{setup.public}/review/{rid}/decide", data=form, headers={"Origin": setup.public}
                            )
                            assert refused.status_code == 503 and "cannot be reached" in refused.text
                            bearer = {"Authorization": f"Bearer {setup.bob}"}
                            assert (await http.get(f"{setup.public}/api/review/{rid}", headers=bearer)).json()[
                                "state"
                            ] == "pending"
                            await http.post(f"{setup.public}/api/review/{rid}/deny", headers=bearer)
    assert setup.result[0].is_error and not (tmp_path / "x.txt").exists()


async def test_id_tokens_the_provider_did_not_sign_are_refused() -> None:
    with start_provider() as provider:
        rp = RelyingParty(provider.issuer, provider.client_id, provider.client_secret, "http://127.0.0.1:9/cb")
        kid = httpx.get(f"{provider.issuer}/jwks").json()["keys"][0]["kid"]
        now = int(time.time())
        claims = {
            "iss": provider.issuer,
            "aud": provider.client_id,
            "sub": "alice",
            "iat": now,
            "exp": now + 300,
            "nonce": "n",
            "groups": ["secops"],
        }
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = {
            "another key under the provider's kid": jwt.encode(claims, stranger, "RS256", headers={"kid": kid}),
            "a kid the provider never published": jwt.encode(claims, stranger, "RS256", headers={"kid": "mallory"}),
            "HS256 with the client secret": jwt.encode(claims, provider.client_secret, "HS256", headers={"kid": kid}),
            "alg none": jwt.encode(claims, None, "none", headers={"kid": kid}),  # type: ignore[arg-type]
        }
        with anyio.fail_after(30):
            for what, token in forged.items():
                with pytest.raises(OidcError):
                    await rp.check_id_token(token, "n")
                    pytest.fail(f"{what} was accepted")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_logins_count_once_in_their_browser_and_sessions_end_on_both_stores(
    kind: str, guard_home: Path, request: pytest.FixtureRequest
) -> None:
    store = open_store(
        request.getfixturevalue("postgres_url") if kind == "postgresql" else str(guard_home / "guard.db")
    )
    try:
        logins = IdpSessions(store, b"k" * 32)
        state = logins.begin("browser-a")
        assert not logins.consume(state, "browser-b") and not logins.consume("forged", "browser-a")
        assert logins.consume(state, "browser-a") and not logins.consume(state, "browser-a")
        assert logins.derived("pkce", state) != logins.derived("nonce", state)
        refresh = "rt-" + "Q" * 20  # a canary: the store must not hold it readable
        secret = logins.open(
            "alice", ("secops",), "https://idp.example", "alice", time.time() + 60, {"refresh": refresh}
        )
        found = logins.find(secret)
        assert found is not None and found.roles == ("secops",) and found.tokens["refresh"] == refresh
        assert refresh not in repr(store.query("SELECT * FROM reviewer_idp_sessions"))
        assert IdpSessions(store, b"x" * 32).find(secret) is None  # another web key opens nothing
        logins.end_secret(secret)
        assert logins.find(secret) is None
    finally:
        store.close()


@pytest.mark.parametrize(
    "options, complaint",
    [
        (["--reviewer-oidc-issuer", "https://idp.example"], "together"),
        (
            [
                "--reviewer-oidc-issuer",
                "https://idp.example",
                "--reviewer-oidc-client-id",
                "c",
                "--reviewer-oidc-client-secret-file",
                "SECRET",
                "--reviewer-public-url",
                "http://review.example",
            ],
            "HTTPS only",
        ),
        (["--reviewer-public-url", "https://review.example/review"], "without a path"),
        (
            [
                "--reviewer-oidc-issuer",
                "https://idp.example",
                "--reviewer-oidc-client-id",
                "c",
                "--reviewer-oidc-client-secret-file",
                "SECRET",
                "--reviewer-public-url",
                "https://review.example",
            ],
            "reviewer groups",
        ),
    ],
    ids=["incomplete", "plain-http-off-loopback", "public-url-with-path", "no-reviewer-group"],
)
def test_sign_in_options_that_do_not_fit_together_are_a_usage_error(
    options: list[str], complaint: str, tmp_path: Path, guard_home: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    argv = [
        sys.executable,
        "-m",
        "mcp_guard",
        "review",
        "serve",
        "--port",
        "0",
        *[str(secret) if o == "SECRET" else o for o in options],
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and complaint in done.stderr, done.stderr


def test_callers_and_reviewers_of_one_provider_must_be_named_by_one_claim(tmp_path: Path, guard_home: Path) -> None:
    """No-self-approval compares names: a caller named by ``sub`` who is a reviewer named by
    ``preferred_username`` would otherwise be a second person, free to approve their own call."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    argv = [
        sys.executable, "-m", "mcp_guard", "serve", "--port", "0", "--auth", "oidc",
        "--issuer", "https://idp.example", "--audience", "https://guard.example/mcp",
        "--reviewer-oidc-issuer", "https://idp.example/", "--reviewer-oidc-client-id", "c",
        "--reviewer-oidc-client-secret-file", str(secret), "--reviewer-public-url", "https://review.example",
        "--reviewer-group", "sec", "--reviewer-user-claim", "preferred_username", "--", sys.executable, "-c", "pass",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--reviewer-user-claim preferred_username differs" in done.stderr, done.stderr


async def test_with_offline_access_each_recheck_refreshes_until_the_group_is_gone(
    tmp_path: Path, guard_home: Path
) -> None:
    setup = Setup(tmp_path, guard_home, recheck_s=0, options=("--reviewer-oidc-scope", "openid groups offline_access"))
    with setup.provider() as provider:
        async with setup.guard(provider):
            with anyio.fail_after(60):
                async with httpx.AsyncClient() as http:
                    assert (await http.get(await http_login(http, setup.public, "alice"))).status_code == 303
                    sessions = IdpSessions(open_store(), bytes.fromhex((guard_home / "web.key").read_text().strip()))
                    for _ in range(3):  # each request past the interval refreshes, then reads userinfo
                        assert (await http.get(f"{setup.public}/review")).status_code == 200
                        found = sessions.find(http.cookies["mcp_guard_review"])
                        assert found is not None and found.tokens["refresh"]
                    provider.set_user("alice", [])
                    gone = await http.get(f"{setup.public}/review")
    assert gone.status_code == 303 and gone.headers["location"] == "/review/login"


@pytest.fixture
def hostile_provider(tmp_path: Path) -> Any:
    """fixtures/hostile_oidc_provider.py on a free port, and the private key behind its JWKS."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "hostile-key.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    process = subprocess.Popen(
        [sys.executable, str(FIXTURES / "hostile_oidc_provider.py"), str(pem)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}", key
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    "mode, complaint",
    [
        ("other-issuer", "names the issuer 'https://idp.example'"),
        ("plain-http", "plain http is allowed only on loopback"),
        ("redirect", r"169\.254\.169\.254/latest/meta-data/: plain http"),  # the hop is checked, and refused
        ("huge", "answer over"),
        ("not-json", "not a JSON object"),
        ("no-s256", "PKCE with S256"),
    ],
)
async def test_a_provider_whose_discovery_cannot_be_trusted_is_not_used(
    hostile_provider: Any, mode: str, complaint: str
) -> None:
    base, _ = hostile_provider
    rp = RelyingParty(f"{base}/{mode}", "client", "secret", "http://127.0.0.1:9/cb")
    with anyio.fail_after(30), pytest.raises(OidcError, match=complaint):
        await rp.authorization_url("state", "nonce", "v" * 43, "openid")


async def test_id_tokens_signed_by_the_issuers_own_key_still_need_every_claim_right(hostile_provider: Any) -> None:
    base, key = hostile_provider
    issuer = f"{base}/honest"
    rp = RelyingParty(issuer, "review-client", "secret", "http://127.0.0.1:9/cb")
    now = int(time.time())
    good = {"iss": issuer, "aud": "review-client", "sub": "alice", "iat": now, "exp": now + 300, "nonce": "n1"}
    wrong = {
        "another audience": {"aud": "some-other-client"},
        "another issuer": {"iss": "https://idp.example"},
        "expired": {"exp": now - 120, "iat": now - 600},
        "no nonce": {"nonce": None},
        "another login's nonce": {"nonce": "n2"},
        "several audiences, not issued to us": {"aud": ["review-client", "other"], "azp": "other"},
        "no subject": {"sub": None},
    }

    def sign(claims: dict[str, Any]) -> str:
        return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, "RS256", headers={"kid": "k1"})

    with anyio.fail_after(30):
        assert (await rp.check_id_token(sign(good), "n1"))["sub"] == "alice"  # the baseline passes
        for what, change in wrong.items():
            with pytest.raises(OidcError):
                await rp.check_id_token(sign({**good, **change}), "n1")
                pytest.fail(f"an ID token with {what} was accepted")

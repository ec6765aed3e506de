"""Helpers for the review page's sign-in tests: a guard configured for the real OpenID provider,
and headless Chromium going through the provider's own login and consent forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.conftest import PY, background, node_server
from tests.oidc_provider import OidcProvider
from tests.web.test_review_page import POLICY, chromium

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# The provider's pages @import a web font; this machine has no internet, and the test must not wait on it.
OFF_MACHINE = re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])")


def callback(public: str) -> str:
    return f"{public}/review/oidc/callback"


def signin_options(provider: OidcProvider, public: str, secret_file: Path, recheck_s: float = 60) -> list[str]:
    secret_file.write_text(provider.client_secret + "\n")
    return [
        "--reviewer-public-url",
        public,
        "--reviewer-oidc-issuer",
        provider.issuer,
        "--reviewer-oidc-client-id",
        provider.client_id,
        "--reviewer-oidc-client-secret-file",
        str(secret_file),
        "--reviewer-user-claim",
        "sub",
        "--reviewer-recheck-s",
        str(recheck_s),
    ]


def serve_signin(tmp_path: Path, port: int, options: Sequence[str]) -> Any:
    """``serve`` around the filesystem server, writes reviewed by secops, carol the requester."""
    policy = tmp_path / "reviewed.yaml"
    policy.write_text(POLICY)
    argv = [
        PY,
        "-m",
        "mcp_guard",
        "serve",
        "--policy",
        str(policy),
        "--port",
        str(port),
        *options,
        "--",
        *node_server("server-filesystem", str(tmp_path)),
    ]
    return background(argv, f"http://127.0.0.1:{port}/healthz", env={"MCP_GUARD_USER": "carol"})


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    path = chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=path, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def new_context(launched: Any, **options: Any) -> Any:
    context = await launched.new_context(**options)
    await context.route(OFF_MACHINE, lambda route: route.abort())
    return context


async def provider_login(page: Any, login: str) -> None:
    """At the provider: its login form (any password), then its consent form."""
    await page.wait_for_selector("input[name=login]")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", "any password")
    await page.click("button[type=submit]")
    await page.wait_for_selector("button[type=submit]:has-text('Continue')")
    await page.click("button[type=submit]")


async def sign_in(page: Any, public: str, login: str) -> None:
    """Through the review page's button to the provider and back to the queue."""
    await page.goto(f"{public}/review/login")
    await page.click("text=Sign in with your organisation's account")
    await provider_login(page, login)
    await page.wait_for_url(f"{public}/review**")


async def http_login(http: Any, public: str, login: str) -> str:
    """The whole login as plain HTTP (for what a browser cannot be made to do): the callback URL
    the provider sends back, not yet followed. ``http`` keeps the cookies, as a browser would."""
    url = f"{public}/review/oidc/start"
    response = await http.get(url)
    for _ in range(12):
        if response.status_code in (302, 303):
            url = str(response.url.join(response.headers["location"]))
            if url.startswith(callback(public)):
                return url
            response = await http.get(url)
            continue
        assert response.status_code == 200, (response.status_code, response.text[:300])
        action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
        assert action is not None, response.text[:300]
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
        if 'name="login"' in response.text:
            fields.update(login=login, password="any password")
        response = await http.post(str(response.url.join(action.group(1))), data=fields)
    raise AssertionError("the provider never sent the browser back")

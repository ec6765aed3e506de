"""Reviewers sign in on the review page through a real OpenID provider (npm oidc-provider), in
headless Chromium: only members of a reviewer group get a session, each login's state, code and
nonce count once and only for the browser that began it, and a reviewer the provider no longer
vouches for cannot decide after the next re-check."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import anyio
import httpx
import pytest

from mcp import Client
from mcp_guard.audit import Audit
from mcp_guard.store import open_store
from tests.conftest import free_port
from tests.oidc_provider import OidcProvider, start_provider
from tests.web.oidc_browser import (
    browser,
    callback,
    http_login,
    new_context,
    provider_login,
    serve_signin,
    sign_in,
    signin_options,
)
from tests.web.test_review_page import token, wait_for_card

pytestmark = pytest.mark.anyio

USERS = {"alice": {"groups": ["secops"]}, "mallory": {"groups": ["marketing"]}}


class Setup:
    """The provider (its redirect URIs naming this guard), the guard, and a call waiting for review."""

    def __init__(self, tmp_path: Path, guard_home: Path, recheck_s: float = 60, options: tuple[str, ...] = ()) -> None:
        self.tmp_path, self.home, self.recheck_s, self.options = tmp_path, guard_home, recheck_s, options
        self.port = free_port()
        self.public = f"http://localhost:{self.port}"
        self.result: list[Any] = []
        self.bob = ""  # a reviewer token: still good for the API

    async def waiting_call(self) -> str:
        """The id of the reviewed write ``call`` started, once it waits."""
        self.bob = token(self.home, "bob", "secops")
        async with httpx.AsyncClient() as http:
            return str((await wait_for_card(http, f"{self.public}/api/review/pending", self.bob))["id"])

    def provider(self) -> Any:
        return start_provider(
            redirect_uris=[callback(self.public)],
            post_logout_redirect_uris=[f"{self.public}/review/login"],
            users=USERS,
        )

    def guard(self, provider: OidcProvider) -> Any:
        options = signin_options(provider, self.public, self.tmp_path / "client-secret", self.recheck_s)
        return serve_signin(self.tmp_path, self.port, [*options, *self.options])

    async def call(self, client: Client) -> None:
        self.result.append(await client.call_tool("write_file", {"path": str(self.tmp_path / "x.txt"), "content": "x"}))


async def test_a_reviewer_in_the_group_signs_in_at_the_provider_and_approves_in_a_browser(
    tmp_path: Path, guard_home: Path
) -> None:
    setup = Setup(tmp_path, guard_home)
    with setup.provider() as provider:
        async with setup.guard(provider), browser() as chromium:
            with anyio.fail_after(90):
                async with Client(f"{setup.public}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(setup.call, client)
                        await setup.waiting_call()
                        context = await new_context(chromium)
                        page = await context.new_page()
                        await sign_in(page, setup.public, "alice")
                        await page.wait_for_selector(".card")
                        assert "alice (secops)" in await page.inner_text("header")
                        cookies = {c["name"]: c for c in await context.cookies()}
                        session = cookies["mcp_guard_review"]
                        assert session["httpOnly"] and session["sameSite"] == "Lax"
                        assert "mcp_guard_signin" not in cookies  # the login's binding is spent
                        await page.click("button.approve")
                        await page.wait_for_url("**/review?done=*")
    assert not setup.result[0].is_error
    assert (tmp_path / "x.txt").read_text() == "x"


async def test_a_user_in_no_reviewer_group_gets_no_session(tmp_path: Path, guard_home: Path) -> None:
    setup = Setup(tmp_path, guard_home)
    with setup.provider() as provider:
        async with setup.guard(provider), browser() as chromium:
            with anyio.fail_after(60):
                context = await new_context(chromium)
                page = await context.new_page()
                await sign_in(page, setup.public, "mallory")
                assert "is in no reviewer group" in await page.inner_text("body")
                assert not [c for c in await context.cookies() if c["name"] == "mcp_guard_review"]
                await page.goto(f"{setup.public}/review")
                assert page.url.endswith("/review/login")


async def test_a_replayed_callback_is_refused_and_opens_no_session(tmp_path: Path, guard_home: Path) -> None:
    setup = Setup(tmp_path, guard_home)
    with setup.provider() as provider:
        async with setup.guard(provider), browser() as chromium:
            with anyio.fail_after(60):
                context = await new_context(chromium)
                page = await context.new_page()
                seen: list[str] = []
                page.on("request", lambda r: seen.append(r.url) if "/review/oidc/callback" in r.url else None)
                await page.goto(f"{setup.public}/review/login")
                await page.click("text=Sign in with your organisation's account")
                binding = next(c["value"] for c in await context.cookies() if c["name"] == "mcp_guard_signin")
                await provider_login(page, "alice")
                await page.wait_for_url(f"{setup.public}/review")
                assert len(seen) == 1
                # The same callback, from the same browser (its binding cookie given back), a second time.
                async with httpx.AsyncClient() as http:
                    again = await http.get(seen[0], headers={"Cookie": f"mcp_guard_signin={binding}"})
                assert again.status_code == 400 and "used already" in again.text
                assert "mcp_guard_review=" not in again.headers.get("set-cookie", "")


async def test_a_forged_state_and_a_callback_carried_to_another_browser_are_refused(
    tmp_path: Path, guard_home: Path
) -> None:
    setup = Setup(tmp_path, guard_home)
    with setup.provider() as provider:
        async with setup.guard(provider):
            with anyio.fail_after(60):
                async with httpx.AsyncClient() as victim, httpx.AsyncClient() as other:
                    held = await http_login(victim, setup.public, "alice")  # caught before the guard sees it
                    await other.get(
                        f"{setup.public}/review/oidc/start"
                    )  # a login of its own: a binding cookie of its own
                    carried = await other.get(held)  # login CSRF: someone's callback in another browser
                    assert carried.status_code == 400 and "started in another browser" in carried.text
                    forged = await victim.get(_with_query(held, state=secrets.token_urlsafe(32)))
                    assert forged.status_code == 400 and "not valid here" in forged.text
                    assert not [c for c in (carried, forged) if "mcp_guard_review=" in c.headers.get("set-cookie", "")]
                    done = await victim.get(held)  # the browser that began it still completes its own login
                    assert done.status_code == 303 and done.headers["location"] == "/review", done.text
                    assert "mcp_guard_review=" in done.headers["set-cookie"]


async def test_an_id_token_from_another_login_is_refused_for_its_nonce(tmp_path: Path, guard_home: Path) -> None:
    setup = Setup(tmp_path, guard_home)
    with setup.provider() as provider:
        async with setup.guard(provider), browser() as chromium:
            with anyio.fail_after(60):
                context = await new_context(chromium)
                page = await context.new_page()

                async def other_nonce(route: Any) -> None:
                    # Same state and PKCE challenge (both visible in this URL), another login's nonce:
                    # the code this yields passes PKCE, and only the nonce can tell.
                    start = await route.fetch(max_redirects=0)
                    to = _with_query(start.headers["location"], nonce=secrets.token_urlsafe(16))
                    await route.fulfill(response=start, headers={**start.headers, "location": to})

                await context.route("**/review/oidc/start", other_nonce)
                await page.goto(f"{setup.public}/review/login")
                await page.click("text=Sign in with your organisation's account")
                await provider_login(page, "alice")
                await page.wait_for_url("**/review/oidc/callback*")
                assert "nonce is not this sign-in's" in await page.inner_text("body")
                assert not [c for c in await context.cookies() if c["name"] == "mcp_guard_review"]


async def test_a_reviewer_removed_from_the_group_at_the_provider_cannot_decide_after_the_recheck(
    tmp_path: Path, guard_home: Path
) -> None:
    setup = Setup(tmp_path, guard_home, recheck_s=0)  # every request is past the re-check interval
    with setup.provider() as provider:
        async with setup.guard(provider), browser() as chromium:
            with anyio.fail_after(90):
                async with Client(f"{setup.public}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(setup.call, client)
                        rid = await setup.waiting_call()
                        context = await new_context(chromium)
                        page = await context.new_page()
                        await sign_in(page, setup.public, "alice")
                        await page.wait_for_selector(".card")
                        provider.set_user("alice", ["marketing"])  # security moved her out of secops
                        await page.click("button.approve")
                        await page.wait_for_url(f"{setup.public}/review/login")
                        await page.goto(f"{setup.public}/review")
                        assert page.url.endswith("/review/login")  # the session is over, not only this decision
                        bearer = {"Authorization": f"Bearer {setup.bob}"}
                        async with httpx.AsyncClient() as http:
                            assert (await http.get(f"{setup.public}/api/review/{rid}", headers=bearer)).json()[
                                "state"
                            ] == "pending"
                            denied = await http.post(f"{setup.public}/api/review/{rid}/deny", headers=bearer)
                            assert denied.status_code == 200
    assert setup.result[0].is_error and not (tmp_path / "x.txt").exists()
    kinds = ("reviewer.signed_in", "reviewer.signed_out", "reviewer.refused")
    ends = [r["body"] for r in Audit(open_store()).records() if r["kind"] in kinds]
    assert [(b["name"], b.get("reason")) for b in ends] == [("alice", None), ("alice", "no longer in a reviewer group")]


async def test_signing_out_ends_the_session_and_signs_out_at_the_provider(tmp_path: Path, guard_home: Path) -> None:
    setup = Setup(tmp_path, guard_home)
    with setup.provider() as provider:
        async with setup.guard(provider), browser() as chromium:
            with anyio.fail_after(60):
                context = await new_context(chromium)
                page = await context.new_page()
                await sign_in(page, setup.public, "alice")
                kept = next(c["value"] for c in await context.cookies() if c["name"] == "mcp_guard_review")
                await page.click("text=Sign out")
                await page.wait_for_url(f"{provider.issuer}/session/end**")
                async with httpx.AsyncClient() as http:
                    old = await http.get(f"{setup.public}/review", headers={"Cookie": f"mcp_guard_review={kept}"})
                assert old.status_code == 303 and old.headers["location"] == "/review/login"


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))

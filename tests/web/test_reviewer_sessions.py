"""Reviewer web sessions live in the store: signing out and revoking the token end them on the
next request, and whoever reads web.key still cannot make one."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp import Client
from mcp_guard.reviewers import Reviewers
from mcp_guard.store import open_store
from tests.conftest import free_port
from tests.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.reviewing import review
from tests.web.test_review_page import serve_guard, token, wait_for_card

pytestmark = pytest.mark.anyio

COOKIE = "mcp_guard_review"


class Browser:
    """Plain HTTP as a browser would send it, with the cookie given by hand so an old one can be replayed."""

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http, self.base = http, base

    async def sign_in(self, reviewer_token: str) -> str:
        done = await self.http.post(f"{self.base}/review/login", data={"token": reviewer_token}, headers={"Origin": self.base})
        assert done.status_code == 303, done.text
        self.http.cookies.clear()  # every request below names its cookie itself
        return str(done.cookies[COOKIE])

    async def queue(self, cookie: str) -> httpx.Response:
        return await self.http.get(f"{self.base}/review", headers={"Cookie": f"{COOKIE}={cookie}"})

    async def decide(self, cookie: str, rid: str, csrf: str, decision: str) -> httpx.Response:
        form = {"csrf": csrf, "decision": decision, "reason": "from the page"}
        return await self.http.post(
            f"{self.base}/review/{rid}/decide", data=form, headers={"Cookie": f"{COOKIE}={cookie}", "Origin": self.base}
        )

    async def csrf(self, cookie: str) -> str:
        page = await self.queue(cookie)
        assert page.status_code == 200, page.status_code
        return re.search(r"name='csrf' value='([^']+)'", page.text).group(1)  # type: ignore[union-attr]


def signed_out(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].endswith("/review/login")


async def reviewed_call(tmp_path: Path, guard_home: Path, body: Any) -> Any:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result: list[Any] = []
    async with await serve_guard(tmp_path, port):
        with anyio.fail_after(60):
            async with Client(f"{base}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]

                async def call() -> None:
                    result.append(await client.call_tool("write_file", {"path": str(tmp_path / "x.txt"), "content": "x"}))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    async with httpx.AsyncClient() as http:
                        bob = token(guard_home, "bob", "secops")
                        rid = (await wait_for_card(http, f"{base}/api/review/pending", bob))["id"]
                        await body(Browser(http, base), rid, bob)
    return result[0]


async def test_a_cookie_kept_after_sign_out_no_longer_opens_the_queue_or_decides(tmp_path: Path, guard_home: Path) -> None:
    async def body(browser: Browser, rid: str, bob: str) -> None:
        alice = token(guard_home, "alice", "secops")
        kept = await browser.sign_in(alice)
        csrf = await browser.csrf(kept)
        out = await browser.http.post(f"{browser.base}/review/logout", headers={"Cookie": f"{COOKIE}={kept}"})
        assert out.status_code == 303
        assert signed_out(await browser.queue(kept))
        assert signed_out(await browser.decide(kept, rid, csrf, "approve"))
        fresh = await browser.sign_in(bob)
        assert (await browser.decide(fresh, rid, await browser.csrf(fresh), "deny")).status_code == 303

    result = await reviewed_call(tmp_path, guard_home, body)
    assert result.is_error and "bob" in result.content[0].text and not (tmp_path / "x.txt").exists()


async def test_revoking_a_token_ends_its_signed_in_sessions_at_once(tmp_path: Path, guard_home: Path) -> None:
    async def body(browser: Browser, rid: str, bob: str) -> None:
        alice = token(guard_home, "alice", "secops")
        session = await browser.sign_in(alice)
        csrf = await browser.csrf(session)
        assert review(guard_home, "token", "revoke", "alice").returncode == 0
        assert signed_out(await browser.queue(session))
        assert signed_out(await browser.decide(session, rid, csrf, "approve"))
        assert (await browser.http.post(f"{browser.base}/review/login", data={"token": alice},
                                        headers={"Origin": browser.base})).status_code == 401
        denied = await browser.http.post(f"{browser.base}/api/review/{rid}/deny", headers={"Authorization": f"Bearer {bob}"})
        assert denied.status_code == 200

    result = await reviewed_call(tmp_path, guard_home, body)
    assert result.is_error and not (tmp_path / "x.txt").exists()


async def test_reading_web_key_does_not_let_anyone_mint_a_reviewer_session(tmp_path: Path, guard_home: Path) -> None:
    async def body(browser: Browser, rid: str, bob: str) -> None:
        key = bytes.fromhex((guard_home / "web.key").read_text().strip())

        def sign(value: str) -> str:
            return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()

        claims = f"alice|admin|{int(time.time()) + 3600}"
        forged = f"{claims}|{sign(claims)}"  # what an HMAC-only cookie would accept
        assert signed_out(await browser.queue(forged))
        assert signed_out(await browser.decide(forged, rid, sign("csrf|" + forged), "approve"))
        for guess in ("", "x" * 43, sign("alice")):
            assert signed_out(await browser.queue(guess))
        denied = await browser.http.post(f"{browser.base}/api/review/{rid}/deny", headers={"Authorization": f"Bearer {bob}"})
        assert denied.status_code == 200

    result = await reviewed_call(tmp_path, guard_home, body)
    assert result.is_error and not (tmp_path / "x.txt").exists()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sessions_end_with_logout_and_revocation_and_names_are_one_person_on_both_stores(
    kind: str, guard_home: Path, request: pytest.FixtureRequest
) -> None:
    store = open_store(request.getfixturevalue("postgres_url") if kind == "postgresql" else str(guard_home / "guard.db"))
    try:
        check_sessions_and_names(Reviewers(store))
    finally:
        store.close()


def check_sessions_and_names(reviewers: Reviewers) -> None:
    alice = reviewers.create("Alice", "secops")
    with pytest.raises(ValueError):
        reviewers.create(" \uff41lice", "secops")
    first = reviewers.open_session(alice)
    assert first is not None and reviewers.session(first) == ("Alice", "secops")
    reviewers.end_session(first)
    assert reviewers.session(first) is None
    second = reviewers.open_session(alice)
    assert second is not None and reviewers.revoke("ALICE") == 1
    assert reviewers.session(second) is None and reviewers.identify(alice) is None
    assert reviewers.open_session(alice) is None

"""Red team, who decides: the review page and API of `serve`. Only a live reviewer token (or a
session made from one, on the page's own origin, with its CSRF token) decides; malformed, empty,
partial and borrowed credentials decide nothing, and sessions are the server's, never the caller's."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.web.test_review_page import token
from tests.web.test_reviewer_sessions import COOKIE, Browser, reviewed_call, signed_out

pytestmark = pytest.mark.anyio


async def still_pending(browser: Browser, rid: str, bob: str) -> bool:
    listed = await browser.http.get(f"{browser.base}/api/review/pending", headers={"Authorization": f"Bearer {bob}"})
    return any(item["id"] == rid for item in listed.json())


async def end(browser: Browser, rid: str, bob: str) -> None:
    done = await browser.http.post(f"{browser.base}/api/review/{rid}/deny", headers={"Authorization": f"Bearer {bob}"})
    assert done.status_code == 200, done.text


async def test_the_api_refuses_empty_partial_and_malformed_credentials(tmp_path: Path, guard_home: Path) -> None:
    async def body(browser: Browser, rid: str, bob: str) -> None:
        alice = token(guard_home, "alice", "secops")
        tries: list[dict[str, str]] = [
            {},
            {"Authorization": ""},
            {"Authorization": "Bearer"},
            {"Authorization": f"Bearer {alice[:-1]}"},
            {"Authorization": f"Bearer {alice}x"},
            {"Authorization": f"Bearer {alice[:4]}"},
            {"Authorization": "Bearer mgr_"},
            {"Authorization": alice},
            {"Authorization": f"Basic {base64.b64encode(f'alice:{alice}'.encode()).decode()}"},
            {"Authorization": f"Token {alice[4:]}"},
            {"Authorization": f"Bearer {alice.upper()}"},
            {"X-Review-Token": alice},
            {"Cookie": f"{COOKIE}={alice}"},
            {"Authorization": f"Bearer\t{alice}"},
        ]
        for headers in tries:
            shown = await browser.http.get(f"{browser.base}/api/review/{rid}", headers=headers)
            assert shown.status_code in (400, 401, 403), (list(headers), shown.status_code)
            tried = await browser.http.post(f"{browser.base}/api/review/{rid}/approve", headers=headers)
            assert tried.status_code in (400, 401, 403), (list(headers), tried.status_code)
            assert await still_pending(browser, rid, bob)
        in_query = await browser.http.post(f"{browser.base}/api/review/{rid}/approve?token={alice}")
        assert in_query.status_code in (400, 401, 403) and await still_pending(browser, rid, bob)
        await end(browser, rid, bob)

    result = await reviewed_call(tmp_path, guard_home, body)
    assert result.is_error and not (tmp_path / "x.txt").exists()


async def test_a_signed_in_cookie_does_not_decide_through_the_api_without_the_token(
    tmp_path: Path, guard_home: Path
) -> None:
    """The API is for bearer tokens: a browser's cookie riding on a request from another local page
    (another port on 127.0.0.1 is the same site, so SameSite does not stop it) must not decide."""

    async def body(browser: Browser, rid: str, bob: str) -> None:
        alice = token(guard_home, "alice", "secops")
        cookie = await browser.sign_in(alice)
        for origin in ("http://127.0.0.1:1", "null", None):
            headers = {"Cookie": f"{COOKIE}={cookie}", "Content-Type": "application/json"}
            if origin is not None:
                headers["Origin"] = origin
            tried = await browser.http.post(f"{browser.base}/api/review/{rid}/approve", content=b"{}", headers=headers)
            assert tried.status_code in (400, 401, 403), (origin, tried.status_code)
            assert await still_pending(browser, rid, bob)
        await end(browser, rid, bob)

    result = await reviewed_call(tmp_path, guard_home, body)
    assert result.is_error and not (tmp_path / "x.txt").exists()


async def test_page_forms_from_another_origin_or_with_another_sessions_csrf_decide_nothing(
    tmp_path: Path, guard_home: Path
) -> None:
    async def body(browser: Browser, rid: str, bob: str) -> None:
        alice = token(guard_home, "alice", "secops")
        dave = token(guard_home, "dave", "secops")
        mine = await browser.sign_in(alice)
        other = await browser.sign_in(dave)
        theirs = await browser.csrf(other)
        good = await browser.csrf(mine)
        url = f"{browser.base}/review/{rid}/decide"
        cases: list[tuple[dict[str, str], str]] = [
            ({"Origin": "http://127.0.0.1:1"}, good),
            ({"Origin": "null"}, good),
            ({}, good),
            ({"Origin": browser.base + "/"}, good),
            ({"Origin": browser.base}, theirs),
            ({"Origin": browser.base}, ""),
            ({"Origin": browser.base, "Referer": "http://evil.example/"}, theirs),
        ]
        for extra, csrf in cases:
            headers = {"Cookie": f"{COOKIE}={mine}", **extra}
            form = {"csrf": csrf, "decision": "approve", "reason": "forged"}
            await browser.http.post(url, data=form, headers=headers)
            assert await still_pending(browser, rid, bob), (extra, "a forged form decided")
        await end(browser, rid, bob)

    result = await reviewed_call(tmp_path, guard_home, body)
    assert result.is_error and not (tmp_path / "x.txt").exists()


async def test_signing_in_never_adopts_a_session_the_caller_chose_and_the_cookie_is_locked_down(
    tmp_path: Path, guard_home: Path
) -> None:
    async def body(browser: Browser, rid: str, bob: str) -> None:
        alice = token(guard_home, "alice", "secops")
        planted = "A" * 43
        done = await browser.http.post(
            f"{browser.base}/review/login",
            data={"token": alice},
            headers={"Origin": browser.base, "Cookie": f"{COOKIE}={planted}"},
        )
        assert done.status_code == 303
        set_cookie = done.headers.get("set-cookie", "")
        browser.http.cookies.clear()
        assert f"{COOKIE}={planted}" not in set_cookie
        assert signed_out(await browser.queue(planted))
        lowered = set_cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered, set_cookie
        assert alice not in set_cookie  # the cookie is a session secret, never the token itself
        foreign = await browser.http.post(
            f"{browser.base}/review/login", data={"token": alice}, headers={"Origin": "http://127.0.0.1:1"}
        )
        assert foreign.status_code != 303 and COOKIE not in foreign.headers.get("set-cookie", "")
        await end(browser, rid, bob)

    result: Any = await reviewed_call(tmp_path, guard_home, body)
    assert result.is_error and not (tmp_path / "x.txt").exists()


async def alice_csrf(browser: Browser, home: Path) -> str:
    """A valid-looking CSRF token for the page (from a reviewer who sees the card), for the requester to borrow."""
    return await browser.csrf(await browser.sign_in(token(home, "erin", "secops")))


async def test_the_requester_cannot_decide_their_own_request_through_the_api_or_the_page(
    tmp_path: Path, guard_home: Path
) -> None:
    async def body(browser: Browser, rid: str, bob: str) -> None:
        borrowed = await alice_csrf(browser, guard_home)
        for spelling in ("carol", "CAROL", "\uff43arol"):  # the requester of reviewed_call is carol
            own = token(guard_home, spelling, "admin")
            api = await browser.http.post(
                f"{browser.base}/api/review/{rid}/approve", headers={"Authorization": f"Bearer {own}"}
            )
            assert api.status_code in (400, 401, 403, 409), (spelling, api.status_code)
            session = await browser.sign_in(own)
            page = await browser.queue(session)
            import re

            found = re.search(r"name='csrf' value='([^']+)'", page.text)
            csrf = found.group(1) if found else borrowed
            await browser.decide(session, rid, csrf, "approve")
            assert await still_pending(browser, rid, bob), spelling
            import subprocess
            import sys

            subprocess.run(
                [sys.executable, "-m", "mcp_guard", "review", "token", "revoke", spelling, "--home", str(guard_home)],
                capture_output=True,
                timeout=30,
            )
        await end(browser, rid, bob)

    result = await reviewed_call(tmp_path, guard_home, body)
    assert result.is_error and not (tmp_path / "x.txt").exists()

"""The reviewers' page in a real browser (headless Chromium from Debian, driven by Playwright),
and its JSON API: sign in with a token, see the masked preview, approve, the call completes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp import Client
from tests.conftest import PY, background, free_port, missing, node_server

pytestmark = pytest.mark.anyio

POLICY = """version: 1
groups: {secops: [alice, bob]}
rules:
  - name: writes-are-reviewed
    match: {tool: write_file}
    action: approve
    approvers: reviewers
    group: secops
"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("headless Chromium", "apt-get install chromium (Debian; .ci/run does)")
    return path


def token(home: Path, name: str, role: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mcp_guard", "review", "token", "create", name, "--role", role, "--home", str(home)],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def serve_guard(tmp_path: Path, port: int) -> Any:
    policy = tmp_path / "reviewed.yaml"
    policy.write_text(POLICY)
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(policy), "--port", str(port), "--", *node_server("server-filesystem", str(tmp_path))]
    return background(argv, f"http://127.0.0.1:{port}/healthz", env={"MCP_GUARD_USER": "carol"})


async def wait_for_card(http: httpx.AsyncClient, url: str, bearer: str) -> dict[str, Any]:
    while True:
        items = (await http.get(url, headers={"Authorization": f"Bearer {bearer}"})).json()
        if items:
            return items[0]  # type: ignore[no-any-return]
        await anyio.sleep(0.05)


async def test_a_reviewer_signs_in_sees_the_whole_escaped_preview_and_approves_in_a_browser(tmp_path: Path, guard_home: Path) -> None:
    browser_path = chromium()  # before any task group: a missing browser is a clean skip
    from playwright.async_api import async_playwright

    alice = token(guard_home, "alice", "secops")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    target = tmp_path / "customer.txt"
    result: list[Any] = []
    secret = "AKIA" + "Q" * 16  # a canary shaped like an AWS key id, built at run time
    content = f"Contact jane.doe@example.com key {secret} " + "x" * 250 + " | sh\nRisk: low \x1b[2J \u202eevil \u200b"
    args = {"path": str(target), "content": content}
    async with await serve_guard(tmp_path, port):
        with anyio.fail_after(90):
            async with Client(f"{base}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]

                async def call() -> None:
                    result.append(await client.call_tool("write_file", args))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    async with httpx.AsyncClient() as http:
                        await wait_for_card(http, f"{base}/api/review/pending", alice)
                    async with async_playwright() as pw:
                        browser = await pw.chromium.launch(
                            executable_path=browser_path,
                            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
                        )
                        page = await browser.new_page(viewport={"width": 1100, "height": 760})
                        await page.goto(f"{base}/review/login")
                        await page.fill("input[name=token]", alice)
                        await page.click("button")
                        await page.wait_for_selector(".card")
                        card = await page.inner_text(".card")
                        assert "write_file on server-filesystem" in card and "carol" in card
                        # What will be sent, as the model wrote it, in full and escaped; its secret hidden.
                        assert "jane.doe@example.com" in card and secret not in card and "<SECRET hidden" in card
                        assert "| sh\\nRisk: low \\x1b[2J \\u202eevil \\u200b" in card
                        assert not any(c in card for c in "\x1b\u202e\u200b")
                        assert not any(line.startswith("Risk: low") for line in card.splitlines())
                        digest = await page.inner_text(".digest")
                        async with httpx.AsyncClient() as http:
                            listed = (await http.get(f"{base}/api/review/pending", headers={"Authorization": f"Bearer {alice}"})).json()
                        assert listed[0]["preview_sha256"] in digest
                        await page.fill("input[name=reason]", "customer asked for it")
                        shot = tmp_path / "review-page.png"  # docs/review-page.png is a copy of one
                        await page.screenshot(path=str(shot), full_page=True)
                        assert shot.stat().st_size > 10_000
                        await page.click("button.approve")
                        await page.wait_for_url("**/review?done=*")
                        await browser.close()
    assert not result[0].is_error
    assert target.read_text() == content  # exactly what was shown reached the server


async def test_the_api_needs_a_token_and_refuses_the_requester_and_other_roles(tmp_path: Path, guard_home: Path) -> None:
    carol = token(guard_home, "carol", "secops")  # the requester herself
    dave = token(guard_home, "dave", "payments")  # a reviewer for another group
    bob = token(guard_home, "bob", "secops")
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
                        assert (await http.get(f"{base}/api/review/pending")).status_code == 401
                        pending = await wait_for_card(http, f"{base}/api/review/pending", bob)
                        rid = pending["id"]
                        own = await http.post(f"{base}/api/review/{rid}/approve", headers={"Authorization": f"Bearer {carol}"})
                        assert own.status_code == 409 and "cannot decide it" in own.json()["error"]
                        other = await http.post(f"{base}/api/review/{rid}/approve", headers={"Authorization": f"Bearer {dave}"})
                        assert other.status_code == 409 and "payments" in other.json()["error"]
                        forged = await http.post(f"{base}/review/{rid}/decide", data={"decision": "approve"}, headers={"Origin": "http://evil.example"})
                        assert forged.status_code in (303, 403)  # no session: sent to sign in; never decided
                        denied = await http.post(f"{base}/api/review/{rid}/deny", headers={"Authorization": f"Bearer {bob}"}, json={"reason": "no"})
                        assert denied.status_code == 200 and denied.json()["state"] == "denied"
    assert result[0].is_error and not (tmp_path / "x.txt").exists()
    listed = json.loads(subprocess.run([sys.executable, "-m", "mcp_guard", "review", "token", "list", "--home", str(guard_home)],
                                       capture_output=True, text=True, check=True).stdout)
    assert {t["name"] for t in listed} == {"carol", "dave", "bob"}
    assert all("hash" not in t and "token" not in t for t in listed)

"""Approvals that reach the person when the client cannot: the loopback page, the terminal,
deferred approval with an identical retry, and declines no person made."""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import mcp_types as types
from tests.conftest import connect, guard, node_server
from tests.reviewing import review

pytestmark = pytest.mark.anyio


def policy(tmp_path: Path, wait: float = 20, min_human_ms: float = 300) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(f"version: 1\ndefaults: {{wait: {wait}, timeout: 120, min_human_ms: {min_human_ms}}}\nrules:\n  - match: {{tool: write_file}}\n    action: approve\n")
    return str(path)


async def pending(home: Path) -> dict[str, Any]:
    """The first pending request, once the guard has opened it (polled; bounded by the caller)."""
    while True:
        items = json.loads(review(home, "list", "--json").stdout or "[]")
        if items and items[0].get("page_url"):
            return items[0]
        await anyio.sleep(0.05)


async def approve_on_page(url: str, decision: str = "approve") -> httpx.Response:
    async with httpx.AsyncClient() as http:
        page = await http.get(url)
        assert page.status_code == 200
        csrf = re.search(r"name='csrf' value='([0-9a-f]+)'", page.text).group(1)  # type: ignore[union-attr]
        token = url.split("t=")[1]
        origin = url.split("/r/")[0]
        return await http.post(url.split("?")[0] + "/decide", data={"t": token, "csrf": csrf, "decision": decision, "scope": "once"}, headers={"Origin": origin})


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_a_client_without_elicitation_gets_approval_through_the_loopback_page(tmp_path: Path, guard_home: Path, decision: str) -> None:
    target = tmp_path / "out.txt"
    result: list[Any] = []
    with anyio.fail_after(40):
        async with connect(guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path))) as client:

            async def call() -> None:
                result.append(await client.call_tool("write_file", {"path": str(target), "content": "via page"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                request = await pending(guard_home)
                async with httpx.AsyncClient() as http:
                    page = await http.get(request["page_url"])
                assert "write_file" in page.text and "via page" in page.text  # the preview
                done = await approve_on_page(request["page_url"], decision)
                assert done.status_code == 200
    assert target.exists() is (decision == "approve")
    assert result[0].is_error is (decision != "approve")
    shown = review(guard_home, "show", request["id"], "--json")
    evidence = json.loads(shown.stdout)
    assert evidence["channel"] == "page" and evidence["state"] == ("approved" if decision == "approve" else "denied")
    assert len(evidence["preview_sha256"]) == 64


async def test_a_decline_faster_than_a_person_is_not_taken_as_the_users_answer(tmp_path: Path, guard_home: Path) -> None:
    async def instant_decline(ctx: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    target = tmp_path / "out.txt"
    # The floor is wide here: on a loaded machine the client's own round trip can take longer than 300 ms.
    with anyio.fail_after(40):
        async with connect(
            guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path, min_human_ms=10_000)),
            elicitation_callback=instant_decline,
        ) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "write_file", {"path": str(target), "content": "yes"})
                request = await pending(guard_home)
                await approve_on_page(request["page_url"])
    assert target.read_text() == "yes"
    audit = subprocess.run([sys.executable, "-m", "mcp_guard", "audit", "export", "--home", str(guard_home)], capture_output=True, text=True).stdout
    finished = [json.loads(line)["body"] for line in audit.splitlines() if '"call.finished"' in line]
    assert "faster than a person" in finished[-1]["client_could_not_ask"]
    assert finished[-1]["channel"] == "page"


async def test_deferred_approval_runs_the_identical_retry_once_and_asks_again_for_other_arguments(tmp_path: Path, guard_home: Path) -> None:
    target = tmp_path / "out.txt"
    args = {"path": str(target), "content": "deferred"}
    with anyio.fail_after(40):
        async with connect(guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path, wait=2))) as client:
            first = await client.call_tool("write_file", args)
            message = first.content[0].text  # type: ignore[union-attr]
            assert first.is_error and "waiting for the user's approval" in message and "same arguments" in message
            assert "t=" not in message  # the page's token never reaches the model
            request_id = re.search(r"request ([0-9a-f]{8})", message).group(1)  # type: ignore[union-attr]
            assert not target.exists()
            approved = review(guard_home, "approve", request_id, "--as", getpass.getuser())  # the requester's own token
            assert approved.returncode == 0, approved.stderr
            retry = await client.call_tool("write_file", args)
            assert not retry.is_error and target.read_text() == "deferred"
            target.unlink()
            again = await client.call_tool("write_file", args)  # once: the approval is used up
            other = await client.call_tool("write_file", {**args, "content": "changed"})
    assert again.is_error and "waiting for the user's approval" in again.content[0].text  # type: ignore[union-attr]
    assert other.is_error and not target.exists()


async def test_the_page_refuses_a_wrong_token_and_a_foreign_origin(tmp_path: Path, guard_home: Path) -> None:
    with anyio.fail_after(40):
        async with connect(guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path, wait=1))) as client:
            await client.call_tool("write_file", {"path": str(tmp_path / "x"), "content": "x"})
            request = await pending(guard_home)
            url = request["page_url"]
            async with httpx.AsyncClient() as http:
                assert (await http.get(url.split("?")[0])).status_code == 404
                assert (await http.get(url.replace("t=", "t=x"))).status_code == 404
                page = await http.get(url)
                csrf = re.search(r"name='csrf' value='([0-9a-f]+)'", page.text).group(1)  # type: ignore[union-attr]
                form = {"t": url.split("t=")[1], "csrf": csrf, "decision": "approve"}
                assert (await http.post(url.split("?")[0] + "/decide", data=form, headers={"Origin": "http://evil.example"})).status_code == 403
                assert (await http.post(url.split("?")[0] + "/decide", data=form)).status_code == 403
                assert (await http.post(url.split("?")[0] + "/decide", data={**form, "csrf": "0" * 64}, headers={"Origin": url.split("/r/")[0]})).status_code == 404
    # Never approved; with the guard gone it is now marked cancelled (nobody is left to run it).
    assert json.loads(review(guard_home, "show", request["id"], "--json").stdout)["state"] in ("pending", "cancelled")

"""Red team, who decides: nothing the model reads says how to approve. Every text that comes back
to the model on a held call (user approval with no elicitation, a reviewer's timeout, a reviewer's
denial, a 2026-era input request, the tool listing) is searched for commands, links and tokens."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import connect, guard, node_server
from tests.hooks.test_review_queue import first_pending
from tests.reviewing import review

pytestmark = pytest.mark.anyio

HOW = (
    "mcp-guard review",
    "review approve",
    "review list",
    "review show",
    "--as",
    "--token",
    "mgr_",
    "MCP_GUARD",
    "http://",
    "https://",
    "127.0.0.1",
    "localhost",
    "/review",
    "/r/",
    "?t=",
    "guard.db",
    "web.key",
    "token create",
)

USER_DEFAULT_CHANNELS = """version: 1
defaults: {wait: 1, timeout: 120}
rules:
  - match: {tool: write_file}
    action: approve
"""

REVIEWERS_SHORT = """version: 1
defaults: {timeout: 2}
rules:
  - name: writes-are-reviewed
    match: {tool: write_file}
    action: approve
    approvers: reviewers
"""


def said(result: Any) -> str:
    return json.dumps(result.model_dump(mode="json"))


def assert_no_how(text: str) -> None:
    for how in HOW:
        assert how.lower() not in text.lower(), f"the model is told {how!r}: {text[:400]}"


async def held_texts(
    tmp_path: Path, policy_text: str, mode: str = "legacy", env: dict[str, str] | None = None, during: Any = None
) -> list[str]:
    rules = tmp_path / "p.yaml"
    rules.write_text(policy_text)
    texts: list[str] = []
    with anyio.fail_after(60):
        async with connect(
            guard(*node_server("server-filesystem", str(tmp_path)), policy=str(rules)), mode=mode, env=env
        ) as client:
            listed = await client.list_tools()
            texts.append(json.dumps(listed.model_dump(mode="json")))
            result: list[Any] = []

            async def call() -> None:
                result.append(await client.call_tool("write_file", {"path": str(tmp_path / "x"), "content": "x"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                if during is not None:
                    await during()
            texts.append(said(result[0]))
            assert result[0].is_error
    return texts


async def test_a_user_approval_without_elicitation_never_tells_the_model_how_to_approve(
    tmp_path: Path, guard_home: Path
) -> None:
    texts = await held_texts(tmp_path, USER_DEFAULT_CHANNELS)
    assert re.search(r"request [0-9a-f]{8}", texts[-1])
    for text in texts[1:]:
        assert_no_how(text)


async def test_a_user_approval_in_the_2026_era_never_tells_the_model_how_to_approve(
    tmp_path: Path, guard_home: Path
) -> None:
    for text in (await held_texts(tmp_path, USER_DEFAULT_CHANNELS, mode="2026-07-28"))[1:]:
        assert_no_how(text)


async def test_a_reviewer_timeout_never_tells_the_model_how_to_approve(tmp_path: Path, guard_home: Path) -> None:
    for text in (await held_texts(tmp_path, REVIEWERS_SHORT, env={"MCP_GUARD_USER": "carol"}))[1:]:
        assert_no_how(text)


async def test_a_reviewer_denial_names_the_reviewer_and_reason_but_no_way_to_approve(
    tmp_path: Path, guard_home: Path
) -> None:
    async def deny() -> None:
        rid = await first_pending(guard_home)
        assert review(guard_home, "deny", rid, "--as", "bob", "--reason", "not now").returncode == 0

    texts = await held_texts(
        tmp_path, REVIEWERS_SHORT.replace("timeout: 2", "timeout: 60"), env={"MCP_GUARD_USER": "carol"}, during=deny
    )
    assert "not now" in texts[-1]
    assert_no_how(texts[-1])

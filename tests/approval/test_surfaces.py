"""The canonical preview on every surface, end to end: the question a real client gets (both
eras), `mcp-guard review show` through the real CLI, and the loopback page in headless Chromium,
each fed hostile arguments a model could write. Slack and the reviewers' page: tests/web/."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import ERAS, connect, guard, node_server
from tests.hooks.test_approval import Person, default_with
from tests.hooks.test_out_of_band import pending, policy
from tests.web.test_review_page import chromium

pytestmark = pytest.mark.anyio

HIDDEN = "\x1b\u202e\u200b"
# Past the old 200-character cut: what the shell would really run.
HOSTILE = "echo " + "a" * 240 + " | sh\nRisk: low. Rule 'pre-approved': nothing to check \x1b[2J \u202eevil \u200bx"


def hostile_arguments(root: Path) -> dict[str, Any]:
    arguments: dict[str, Any] = {"path": str(root / "out.txt"), "content": HOSTILE}
    arguments.update({f"note{i}": "n" * 60 for i in range(40)})  # pushes the next key past 2,000 characters
    arguments["p\u0430th"] = "/etc/shadow"
    return arguments


def review(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_guard", "review", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_escaped(text: str) -> None:
    assert "| sh\\nRisk: low" in text and "\\x1b[2J" in text and "\\u202eevil" in text and "\\u200bx" in text
    assert not any(c in text for c in HIDDEN)
    assert not any(line.startswith("Risk: low") for line in text.splitlines())


@pytest.mark.parametrize("mode", ERAS)
async def test_the_client_question_shows_every_argument_escaped_and_flags_a_lookalike_key(
    tmp_path: Path, mode: str
) -> None:
    person = Person(action="decline")
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=default_with(tmp_path, min_human_ms=0))
    with anyio.fail_after(40):
        async with connect(argv, mode, elicitation_callback=person) as client:
            result = await client.call_tool("write_file", hostile_arguments(tmp_path))
    assert result.is_error and not (tmp_path / "out.txt").exists()
    question = person.questions[0]
    assert_escaped(question)
    warnings = question.split("Arguments:")[0]
    assert 'looks like "path"' in warnings and "p\u0430th" not in question
    assert re.search(r"Preview sha256: [0-9a-f]{64}", question)


async def test_two_different_urls_make_two_different_questions(tmp_path: Path) -> None:
    person = Person(action="decline")
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=default_with(tmp_path, min_human_ms=0))
    with anyio.fail_after(40):
        async with connect(argv, elicitation_callback=person) as client:
            for url in ("https://a.example/upload", "https://b.example/upload"):
                await client.call_tool("write_file", {"path": str(tmp_path / "x"), "content": url})
    first, second = person.questions
    assert "https://a.example/upload" in first and "https://b.example/upload" in second


async def test_a_value_from_the_vault_is_shown_as_its_placeholder_and_origin(tmp_path: Path) -> None:
    (tmp_path / "crm.txt").write_text("customer: jane.doe@example.com\n")
    person = Person(action="decline")
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=default_with(tmp_path, min_human_ms=0))
    with anyio.fail_after(40):
        async with connect(argv, elicitation_callback=person) as client:
            read = await client.call_tool("read_text_file", {"path": str(tmp_path / "crm.txt")})
            masked = read.content[0].text  # type: ignore[union-attr]
            assert "<EMAIL_1>" in masked
            await client.call_tool("write_file", {"path": str(tmp_path / "copy.txt"), "content": masked})
    question = person.questions[0]
    assert "<EMAIL_1 from server-filesystem>" in question and "jane.doe@example.com" not in question


async def test_a_question_too_long_points_to_review_show_which_prints_it_all_escaped(
    tmp_path: Path, guard_home: Path
) -> None:
    person = Person(action="decline")
    person.hold = anyio.Event()
    content = "x" * 3000 + HOSTILE + "y" * 3000
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=default_with(tmp_path, min_human_ms=0))
    with anyio.fail_after(60):
        async with connect(argv, elicitation_callback=person) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "write_file", {"path": str(tmp_path / "out.txt"), "content": content})
                while not person.questions:
                    await anyio.sleep(0.05)
                question = person.questions[0]
                assert len(question) <= 3000 and "too long to show here" in question
                request_id = re.search(r"mcp-guard review show ([0-9a-f]{8})", question).group(1)  # type: ignore[union-attr]
                digest = re.search(r"Preview sha256: ([0-9a-f]{64})", question).group(1)  # type: ignore[union-attr]
                shown = review(guard_home, "show", request_id)
                person.hold.set()
    assert shown.returncode == 0, shown.stderr
    assert_escaped(shown.stdout)
    assert content[:3000] in shown.stdout and digest in shown.stdout and f"({len(content)} chars)" in shown.stdout
    assert json.loads(review(guard_home, "show", request_id, "--json").stdout)["state"] == "cancelled"


async def test_the_loopback_page_in_a_browser_shows_the_whole_escaped_preview_and_its_digest(
    tmp_path: Path, guard_home: Path
) -> None:
    from playwright.async_api import async_playwright

    with anyio.fail_after(90):
        async with connect(guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path))) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "write_file", hostile_arguments(tmp_path))
                request = await pending(guard_home)
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(
                        executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"]
                    )
                    page = await browser.new_page()
                    await page.goto(request["page_url"])
                    text = await page.inner_text("body")
                    await page.click("button[value=deny]")
                    await browser.close()
    assert_escaped(text)
    assert 'looks like "path"' in text and "/etc/shadow" in text and "p\u0430th" not in text
    assert request["preview_sha256"] in text
    cli = review(guard_home, "show", request["id"])
    assert request["preview_sha256"] in cli.stdout and "\x1b" not in cli.stdout


async def test_a_question_too_long_with_only_elicitation_allowed_is_refused_not_cut(tmp_path: Path) -> None:
    """No other channel may hold the whole preview, so the call does not run on a partial one."""
    only = tmp_path / "only-elicitation.yaml"
    only.write_text(
        "version: 1\nrules:\n  - match: {tool: write_file}\n    action: approve\n    channels: [elicitation]\n"
    )
    person = Person(action="accept", approve=True)
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=str(only))
    with anyio.fail_after(40):
        async with connect(argv, elicitation_callback=person) as client:
            result = await client.call_tool(
                "write_file", {"path": str(tmp_path / "out.txt"), "content": "x" * 5000 + " | sh"}
            )
    assert result.is_error and "too long for the client's question" in result.content[0].text  # type: ignore[union-attr]
    assert person.questions == [] and not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("mode", ERAS)
async def test_the_audit_keeps_the_digest_of_the_question_the_user_approved(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    person = Person(action="accept", approve=True)
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=default_with(tmp_path, min_human_ms=0))
    with anyio.fail_after(40):
        async with connect(argv, mode, elicitation_callback=person) as client:
            result = await client.call_tool("write_file", {"path": str(tmp_path / "out.txt"), "content": HOSTILE})
    assert not result.is_error and (tmp_path / "out.txt").read_text() == HOSTILE
    digest = re.search(r"Preview sha256: ([0-9a-f]{64})", person.questions[-1]).group(1)  # type: ignore[union-attr]
    audit = subprocess.run(
        [sys.executable, "-m", "mcp_guard", "audit", "export", "--home", str(guard_home)],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    finished = [json.loads(line)["body"] for line in audit.splitlines() if '"call.finished"' in line]
    assert finished[-1]["channel"] == "elicitation" and finished[-1]["preview_sha256"] == digest

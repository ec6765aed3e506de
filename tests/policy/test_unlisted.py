"""Tools the policy cannot be sidestepped around: a name the upstream does not list is refused
(never given the default risk), and an author's risk tag is pinned like the rest of a definition."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import ERAS, FIXTURES, PY, connect, guard

pytestmark = pytest.mark.anyio

SIDESTEP = [PY, str(FIXTURES / "sidestep_server.py")]
# Critical tools are denied; everything else runs: the default risk (medium) would be let through.
POLICY = (
    "version: 1\ndefaults: {action: allow}\nrules:\n  - name: no-critical\n    match: {risk: critical}\n    action: deny\n"
)


def policy_file(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return str(path)


def audit_records(home: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "mcp_guard", "audit", "export", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def text(result: object) -> str:
    return result.content[0].text  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_tool_name_the_upstream_does_not_list_is_refused_even_if_the_server_would_run_it(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    ran = tmp_path / "ran.log"
    argv = guard(*SIDESTEP, policy=policy_file(tmp_path), options=["--name", "store"])
    with anyio.fail_after(30):
        async with connect(argv, mode=mode, env={"SIDESTEP_LOG": str(ran)}) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            exact = await client.call_tool("delete_all", {})
            upper = await client.call_tool("DELETE_ALL", {})
            unknown = await client.call_tool("drop_everything", {})
            echo = await client.call_tool("echo", {"message": "still here"})
    assert "delete_all" not in names  # denied unconditionally, so hidden
    assert exact.is_error and "no-critical" in text(exact)
    assert upper.is_error and "does not list a tool named 'DELETE_ALL'" in text(upper)
    assert "'delete_all'" in text(upper)  # the model is told the listed spelling, which the policy knows
    assert unknown.is_error and "does not list a tool named 'drop_everything'" in text(unknown)
    assert not echo.is_error and text(echo) == "echo: still here"
    assert ran.read_text().splitlines() == ['ran:echo {"message": "still here"}']  # nothing else reached it
    refused = [r for r in audit_records(guard_home) if r.get("kind") == "call.denied"]
    assert {r["body"]["tool"] for r in refused} >= {"DELETE_ALL", "drop_everything"}  # type: ignore[index]


async def test_an_author_risk_tag_changed_after_listing_is_held_like_a_rug_pull(
    tmp_path: Path, guard_home: Path
) -> None:
    ran = tmp_path / "ran.log"
    argv = guard(*SIDESTEP, policy=policy_file(tmp_path), options=["--name", "store"])
    with anyio.fail_after(30):
        async with connect(argv, env={"SIDESTEP_LOG": str(ran)}) as client:
            await client.list_tools()
            before = await client.call_tool("delete_all", {})
            assert not (await client.call_tool("retag", {})).is_error  # now lists delete_all as low
            names = {t.name for t in (await client.list_tools()).tools}
            after = await client.call_tool("delete_all", {})
    assert before.is_error and "no-critical" in text(before)
    assert "delete_all" not in names and "echo" in names
    assert after.is_error and "changed since it was accepted" in text(after)
    assert "ran:delete_all" not in ran.read_text()
    changed = [r["body"]["tool"] for r in audit_records(guard_home) if r.get("kind") == "tool.changed"]  # type: ignore[index]
    assert changed == ["delete_all"]

"""Tool integrity: a changed definition is held until accepted, poisoned descriptions raise the
risk or are held, shadowing is flagged; and the labeled set of descriptions as a report."""

from __future__ import annotations

import json
import secrets
import string
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcp_guard.integrity import Pins, scan_text
from mcp_guard.store import Store
from tests.conftest import FIXTURES, PY, connect, guard, node_server

pytestmark = pytest.mark.anyio

CHANGING = [PY, str(FIXTURES / "changing_server.py")]
ALLOW = "version: 1\ndefaults: {action: allow}\n"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_guard", *args, "--home", str(home)], capture_output=True, text=True, timeout=30)


def policy(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "p.yaml"
    path.write_text(ALLOW + extra)
    return str(path)


async def tools_and_call(argv: list[str], variant: str) -> tuple[set[str], object]:
    with anyio.fail_after(30):
        async with connect(argv, env={"VARIANT": variant}) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            return names, await client.call_tool("lookup", {"term": "guard"})


async def test_a_changed_definition_is_held_until_a_person_accepts_it(tmp_path: Path, guard_home: Path) -> None:
    argv = guard(*CHANGING, policy=policy(tmp_path), options=["--name", "glossary"])
    names, first = await tools_and_call(argv, "a")
    assert "lookup" in names and not first.is_error  # type: ignore[attr-defined]
    names, second = await tools_and_call(argv, "b")
    assert "lookup" not in names and "hello" in names
    assert second.is_error and "tools accept glossary lookup" in second.content[0].text  # type: ignore[attr-defined]
    diff = cli(guard_home, "tools", "diff")
    assert diff.returncode == 1 and "also fetch related words" in diff.stdout
    assert cli(guard_home, "tools", "accept", "glossary", "lookup").returncode == 0
    names, third = await tools_and_call(argv, "b")
    assert "lookup" in names and not third.is_error  # type: ignore[attr-defined]
    audit = cli(guard_home, "audit", "export").stdout
    assert '"tool.changed"' in audit and '"tool.accepted"' in audit


async def test_a_poisoned_description_raises_the_risk_or_is_held_per_policy(tmp_path: Path, guard_home: Path) -> None:
    raise_policy = tmp_path / "raise.yaml"
    raise_policy.write_text(
        "version: 1\ndefaults: {action: allow, channels: [elicitation]}\nrules:\n  - match: {risk: high}\n    action: approve\n"
    )
    with anyio.fail_after(30):
        async with connect(guard(*CHANGING, policy=str(raise_policy), options=["--name", "p1"]), env={"VARIANT": "poisoned"}) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            refused = await client.call_tool("lookup", {"term": "x"})
    assert tools["lookup"].meta["mcp-guard/risk"] == "high" and "exfiltration" in tools["lookup"].meta["mcp-guard/findings"]  # type: ignore[index]
    assert refused.is_error and "risk high" in refused.content[0].text  # type: ignore[union-attr]
    block_policy = policy(tmp_path, "integrity: {findings: block}\n")
    names, call = await tools_and_call(guard(*CHANGING, policy=block_policy, options=["--name", "p2"]), "poisoned")
    assert "lookup" not in names and call.is_error  # type: ignore[attr-defined]
    check = cli(guard_home, "tools", "check", "--json")
    assert check.returncode == 1
    evidence = {f["kind"] for row in json.loads(check.stdout) for f in row["findings"]}
    assert {"hidden-markup", "exfiltration", "secrecy"} <= evidence


async def test_a_tool_that_redirects_another_servers_tool_is_flagged_as_shadowing(tmp_path: Path, guard_home: Path) -> None:
    fs = node_server("server-filesystem", str(tmp_path))
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {
        "files": {"command": fs[0], "args": fs[1:]},
        "glossary": {"command": CHANGING[0], "args": CHANGING[1:], "env": {"VARIANT": "shadow"}},
    }}))
    with anyio.fail_after(30):
        async with connect([PY, "-m", "mcp_guard", "run", "--policy", policy(tmp_path), "--config", str(config)]) as client:
            await client.list_tools()
            tools = {t.name: t for t in (await client.list_tools()).tools}  # the second listing knows both servers
    assert "shadowing" in tools["glossary__lookup"].meta["mcp-guard/findings"]  # type: ignore[index]


def test_the_labeled_descriptions_are_told_apart() -> None:
    """Report: every poisoned description is found; benign ones from real servers are left alone."""
    rows = [json.loads(line) for line in (FIXTURES / "poisoning" / "descriptions.jsonl").read_text().splitlines()]
    poisoned = [r for r in rows if r["poisoned"]]
    benign = [r for r in rows if not r["poisoned"]]
    assert len(poisoned) >= 30 and len(benign) >= 30
    found = sum(1 for r in poisoned if scan_text(r["description"]))
    false_positives = [r["description"] for r in benign if scan_text(r["description"])]
    assert found / len(poisoned) >= 0.95
    assert false_positives == []


async def test_poisoned_prompts_are_held_and_resource_contents_are_scanned_where_policy_asks(tmp_path: Path) -> None:
    from mcp.shared.exceptions import MCPError

    blocking = policy(tmp_path, "integrity: {findings: block, resources: block}\n")
    with anyio.fail_after(30):
        async with connect(guard(*CHANGING, policy=blocking, options=["--name", "p3"]), env={"VARIANT": "poisoned"}) as client:
            prompts = [p.name for p in (await client.list_prompts()).prompts]
            with pytest.raises(MCPError, match="carry instructions to the model"):
                await client.read_resource("changing://notes")
    assert "summarise" not in prompts
    noting = policy(tmp_path, "integrity: {findings: raise, resources: scan}\n")
    with anyio.fail_after(30):
        async with connect(guard(*CHANGING, policy=noting, options=["--name", "p4"]), env={"VARIANT": "poisoned"}) as client:
            listed = {p.name: p for p in (await client.list_prompts()).prompts}
            read = await client.read_resource("changing://notes")
        async with connect(guard(*CHANGING, policy=noting, options=["--name", "p5"]), env={"VARIANT": "a"}) as client:
            clean = await client.read_resource("changing://notes")
    assert "override" in listed["summarise"].meta["mcp-guard/findings"]  # type: ignore[index]
    assert "exfiltration" in read.meta["mcp-guard/findings"]  # type: ignore[index]
    assert not (clean.meta or {}).get("mcp-guard/findings")


def canary_key() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def test_a_tool_named_with_a_secret_is_pinned_masked_and_a_rug_pull_is_still_seen(tmp_path: Path) -> None:
    pins = Pins(Store(tmp_path / "guard.db"))
    one, two = canary_key(), canary_key()
    tool = {"name": f"send_{one}", "description": "sends", "inputSchema": {"type": "object"}}
    assert pins.check("srv", tool, [], hold_new=False) == "ok"
    assert pins.check("srv", {**tool, "name": f"send_{two}"}, [], hold_new=False) == "ok"
    assert pins.check("srv", tool, [], hold_new=False) == "ok"
    assert pins.check("srv", {**tool, "description": "sends elsewhere"}, [], hold_new=False) == "changed"
    rows = pins.rows("srv")
    assert len(rows) == 2, "two tools whose names hold different secrets share one pin"
    stored = json.dumps(rows)
    assert one not in stored and two not in stored
    assert pins.accept("srv", f"send_{one}") == 1  # accepted by the name the server gives
    assert pins.check("srv", {**tool, "description": "sends elsewhere"}, [], hold_new=False) == "ok"

"""Aggregated names stay within what every client and model API accepts: 64 of [A-Za-z0-9_-]."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import FIXTURES, PY, connect, probe

ACCEPTED = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAMES = [  # the odd server's tools (fixtures/odd_names_server.py)
    "fetch_the_quarterly_report_for_the_finance_team_and_summarise_it_now",
    "fetch_the_quarterly_report_for_the_finance_team_and_summarise_it_later",
    "get.weather",
    "résumé tool",
    "plain",
]


def config(tmp_path: Path) -> Path:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": {
        "reports-server": {"command": sys.executable, "args": [str(FIXTURES / "odd_names_server.py")]},
        "probe": {"command": probe()[0], "args": probe()[1:]},
    }}))
    return path


def guard_argv(path: Path) -> list[str]:
    return [PY, "-m", "mcp_guard", "run", "--no-policy", "--config", str(path)]


@pytest.mark.anyio
async def test_long_and_odd_namespaced_names_get_a_short_stable_form_the_router_accepts_back(tmp_path: Path) -> None:
    path = config(tmp_path)
    seen: list[dict[str, str]] = []
    for _ in range(2):  # two sessions, two guard processes: the same names
        with anyio.fail_after(60):
            async with connect(guard_argv(path)) as client:
                tools = (await client.list_tools()).tools
                names = [t.name for t in tools]
                assert all(ACCEPTED.fullmatch(n) for n in names), names
                assert len(set(names)) == len(names)
                originals = {t.name: (t.meta or {}).get("mcp-guard/original-name") for t in tools}
                ours = {n: o for n, o in originals.items() if o is not None}
                assert sorted(ours.values()) == sorted(n for n in NAMES if n != "plain")
                assert "reports-server__plain" in names and "probe__echo" in names  # short names only where needed
                for public, original in ours.items():
                    result = await client.call_tool(public, {})
                    assert result.content[0].text == f"reached {original}"  # type: ignore[union-attr]
                prompts = (await client.list_prompts()).prompts
                odd = next(p for p in prompts if (p.meta or {}).get("mcp-guard/original-name") == "a.prompt with spaces")
                assert ACCEPTED.fullmatch(odd.name)
                assert (await client.get_prompt(odd.name)).messages
                seen.append(ours)
    assert seen[0] == seen[1]


def test_a_server_cannot_list_a_name_that_is_another_servers_short_form_to_capture_its_calls() -> None:
    from types import SimpleNamespace

    from mcp_guard.relay.router import Router, short_name

    router = Router()
    victim, mimic = SimpleNamespace(name="my.srv"), SimpleNamespace(name="my_srv")
    router.add(victim)  # type: ignore[arg-type]
    router.add(mimic)  # type: ignore[arg-type]
    listed = router.public_item(victim, {"name": "delete"})  # type: ignore[arg-type]
    assert listed is not None and listed["name"] == short_name("my.srv__delete") and listed["name"].startswith("my_srv__")
    assert router.public_item(victim, {"name": "delete"}) == listed  # the same on every listing
    # The mimic's own full name is exactly the victim's short form: hidden, never sharing it.
    assert router.public_item(mimic, {"name": listed["name"][len("my_srv__"):]}) is None  # type: ignore[arg-type]
    assert router.route_name(listed["name"], "tool") == (victim, "delete")

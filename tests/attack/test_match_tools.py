"""Red team, tool matching: against a hostile server that matches names loosely, parses first-key-wins and
changes its tools behind the guard's back, a call reaches the server only as the tool the policy judged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import ERAS, FIXTURES, PY, connect, guard
from tests.rawclient import RawClient, open_raw

pytestmark = pytest.mark.anyio

MATCH = [PY, str(FIXTURES / "attack_match_server.py")]
POLICY = """\
version: 1
defaults: {action: allow}
rules:
  - name: no-critical
    match: {risk: critical}
    action: deny
  - name: no-high
    match: {risk: ">=high"}
    action: deny
  - name: no-etc
    match: {args: {"$.path": "/etc/*"}}
    action: deny
"""


def policy_file(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return str(path)


def ran(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def text(result: Any) -> str:
    return result.content[0].text  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ERAS)
async def test_loose_spellings_of_a_denied_tool_name_never_reach_a_server_that_folds_names(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    log = tmp_path / "ran.log"
    spellings = [
        " delete_all",
        "delete_all ",
        "delete_all\n",
        "\tdelete_all",
        "ｄｅｌｅｔｅ_ａｌｌ",
        "Delete_All",
        "store__delete_all",
        "x__delete_all",
        "delete_all\u200b",
        "DELETE\uff3fALL",
    ]
    argv = guard(*MATCH, policy=policy_file(tmp_path), options=["--name", "store"])
    with anyio.fail_after(60):
        async with connect(argv, mode=mode, env={"MATCH_LOG": str(log)}) as client:
            await client.list_tools()
            results = {s: await client.call_tool(s, {}) for s in spellings}
    for spelling, result in results.items():
        assert result.is_error, repr(spelling)
    assert not [line for line in ran(log) if line.startswith("ran:delete_all")]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_tool_dropped_from_the_listing_mid_session_is_refused_before_the_client_lists_again(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    log = tmp_path / "ran.log"
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n")
    argv = guard(*MATCH, policy=str(policy), options=["--name", "store"])
    with anyio.fail_after(60):
        async with connect(argv, mode=mode, env={"MATCH_LOG": str(log)}) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "purge" in names
            assert not (await client.call_tool("hide", {})).is_error  # the server now lists no purge
            stale = await client.call_tool("purge", {})  # no tools/list since: the guard must not trust its old one
    assert stale.is_error and "purge" in text(stale)
    assert "ran:purge {}" not in ran(log)


@pytest.mark.parametrize("mode", ERAS)
async def test_annotations_turned_destructive_mid_session_are_held_before_the_client_lists_again(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    log = tmp_path / "ran.log"
    argv = guard(*MATCH, policy=policy_file(tmp_path), options=["--name", "store"])
    with anyio.fail_after(60):
        async with connect(argv, mode=mode, env={"MATCH_LOG": str(log)}) as client:
            await client.list_tools()
            before = await client.call_tool("tidy", {})  # read-only, closed world: low, runs
            assert not (await client.call_tool("sharpen", {})).is_error  # tidy is now destructive, open world
            after = await client.call_tool("tidy", {})
    assert not before.is_error
    assert after.is_error  # changed since pinned (held) or now high (denied): either way it must not run
    assert ran(log).count("ran:tidy {}") == 1


async def test_a_tool_listed_twice_with_different_risk_tags_is_judged_by_the_stricter_or_refused(
    tmp_path: Path, guard_home: Path
) -> None:
    log = tmp_path / "ran.log"
    argv = guard(*MATCH, policy=policy_file(tmp_path), options=["--name", "store"])
    with anyio.fail_after(60):
        async with connect(argv, env={"MATCH_LOG": str(log), "MATCH_TWINS": "1"}) as client:
            await client.list_tools()
            twin = await client.call_tool("twin", {})
    assert twin.is_error
    assert "ran:twin {}" not in ran(log)


async def test_duplicate_argument_keys_cannot_show_the_policy_one_path_and_the_server_another(
    tmp_path: Path, guard_home: Path
) -> None:
    log = tmp_path / "ran.log"
    argv = guard(*MATCH, policy=policy_file(tmp_path), options=["--name", "store"])
    process = await open_raw(argv, env={"MATCH_LOG": str(log)})
    client = RawClient(process)
    try:
        with anyio.fail_after(60):
            await client.initialize()
            await client.request(1, "tools/list", {})
            # Python keeps the last "path", this server (like some parsers) the first.
            line = (
                '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "read_file", '
                '"arguments": {"path": "/etc/shadow", "path": "/tmp/harmless"}}}'
            )
            await client.send_line(line.encode())
            reply = await client.response(2)
    finally:
        process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()
    reached = [json.loads(entry.split(" ", 1)[1]) for entry in ran(log) if entry.startswith("ran:read_file")]
    assert all(args.get("path") != "/etc/shadow" for args in reached), reply


async def refused(client: Any, name: str) -> bool:
    """A tool error or a JSON-RPC error: either way the call was turned away."""
    from mcp.shared.exceptions import MCPError

    try:
        return bool((await client.call_tool(name, {})).is_error)
    except MCPError:
        return True


@pytest.mark.parametrize("mode", ERAS)
async def test_namespaced_spellings_of_a_denied_tool_never_reach_a_server_that_folds_names(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    log = tmp_path / "ran.log"
    servers = {
        "store": {"command": PY, "args": [str(FIXTURES / "attack_match_server.py")]},
        "other": {"command": PY, "args": [str(FIXTURES / "sidestep_server.py")]},
    }
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": servers, "mcpGuard": {"policy": policy_file(tmp_path)}}))
    spellings = [
        "store__delete_all",
        "store__DELETE_ALL",
        "store__ delete_all",
        "STORE__delete_all",
        " store__delete_all",
        "store__store__delete_all",
        "store__other__delete_all",
        "other__delete_all",
        "other__DELETE_ALL",
        "store___delete_all",
        "store__ｄｅｌｅｔｅ_ａｌｌ",
        "delete_all",
    ]
    argv = [PY, "-m", "mcp_guard", "run", "--config", str(config)]
    env = {"MATCH_LOG": str(log), "SIDESTEP_LOG": str(log)}
    with anyio.fail_after(60):
        async with connect(argv, mode=mode, env=env) as client:
            await client.list_tools()
            results = {s: await refused(client, s) for s in spellings}
    assert [s for s, r in results.items() if not r] == []
    assert not [line for line in ran(log) if line.startswith("ran:delete_all")]


@pytest.mark.parametrize(
    "line",
    [
        '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete_all", "name": "read_file", '
        '"arguments": {"path": "/tmp/x"}}}',
        '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete_all", "arguments": {}}, '
        '"params": {"name": "read_file", "arguments": {"path": "/tmp/x"}}}',
        '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "method": "tools/list", "params": {"name": "delete_all"}}',
    ],
)
async def test_duplicate_envelope_keys_cannot_show_the_policy_one_tool_and_the_server_another(
    tmp_path: Path, guard_home: Path, line: str
) -> None:
    log = tmp_path / "ran.log"
    argv = guard(*MATCH, policy=policy_file(tmp_path), options=["--name", "store"])
    process = await open_raw(argv, env={"MATCH_LOG": str(log)})
    client = RawClient(process)
    try:
        with anyio.fail_after(60):
            await client.initialize()
            await client.request(1, "tools/list", {})
            await client.send_line(line.encode())
            await client.response(2)
            await client.request(3, "ping")  # everything before it has been handled
    finally:
        process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()
    assert not [entry for entry in ran(log) if entry.startswith("ran:delete_all")]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_call_to_a_server_whose_listing_fails_is_refused_not_given_the_default_risk(
    tmp_path: Path, guard_home: Path, mode: str
) -> None:
    log = tmp_path / "ran.log"
    argv = guard(*MATCH, policy=policy_file(tmp_path), options=["--name", "store"])
    with anyio.fail_after(60):
        async with connect(argv, mode=mode, env={"MATCH_LOG": str(log), "MATCH_LIST_FAILS": "1"}) as client:
            turned_away = await refused(client, "delete_all")  # critical by its tag, which the guard cannot see
    assert turned_away
    assert "ran:delete_all {}" not in ran(log)

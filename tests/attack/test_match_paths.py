"""Red team, path matching against the real npm server-filesystem: a deny on ``/etc/*`` must hold however
the path is spelled, in both protocol eras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import ERAS, connect, guard, node_server

pytestmark = pytest.mark.anyio

POLICY = """\
version: 1
defaults: {action: allow}
rules:
  - name: no-etc
    match: {args: {"$.path": "/etc/*"}}
    action: deny
  - name: no-etc-in-lists
    match: {tool: read_multiple_files, args: {"$.paths": "/etc/*"}}
    action: deny
"""


def policy_file(tmp_path: Path) -> str:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return str(policy)


def text(result: Any) -> str:
    return result.content[0].text  # type: ignore[no-any-return]


def leaked(result: Any) -> bool:
    """Did the server hand back /etc/hosts? (Every Linux /etc/hosts names localhost.)"""
    return not result.is_error and "localhost" in text(result)


SPELLINGS = [
    "file:///etc/hosts",
    "/etc/hosts/",
    "/etc/hosts\u0000",
    " /etc/hosts",
    "/etc/hosts ",
    "~/../../../../etc/hosts",
    "/tmp/../etc/./hosts",
    "\\etc\\hosts",
    "/etc\\hosts",
    "/%65tc/hosts",
    "file:///%65tc/hosts",
    "/etc/hosts.",
    "/etc./hosts",
]


@pytest.mark.parametrize("mode", ERAS)
async def test_no_spelling_of_etc_hosts_is_read_through_a_deny_on_etc(tmp_path: Path, mode: str) -> None:
    argv = guard(*node_server("server-filesystem", "/"), policy=policy_file(tmp_path))
    with anyio.fail_after(90):
        async with connect(argv, mode=mode) as client:
            results = {s: await client.call_tool("read_text_file", {"path": s}) for s in SPELLINGS}
            listed = {s: await client.call_tool("read_multiple_files", {"paths": [s]}) for s in SPELLINGS}
    assert [s for s, r in results.items() if leaked(r)] == []
    assert [s for s, r in listed.items() if "localhost" in text(r)] == []


@pytest.mark.parametrize("mode", ERAS)
async def test_the_proc_self_root_link_that_every_linux_has_does_not_lead_round_a_deny_on_etc(
    tmp_path: Path, mode: str
) -> None:
    argv = guard(*node_server("server-filesystem", "/"), policy=policy_file(tmp_path))
    with anyio.fail_after(90):
        async with connect(argv, mode=mode) as client:
            direct = await client.call_tool("read_text_file", {"path": "/proc/self/root/etc/hosts"})
            listed = await client.call_tool("read_multiple_files", {"paths": ["/proc/self/root/etc/hosts"]})
    assert not leaked(direct), "the server read /etc/hosts through /proc/self/root"
    assert "localhost" not in text(listed)


async def test_a_symlink_inside_the_servers_folder_does_not_lead_round_a_deny_on_etc(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "innocent").symlink_to("/etc")
    argv = guard(*node_server("server-filesystem", "/"), policy=policy_file(tmp_path))
    with anyio.fail_after(90):
        async with connect(argv) as client:
            via_link = await client.call_tool("read_text_file", {"path": str(work / "innocent" / "hosts")})
    assert not leaked(via_link), "the server followed a symlink into /etc"


async def roots_applied(client: Any, expected: str) -> None:
    """The server takes the client's roots after its handshake: wait until it reports them."""
    while expected not in text(await client.call_tool("list_allowed_directories", {})):
        pass


@pytest.mark.parametrize("root", ["file:///%65tc", "file://localhost/etc", "file:///tmp/../etc", "file:///etc/"])
async def test_a_relative_path_under_a_root_spelled_oddly_is_still_judged_where_the_server_reads_it(
    tmp_path: Path, root: str
) -> None:
    async def odd_root(ctx: Any) -> Any:
        from mcp import types

        return types.ListRootsResult(roots=[types.Root(uri=root, name="odd")])

    argv = guard(*node_server("server-filesystem"), policy=policy_file(tmp_path))
    with anyio.fail_after(90):
        async with connect(argv, list_roots_callback=odd_root) as client:
            await roots_applied(client, "/etc")
            relative = await client.call_tool("read_text_file", {"path": "hosts"})
    assert not leaked(relative), f"read /etc/hosts as 'hosts' under root {root}"


async def test_a_decoy_path_argument_does_not_satisfy_an_allow_rule_for_a_tool_that_reads_other_keys(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("hello from notes")
    policy = tmp_path / "allow.yaml"
    # A user's allowlist: nothing runs unless its path is in the work folder.
    policy.write_text(
        f"version: 1\ndefaults: {{action: deny}}\nrules:\n  - name: work-only\n"
        f'    match: {{args: {{"$.path": "{work}/*"}}}}\n    action: allow\n'
    )
    argv = guard(*node_server("server-filesystem", "/"), policy=str(policy))
    with anyio.fail_after(90):
        async with connect(argv) as client:
            fine = await client.call_tool("read_text_file", {"path": str(work / "notes.txt")})
            # read_multiple_files reads `paths`; the server ignores the extra `path`, the policy sees only it.
            decoy = await client.call_tool(
                "read_multiple_files", {"paths": ["/etc/hosts"], "path": str(work / "notes.txt")}
            )
    assert not fine.is_error
    assert "localhost" not in text(decoy), "an allow on $.path let read_multiple_files read /etc/hosts"


async def test_a_tilde_path_is_judged_against_the_home_the_server_expands_it_to(tmp_path: Path) -> None:
    import json
    import sys

    home = tmp_path / "svc"
    home.mkdir()
    (home / "secret.txt").write_text("svc-private")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\ndefaults: {{action: allow}}\nrules:\n  - name: no-svc\n"
        f'    match: {{args: {{"$.path": "{home}/*"}}}}\n    action: deny\n'
    )
    fs = node_server("server-filesystem", "/")
    config = tmp_path / "servers.json"  # the server runs as a service account with its own HOME
    config.write_text(
        json.dumps(
            {
                "mcpServers": {"files": {"command": fs[0], "args": fs[1:], "env": {"HOME": str(home)}}},
                "mcpGuard": {"policy": str(policy)},
            }
        )
    )
    argv = [sys.executable, "-m", "mcp_guard", "run", "--config", str(config)]
    with anyio.fail_after(90):
        async with connect(argv) as client:
            direct = await client.call_tool("read_text_file", {"path": str(home / "secret.txt")})
            tilde = await client.call_tool("read_text_file", {"path": "~/secret.txt"})
    assert direct.is_error and "no-svc" in text(direct)
    assert "svc-private" not in text(tilde), "~ was expanded by the server to a home the policy denies"

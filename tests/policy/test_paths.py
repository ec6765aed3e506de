"""Path rules hold however the model spells the path: against the real server-filesystem, a deny
on ``/etc/*`` stops ``//etc/hosts``, ``/./etc/hosts``, ``/tmp/../etc/hosts``, ``etc/hosts`` under
root ``/``, and a list with one of them in it; a relative path with no known roots is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import types

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

SPELLINGS = ["//etc/hosts", "/./etc/hosts", "/tmp/../etc/hosts", "/etc//hosts/", "/etc/./hosts"]


def files(tmp_path: Path) -> tuple[str, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    notes = tmp_path / "work" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("hello from notes")
    return str(policy), notes


def text(result: Any) -> str:
    return result.content[0].text  # type: ignore[no-any-return]


async def roots_applied(client: Any, expected: str) -> None:
    """The server takes the client's roots after its handshake: wait until it reports them."""
    while expected not in text(await client.call_tool("list_allowed_directories", {})).splitlines():
        pass


@pytest.mark.parametrize("mode", ERAS)
async def test_a_deny_on_etc_holds_against_every_spelling_of_the_path(tmp_path: Path, mode: str) -> None:
    policy, notes = files(tmp_path)
    argv = guard(*node_server("server-filesystem", "/"), policy=policy)
    with anyio.fail_after(60):
        async with connect(argv, mode=mode) as client:
            spelled = {p: await client.call_tool("read_text_file", {"path": p}) for p in SPELLINGS}
            listed = await client.call_tool("read_multiple_files", {"paths": [str(notes), "/tmp/../etc/hosts"]})
            nested = await client.call_tool("read_multiple_files", {"paths": [[str(notes)], ["//etc/passwd"]]})
            relative = await client.call_tool("read_text_file", {"path": "etc/hosts"})
            directory = await client.call_tool("list_directory", {"path": "/etc/"})
            fine = await client.call_tool("read_text_file", {"path": str(notes)})
            fine_list = await client.call_tool("read_multiple_files", {"paths": [str(notes)]})
    for spelling, result in spelled.items():
        assert result.is_error and "rule 'no-etc'" in text(result), spelling
    assert listed.is_error and "rule 'no-etc-in-lists'" in text(listed)
    assert nested.is_error and "rule 'no-etc-in-lists'" in text(nested)
    assert relative.is_error and "relative" in text(relative)  # no roots known (the server got "/" on its command line)
    assert directory.is_error and "rule 'no-etc'" in text(directory)  # /etc/* covers /etc itself
    assert not fine.is_error and text(fine) == "hello from notes"
    assert not fine_list.is_error and "hello from notes" in text(fine_list)


async def test_relative_paths_resolve_against_the_roots_the_client_gave_the_server(tmp_path: Path) -> None:
    policy, notes = files(tmp_path)

    async def root_is_slash(ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///", name="everything")])

    argv = guard(*node_server("server-filesystem"), policy=policy)
    with anyio.fail_after(60):
        async with connect(argv, list_roots_callback=root_is_slash) as client:
            await roots_applied(client, "/")
            relative = await client.call_tool("read_text_file", {"path": "etc/hosts"})
            dotted = await client.call_tool("read_text_file", {"path": "tmp/../etc/./hosts"})
            in_list = await client.call_tool("read_multiple_files", {"paths": [str(notes)[1:], "etc/hosts"]})
            fine = await client.call_tool("read_text_file", {"path": str(notes)[1:]})
    assert relative.is_error and "rule 'no-etc'" in text(relative)
    assert dotted.is_error and "rule 'no-etc'" in text(dotted)
    assert in_list.is_error and "rule 'no-etc-in-lists'" in text(in_list)
    assert not fine.is_error and text(fine) == "hello from notes"  # relative, resolved under "/": allowed


async def test_a_relative_path_is_refused_when_the_servers_roots_are_unknown(tmp_path: Path) -> None:
    policy, notes = files(tmp_path)
    argv = guard(*node_server("server-filesystem", str(notes.parent)), policy=policy)
    with anyio.fail_after(60):
        async with connect(argv) as client:  # offers no roots: the server uses its command line
            relative = await client.call_tool("read_text_file", {"path": "notes.txt"})
            escape = await client.call_tool("read_text_file", {"path": "../../../../../../etc/hosts"})
            absolute = await client.call_tool("read_text_file", {"path": str(notes)})
    assert relative.is_error and "'notes.txt' is relative" in text(relative) and "rule 'no-etc'" in text(relative)
    assert escape.is_error and "is relative" in text(escape)
    assert not absolute.is_error and text(absolute) == "hello from notes"

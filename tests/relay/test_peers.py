"""The other reference servers through the guard: filesystem, memory, git, time; logging and
resource subscriptions; several upstreams at once."""

from __future__ import annotations

import json
import subprocess

import anyio
import pytest

import mcp_types as types
from tests.conftest import ERAS, PY, connect, dump, everything, guard, node_server, probe, python_server

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ERAS)
async def test_filesystem_server_reads_and_writes_through_the_guard(tmp_path, mode: str) -> None:
    (tmp_path / "in.txt").write_text("inside")
    with anyio.fail_after(30):
        async with connect(guard(*node_server("server-filesystem", str(tmp_path))), mode) as client:
            read = await client.call_tool("read_text_file", {"path": str(tmp_path / "in.txt")})
            wrote = await client.call_tool("write_file", {"path": str(tmp_path / "out.txt"), "content": "written"})
            outside = await client.call_tool("read_text_file", {"path": "/etc/hostname"})
    assert read.content[0].text == "inside"  # type: ignore[union-attr]
    assert not wrote.is_error and (tmp_path / "out.txt").read_text() == "written"
    assert outside.is_error  # the server's own refusal, relayed


@pytest.mark.parametrize("mode", ERAS)
async def test_memory_server_keeps_its_graph_through_the_guard(tmp_path, mode: str) -> None:
    env = {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}
    entity = {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}
    with anyio.fail_after(30):
        async with connect(guard(*node_server("server-memory")), mode, env=env) as client:
            await client.call_tool("create_entities", {"entities": [entity]})
            graph = await client.call_tool("read_graph", {})
    assert graph.structured_content is not None
    assert graph.structured_content["entities"][0]["name"] == "Ada"


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("upstream_era", ["auto", "2026-07-28"])
async def test_git_server_of_the_2026_era_serves_clients_of_both_eras(tmp_path, mode: str, upstream_era: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("a")
    argv = guard(*python_server("mcp-server-git", "--repository", str(repo)), options=["--protocol", upstream_era])
    with anyio.fail_after(30):
        async with connect(argv, mode) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            status = await client.call_tool("git_status", {"repo_path": str(repo)})
            branch = await client.call_tool("git_create_branch", {"repo_path": str(repo), "branch_name": "feature"})
    assert {"git_status", "git_commit", "git_create_branch"} <= tools
    assert "a.txt" in status.content[0].text  # type: ignore[union-attr]
    assert not status.is_error
    assert branch.is_error or "feature" in branch.content[0].text  # an empty repo has no base commit


@pytest.mark.parametrize("mode", ERAS)
async def test_time_server_answers_through_the_guard(mode: str) -> None:
    with anyio.fail_after(30):
        async with connect(guard(*python_server("mcp-server-time", "--local-timezone", "UTC")), mode) as client:
            result = await client.call_tool("get_current_time", {"timezone": "UTC"})
    assert "UTC" in dump(result)["content"][0]["text"]


async def test_logging_and_resource_subscriptions_reach_a_handshake_era_client() -> None:
    logs: list[types.LoggingMessageNotificationParams] = []
    updates: list[str] = []
    got_update = anyio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            got_update.set()

    uri = "demo://resource/dynamic/text/1"
    with anyio.fail_after(40):
        async with connect(guard(*everything()), "legacy", logging_callback=on_log, message_handler=on_message) as client:
            await client.set_logging_level("debug")
            await client.call_tool("toggle-simulated-logging", {})
            await client.subscribe_resource(uri)
            await client.call_tool("toggle-subscriber-updates", {})
            await got_update.wait()
            while not logs:
                await anyio.sleep(0.05)
            await client.unsubscribe_resource(uri)
    assert updates[0] == uri
    assert logs[0].level in ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


async def test_two_servers_offering_the_same_resource_are_refused(tmp_path) -> None:
    config = tmp_path / "dup.json"
    ev = everything()
    config.write_text(json.dumps({"mcpServers": {"one": {"command": ev[0], "args": ev[1:]}, "two": {"command": ev[0], "args": ev[1:]}}}))
    with anyio.fail_after(30):
        with pytest.raises(BaseExceptionGroup) as info:
            async with connect([PY, "-m", "mcp_guard", "run", "--no-policy", "--config", str(config)]) as client:
                await client.list_tools()
    assert any("both offer resource" in message for message in leaf_messages(info.value))


def leaf_messages(exc: BaseException) -> list[str]:
    if isinstance(exc, BaseExceptionGroup):
        return [m for inner in exc.exceptions for m in leaf_messages(inner)]
    return [str(exc)]


async def test_a_handshake_era_client_gets_list_changes_and_resource_updates_from_a_2026_upstream() -> None:
    """A 2026 server sends these only on a subscriptions/listen stream; the guard holds one.

    (The same from a handshake-era server is covered with server-everything above; the SDK's
    handshake-era server refuses resources/subscribe, so the probe cannot show it.)"""
    changed, updated = anyio.Event(), anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()
        if isinstance(message, types.ResourceUpdatedNotification) and str(message.params.uri) == "probe://hello":
            updated.set()

    with anyio.fail_after(30):
        async with connect(guard(*probe(), options=["--protocol", "2026-07-28"]), "legacy", message_handler=on_message) as client:
            await client.subscribe_resource("probe://hello")
            await client.call_tool("touch", {"uri": "probe://hello"})
            await changed.wait()
            await updated.wait()

"""Red team, promise 2 (one egress): canaries written by a hostile upstream into corners of the
protocol must never reach the client unmasked; values the model only saw as placeholders, written
back through their origin and read back by another route, must come back masked too."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.attack.common import LeakClient, assert_clean, attack_canaries, open_guard, stop

pytestmark = pytest.mark.anyio


def _values(env: dict[str, str]) -> list[str]:
    return [env["LEAK_KEY"], env["LEAK_EMAIL"], env["LEAK_PASSWORD"], env["LEAK_CARD"]]


async def _drive(tmp_path: Path, action: Any, extra: dict[str, str] | None = None) -> None:
    env = {**attack_canaries(), **(extra or {})}
    process, client = await open_guard(tmp_path, env)
    try:
        with anyio.fail_after(30):
            await action(client)
            assert (await client.request(99, "ping"))["result"] == {}
        assert_clean(bytes(client.raw), client.seen, _values(env))
    finally:
        await stop(process)


async def test_initialize_server_info_and_experimental_capabilities_reach_the_client_masked(tmp_path: Path) -> None:
    async def action(c: LeakClient) -> None:
        assert c.seen[0]["result"]["serverInfo"]  # the handshake answer is part of what is scanned
    await _drive(tmp_path, action)


async def test_tool_titles_annotations_and_schema_defaults_enums_and_consts_reach_the_client_masked(
    tmp_path: Path,
) -> None:
    async def action(c: LeakClient) -> None:
        listed = await c.request(1, "tools/list")
        assert "leak2" in json.dumps(listed)
    await _drive(tmp_path, action)


async def test_a_listing_cursor_from_the_upstream_reaches_the_client_masked(tmp_path: Path) -> None:
    async def action(c: LeakClient) -> None:
        listed = await c.request(1, "tools/list")
        assert "nextCursor" in listed["result"]
    await _drive(tmp_path, action, {"ATTACK_CURSOR": "1"})


ROUTES = ["keys", "number", "number_text", "escaped", "unknown_field", "unknown_block", "annotations", "audio",
          "link", "cancelled", "elicit_url", "elicit_schema", "sampling_media", "roots_meta", "log_keys",
          "error_data", "split_at", "split_card", "broken_answer", "deep_answer", "nan_answer", "structural", "request_id"]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_canary_in_an_uncommon_corner_of_a_call_reaches_the_client_masked(tmp_path: Path, route: str) -> None:
    async def action(c: LeakClient) -> None:
        await c.request(1, "tools/call", {"name": "leak2", "arguments": {"route": route}})
    await _drive(tmp_path, action)


async def test_an_octet_stream_resource_blob_reaches_the_client_masked(tmp_path: Path) -> None:
    async def action(c: LeakClient) -> None:
        await c.request(1, "resources/list")
        await c.request(2, "resources/read", {"uri": "file:///bin"})
    await _drive(tmp_path, action)


LAUNDER = ["back_log", "back_error", "back_structured", "back_split", "back_escaped", "back_elicit", "back_key"]


@pytest.mark.parametrize("tool", LAUNDER)
async def test_a_value_written_back_as_a_placeholder_comes_back_masked_by_every_route(tmp_path: Path, tool: str) -> None:
    env = attack_canaries()
    process, client = await open_guard(tmp_path, env)
    try:
        with anyio.fail_after(30):
            # The password is only recognisable by its context: the model sees it as a placeholder.
            shown = await _show_password(client, env)
            stored = await client.request(4, "tools/call", {"name": "store", "arguments": {"value": shown}})
            assert "result" in stored
            await client.request(5, "tools/call", {"name": tool, "arguments": {}})
            assert (await client.request(6, "ping"))["result"] == {}
        assert_clean(bytes(client.raw), client.seen, [env["LEAK_PASSWORD"]])
    finally:
        await stop(process)


async def _show_password(client: LeakClient, env: dict[str, str]) -> str:
    """Have the server hand back `password=<raw>` once so the guard masks it, and return the placeholder."""
    await client.request(30, "tools/call", {"name": "store", "arguments": {"value": f"password={env['LEAK_PASSWORD']}"}})
    reply = await client.request(31, "tools/call", {"name": "back_structured", "arguments": {}})
    found = re.search(r"<SECRET_\d+>", json.dumps(reply))
    assert found is not None, "the password never became a placeholder"
    return found.group(0)

"""A handshake-era upstream's mid-call question, as a 2026-07-28 client receives it.

The guard turns an upstream's server-to-client request into an input-required round. Whatever the
upstream put in `params` (nothing, as roots/list usually has, or something that is not an object),
the round's input request carries an object there: clients validate the whole round against the
schema, and the TypeScript SDK rejected it outright when `params` was null.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from mcp_guard.protocol import era
from tests.rawclient import RawClient, open_raw
from tests.relay.test_robustness import call, run_guard, stop, write_config

pytestmark = pytest.mark.anyio

MODERN_ROOTS_META = {
    era.PROTOCOL_KEY: era.MODERN,
    era.CLIENT_INFO_KEY: {"name": "raw-2026", "version": "1"},
    era.CLIENT_CAPS_KEY: {"roots": {}},
}


@pytest.mark.parametrize("args", [{}, {"params": "not an object"}, {"params": [1, 2]}, {"params": None}])
async def test_an_upstream_question_without_object_params_reaches_a_2026_client_with_object_params(
    tmp_path: Any, args: dict[str, Any]
) -> None:
    process = await open_raw(run_guard(write_config(tmp_path)))
    client = RawClient(process)
    try:
        with anyio.fail_after(20):
            reply = await call(client, 1, "ask_bare", args, **MODERN_ROOTS_META)
            result = reply["result"]
            assert result["resultType"] == "input_required", result
            # The upstream may also ask for roots once it is initialized: every question counts.
            requests = list(result["inputRequests"].values())
            assert requests and all(request["method"] == "roots/list" for request in requests), requests
            assert all(isinstance(request["params"], dict) for request in requests), requests
    finally:
        await stop(client)

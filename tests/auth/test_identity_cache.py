"""Results that depend on the caller (listings filtered by policy, values masked with the caller's
vault) never leave the guard marked as shareable, whatever scope the upstream gave them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.auth.support import FIXTURES, PY, bearer, create_token, gateway, stdio

pytestmark = pytest.mark.anyio

HIDES_WIRE = """version: 1
defaults: {action: allow}
rules:
  - {name: ops-no-wire, match: {tool: wire, group: ops}, action: deny}
"""


def _modern(method: str, params: dict[str, Any], name: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    headers = {"Accept": "application/json", "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    return body, headers


async def test_listings_and_reads_an_upstream_marks_public_reach_each_caller_marked_private(tmp_path: Path) -> None:
    olga, dan = create_token("olga", "ops"), create_token("dan")
    server = stdio([PY, str(FIXTURES / "public_cache_server.py")])
    server["protocol"] = "2026-07-28"
    got: dict[str, Any] = {}
    async with gateway(tmp_path, {"memo": server}, HIDES_WIRE) as url:
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                for who, token in (("olga", olga), ("dan", dan)):
                    body, headers = _modern("tools/list", {})
                    got[f"{who}-tools"] = (await http.post(url, json=body, headers={**headers, **bearer(token)})).json()
                body, headers = _modern("resources/read", {"uri": "memo://contact"}, "memo://contact")
                got["read"] = (await http.post(url, json=body, headers={**headers, **bearer(dan)})).json()
                body, headers = _modern("resources/list", {})
                got["resources"] = (await http.post(url, json=body, headers={**headers, **bearer(dan)})).json()
    olgas, dans = got["olga-tools"]["result"], got["dan-tools"]["result"]
    assert [t["name"] for t in olgas["tools"]] == ["say"] and [t["name"] for t in dans["tools"]] == ["say", "wire"]
    for result in (olgas, dans, got["read"]["result"], got["resources"]["result"]):
        assert result["cacheScope"] == "private"
    assert "@example.com" not in str(got["read"])  # masked with Dan's vault: his alone

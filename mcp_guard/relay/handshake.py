"""The MCP handshake with one upstream, in either era: what the client said, what was agreed.

:func:`agree` speaks ``initialize`` (handshake era) or ``server/discover`` (2026-07-28) in the
order the config or the client's own era asks for, and returns what the server said as an
:class:`Agreed`; the upstream adopts it. Nothing here keeps state: the upstream owns its fields,
and runs one handshake at a time for everyone who needs the server (see ``Upstream.connect``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from ..errors import RPCError
from ..protocol import era, jsonrpc
from ..protocol.era import LATEST_HANDSHAKE, LEGACY

logger = logging.getLogger(__name__)

__all__ = ["CONNECT_TIMEOUT_S", "GUARD_INFO", "Agreed", "ClientFacts", "agree"]

# The first handshake may wait for `npx` or a slow interpreter to boot.
CONNECT_TIMEOUT_S = 60.0

GUARD_INFO = {"name": "mcp-guard", "version": "0.1.0"}


@dataclass
class ClientFacts:
    """What a client said about itself: at ``initialize`` (handshake era) or per request (2026)."""

    era: str = LEGACY
    version: str = LATEST_HANDSHAKE
    capabilities: dict[str, Any] = field(default_factory=dict)
    client_info: dict[str, Any] | None = None
    log_level: str | None = None

    def envelope(self) -> dict[str, Any]:
        """The 2026-07-28 ``_meta`` keys that carry these facts toward a modern upstream."""
        env: dict[str, Any] = {
            era.PROTOCOL_KEY: era.MODERN,
            era.CLIENT_INFO_KEY: self.client_info or GUARD_INFO,
            era.CLIENT_CAPS_KEY: era.without_tasks(self.capabilities),
        }
        if self.log_level:
            env[era.LOG_LEVEL_KEY] = self.log_level
        return env


@dataclass(frozen=True)
class Agreed:
    """What the server answered to the handshake."""

    era: str
    version: str
    server_info: dict[str, Any]
    capabilities: dict[str, Any]
    instructions: str | None


class Peer(Protocol):
    """The upstream as the handshake needs it."""

    name: str
    protocol: str
    dead: str | None

    def describe(self) -> str: ...

    async def request(self, method: str, params: dict[str, Any] | None, **options: Any) -> Any: ...


async def agree(peer: Peer, facts: ClientFacts) -> Agreed:
    """Handshake in the era the config asks for or, on ``auto``, the client's own first."""
    if peer.protocol == "auto":
        order = [era.LEGACY, era.MODERN] if facts.era == era.LEGACY else [era.MODERN, era.LEGACY]
    else:
        order = [era.LEGACY if peer.protocol == "legacy" else era.MODERN]
    errors = []
    for attempt in order:
        try:
            with anyio.fail_after(CONNECT_TIMEOUT_S):
                if attempt == era.LEGACY:
                    return await _initialize(peer, facts)
                return await _discover(peer, facts)
        except TimeoutError:
            errors.append(f"no answer within {CONNECT_TIMEOUT_S:.0f} s")
            break
        except RPCError as exc:
            errors.append(f"{'initialize' if attempt == era.LEGACY else 'server/discover'}: {exc.message}")
            if peer.dead is not None:
                break
    raise RPCError(
        jsonrpc.UPSTREAM_UNAVAILABLE,
        f"upstream {peer.name!r} ({peer.describe()}) did not complete the MCP handshake: " + "; ".join(errors),
    )


async def _initialize(peer: Peer, facts: ClientFacts) -> Agreed:
    version = facts.version if facts.era == era.LEGACY else era.LATEST_HANDSHAKE
    params = {
        "protocolVersion": version,
        "capabilities": era.without_tasks(facts.capabilities),
        "clientInfo": facts.client_info or GUARD_INFO,
    }
    # Bounded by CONNECT_TIMEOUT_S in agree(), not by the request deadline: `npx` may take long.
    result = await peer.request("initialize", params, deadline=False)
    if not isinstance(result, dict):
        raise RPCError(jsonrpc.INTERNAL_ERROR, "initialize result is not an object")
    return Agreed(
        era.LEGACY, str(result.get("protocolVersion", version)), result.get("serverInfo") or {},
        era.without_tasks(result.get("capabilities")), result.get("instructions"),
    )


async def _discover(peer: Peer, facts: ClientFacts) -> Agreed:
    result = await peer.request("server/discover", None, facts=facts, modern=True, deadline=False)
    if not isinstance(result, dict) or era.MODERN not in (result.get("supportedVersions") or []):
        raise RPCError(jsonrpc.INTERNAL_ERROR, f"server does not list {era.MODERN} among its versions")
    meta = result.get("_meta") or {}
    return Agreed(
        era.MODERN, era.MODERN, meta.get(era.SERVER_INFO_KEY) or {},
        era.without_tasks(result.get("capabilities")), result.get("instructions"),
    )

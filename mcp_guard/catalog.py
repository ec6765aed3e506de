"""What the configured servers list, asked outside any client session (``policy check --config``).

Each server is started on its own, handshaken with no client capabilities, listed, and stopped;
one that does not start or answer is reported by name and the others are still listed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio

from .errors import RPCError

logger = logging.getLogger(__name__)

__all__ = ["list_tool_names", "list_tools"]

# How long one server gets to start, answer the handshake and list its tools.
LIST_TIMEOUT_S = 30.0


def list_tool_names(specs: Sequence[Any]) -> dict[str, list[str] | str]:
    """Server name -> the tool names it lists, or why they could not be listed."""
    return {name: tools if isinstance(tools, str) else [t["name"] for t in tools]
            for name, tools in list_tools(specs).items()}


def list_tools(specs: Sequence[Any]) -> dict[str, list[dict[str, Any]] | str]:
    """Server name -> the tool definitions it lists (each with a string name), or why they could not be listed."""
    return {spec.name: anyio.run(_list_one, spec) for spec in specs}


async def _list_one(spec: Any) -> list[dict[str, Any]] | str:
    from .guard import build_hub
    from .relay.upstream import ClientFacts

    hub = build_hub([spec])
    up = hub.upstreams[spec.name]
    found: list[dict[str, Any]] | str = "it did not answer"
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            try:
                with anyio.fail_after(LIST_TIMEOUT_S):
                    facts = ClientFacts()
                    await up.connect(facts)
                    tools = []
                    if "tools" in up.capabilities:
                        tools = await hub.router.list_all(up, "tools/list", "tools", facts)
                found = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
            except TimeoutError:
                found = f"no answer within {LIST_TIMEOUT_S:.0f} s"
            except RPCError as exc:
                found = exc.message
            tg.cancel_scope.cancel()
    except Exception as exc:  # one broken server must not stop the others being listed
        logger.debug("listing %s failed", spec.name, exc_info=True)
        found = str(exc) or type(exc).__name__
    return found

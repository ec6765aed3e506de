"""The client's methods that reach several upstreams at once, or one found by name or URI: the
aggregated lists (one page of each server's, under one cursor), resources, completions and a
2026 ``subscriptions/listen`` stream. Every request still goes through :meth:`Hub.forward`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import RPCError
from ..protocol import era, jsonrpc
from .router import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from .hub import Hub
    from .session import RequestContext

logger = logging.getLogger(__name__)

LISTS = {
    "tools/list": ("tools", "tools"),
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("resourceTemplates", "resources"),
}
_NAMESPACED = {"tools", "prompts", "resourceTemplates"}


async def listing(hub: Hub, ctx: RequestContext, method: str, params: dict[str, Any]) -> Any:
    key, capability = LISTS[method]
    if not hub.aggregated:
        result = await hub.forward(ctx, hub.single, method, params)
        hub.uris.learn_list(hub.single, key, result)
        return result
    cursor = params.get("cursor")
    positions = decode_cursor(cursor) if cursor is not None else {up.name: None for up in hub.live()}
    items: list[Any] = []
    following: dict[str, str] = {}
    base = {k: v for k, v in params.items() if k != "cursor"}
    for name, position in positions.items():
        up = hub.upstreams.get(name)
        if up is None or not up.ready or capability not in up.capabilities:
            continue
        page = dict(base)
        if position is not None:
            page["cursor"] = position
        try:
            result = await hub.forward(ctx, up, method, page)
        except RPCError as exc:
            logger.warning("%s from %s failed: %s", method, up.name, exc.message)
            continue
        hub.uris.learn_list(up, key, result)
        for item in result.get(key) or []:
            if key in _NAMESPACED and isinstance(item, dict) and isinstance(item.get("name"), str):
                item = hub.router.public_item(up, item)
                if item is None:
                    continue
            items.append(item)
        if result.get("nextCursor"):
            following[name] = result["nextCursor"]
    ctx.origin = ""  # items from several servers: placeholders minted here go back to none
    out: dict[str, Any] = {key: items}
    if following:
        out["nextCursor"] = encode_cursor(following)
    return era.modernize_result(method, out) if ctx.modern else out

async def resource(hub: Hub, ctx: RequestContext, method: str, params: dict[str, Any]) -> Any:
    uri = params.get("uri")
    if not isinstance(uri, str):
        raise RPCError(jsonrpc.INVALID_PARAMS, "uri must be a string")
    candidates = hub.route_uri(uri)
    if method != "resources/read":
        if method == "resources/subscribe":
            ctx.session.subscriptions.add(uri)
        else:
            ctx.session.subscriptions.discard(uri)
        for up in candidates:
            if up.era == era.MODERN:
                up.listen(frozenset(u for s in hub.sessions for u in s.subscriptions if up in hub.route_uri(u)))
                continue
            await hub.forward(ctx, up, method, params)
        return {}
    error: RPCError | None = None
    for up in candidates:
        try:
            result = await hub.forward(ctx, up, method, params)
        except RPCError as exc:
            error = error or exc
            continue
        if hub.aggregated:
            hub.uris.owner.setdefault(uri, up)
        return result
    raise error or RPCError(jsonrpc.INVALID_PARAMS, f"no upstream offers resource {uri!r}")

async def complete(hub: Hub, ctx: RequestContext, params: dict[str, Any]) -> Any:
    ref = params.get("ref")
    if not isinstance(ref, dict):
        raise RPCError(jsonrpc.INVALID_PARAMS, "ref must be an object")
    if ref.get("type") == "ref/prompt":
        up, name = hub.route_name(ref.get("name"), "prompt")
        params = {**params, "ref": {**ref, "name": name}}
    else:
        ups = hub.route_uri(str(ref.get("uri", "")))
        up = ups[0] if ups else hub.single
    return await hub.forward(ctx, up, "completion/complete", params)

async def listen(hub: Hub, ctx: RequestContext, params: dict[str, Any]) -> Any:
    """Serve a 2026 ``subscriptions/listen`` stream from the upstreams' notifications."""
    wanted = params.get("notifications")
    if not isinstance(wanted, dict):
        raise RPCError(jsonrpc.INVALID_PARAMS, "notifications must be an object")
    caps = hub.router.capabilities()
    granted: dict[str, Any] = {}
    for flag, kind in (("toolsListChanged", "tools"), ("promptsListChanged", "prompts"), ("resourcesListChanged", "resources")):
        if wanted.get(flag) and kind in caps:
            granted[flag] = True
    uris = wanted.get("resourceSubscriptions")
    if isinstance(uris, list) and (caps.get("resources") or {}).get("subscribe"):
        granted["resourceSubscriptions"] = [u for u in uris if isinstance(u, str)]
        for uri in granted["resourceSubscriptions"]:
            for up in hub.route_uri(uri):
                if up.era == era.LEGACY:
                    try:
                        await up.request("resources/subscribe", {"uri": uri})
                    except RPCError as exc:
                        logger.info("subscribe %s at %s failed: %s", uri, up.name, exc.message)
    session = ctx.session
    session.listens[ctx.id] = granted
    try:
        await session.send(
            jsonrpc.notification(
                "notifications/subscriptions/acknowledged",
                {"notifications": granted, "_meta": {era.SUBSCRIPTION_ID_KEY: ctx.id}},
            ),
            ctx.id,
        )
        await anyio.sleep_forever()
    finally:
        session.listens.pop(ctx.id, None)
    raise AssertionError("unreachable")

"""The upstream set behind one client session: names, URIs, cursors, capabilities, tool catalog.

With one upstream the guard is transparent: names, URIs, cursors and server info pass as they
are. With several, tools and prompts are namespaced ``server__name``, and this decides where each
name goes.

Resource URIs are not namespaced (tool results refer to them as they are), so the hub learns
which server offers which URI from listings, templates and links in tool results. Aggregated
listings page all servers at once; the cursor the client sees carries one position per server.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Generic, TypeVar

import logging
from typing import TYPE_CHECKING

import anyio

from ..errors import RPCError
from ..protocol import jsonrpc

if TYPE_CHECKING:
    from .upstream import ClientFacts, Upstream

logger = logging.getLogger(__name__)

SEPARATOR = "__"

# What model APIs and clients accept as a tool name. A namespaced name outside it is replaced by a
# short form that is stable (the same server and name always give the same one, in every session
# and process) and collision-free (a hash of the full name), with the original in `_meta`.
_ACCEPTED = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_KEY = "mcp-guard/original-name"

U = TypeVar("U")


class UriRoutes(Generic[U]):
    """URI -> the upstream that offers it, learned as listings and results go by."""

    def __init__(self) -> None:
        self.owner: dict[str, U] = {}
        self.templates: list[tuple[re.Pattern[str], U]] = []

    def learn_list(self, up: U, key: str, result: Any) -> None:
        if not isinstance(result, dict) or key not in ("resources", "resourceTemplates"):
            return
        for item in result.get(key) or []:
            if not isinstance(item, dict):
                continue
            if key == "resources" and isinstance(item.get("uri"), str):
                self.owner.setdefault(item["uri"], up)
            elif isinstance(item.get("uriTemplate"), str):
                self.templates.append((template_regex(item["uriTemplate"]), up))

    def learn_links(self, up: U, result: Any) -> None:
        """Resource links and embedded resources in a tool result point at their server."""
        for block in result.get("content") or [] if isinstance(result, dict) else []:
            if not isinstance(block, dict):
                continue
            uri = block.get("uri") if block.get("type") == "resource_link" else (block.get("resource") or {}).get("uri")
            if isinstance(uri, str):
                self.owner.setdefault(uri, up)

    def find(self, uri: str) -> U | None:
        owner = self.owner.get(uri)
        if owner is not None:
            return owner
        for pattern, up in self.templates:
            if pattern.fullmatch(uri):
                return up
        return None


def short_name(full: str) -> str:
    """Up to 64 characters of [A-Za-z0-9_-]: the readable start of the name and a hash of all of it."""
    import hashlib

    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", full)[: 64 - len(digest) - 1].rstrip("_")
    return f"{readable}_{digest}" if readable else f"tool_{digest}"


def template_regex(template: str) -> re.Pattern[str]:
    """A loose matcher for an RFC 6570 URI template: each expression matches any run of text."""
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile(".*".join(re.escape(p) for p in parts))


def encode_cursor(positions: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(positions).encode()).decode()


def decode_cursor(cursor: Any) -> dict[str, str | None]:
    try:
        value = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
    except (ValueError, binascii.Error):
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RPCError(jsonrpc.INVALID_PARAMS, "invalid cursor")
    return value


class Router:
    """The upstreams of one hub, and where a name, a URI or a page of a listing goes."""

    def __init__(self) -> None:
        self.upstreams: dict[str, Upstream] = {}
        self.uris: UriRoutes[Upstream] = UriRoutes()
        self._checked = False
        self._tools: dict[str, dict[str, Any]] = {}  # upstream -> tool name -> definition
        self._tools_complete: set[str] = set()
        # upstream -> the filesystem roots the client last gave it (policy/paths.py resolves against them)
        self.roots: dict[str, tuple[str, ...]] = {}
        self._names: dict[str, tuple[str, str]] = {}  # listed name -> (server, the server's own name)

    def public_item(self, up: Upstream, item: dict[str, Any]) -> dict[str, Any] | None:
        """A listed tool or prompt under the name the client sees (aggregated listings only);
        None hides one whose name another server's item already has (never route it to the wrong one)."""
        own = (up.name, item["name"])
        full = f"{up.name}{SEPARATOR}{item['name']}"
        public = full if _ACCEPTED.fullmatch(full) else short_name(full)
        if self._names.setdefault(public, own) != own:
            logger.error("%s from server %r is hidden: its name %r is taken by %r", item["name"], up.name, public, self._names[public])
            return None
        if public == full:
            return {**item, "name": full}
        meta = {**(item.get("_meta") or {}), NAME_KEY: item["name"], "mcp-guard/server": up.name}
        return {**item, "name": public, "_meta": meta}

    def add(self, upstream: Upstream) -> None:
        if SEPARATOR in upstream.name:
            raise ValueError(f"server name {upstream.name!r} may not contain {SEPARATOR!r}")
        self.upstreams[upstream.name] = upstream

    @property
    def aggregated(self) -> bool:
        return len(self.upstreams) != 1

    async def connect(self, facts: ClientFacts) -> None:
        """Handshake with every upstream not yet connected; with one upstream its error is ours."""
        pending = [up for up in self.upstreams.values() if not up.ready and up.dead is None]
        if pending:
            failures: dict[str, RPCError] = {}

            async def one(up: Upstream) -> None:
                try:
                    await up.connect(facts)
                except RPCError as exc:
                    failures[up.name] = exc
                    logger.error("%s", exc.message)

            async with anyio.create_task_group() as tg:
                for up in pending:
                    tg.start_soon(one, up)
            if failures and not self.aggregated:
                raise next(iter(failures.values()))
        if self.aggregated and not self._checked:
            self._checked = True
            await self._check_uri_collisions(facts)
        if not self.aggregated:
            only = self.single
            if only.dead is not None and not only.ready:
                raise RPCError(jsonrpc.UPSTREAM_UNAVAILABLE, only.dead)

    @property
    def single(self) -> Upstream:
        return next(iter(self.upstreams.values()))

    def live(self) -> list[Upstream]:
        return [up for up in self.upstreams.values() if up.ready]

    async def _check_uri_collisions(self, facts: ClientFacts) -> None:
        """Two servers offering the same resource URI would make reads ambiguous: refuse."""
        owners: dict[str, str] = {}
        for up in self.live():
            if "resources" not in up.capabilities:
                continue
            try:
                items = await self.list_all(up, "resources/list", "resources", facts)
            except RPCError as exc:
                logger.warning("could not list resources of %s: %s", up.name, exc.message)
                continue
            for item in items:
                uri = item.get("uri") if isinstance(item, dict) else None
                if not isinstance(uri, str):
                    continue
                if uri in owners and owners[uri] != up.name:
                    message = (
                        f"servers {owners[uri]!r} and {up.name!r} both offer resource {uri!r}; "
                        "mcp-guard refuses to pick one. Remove one of them from the config."
                    )
                    for other in self.upstreams.values():
                        other.dead = message
                    raise RPCError(jsonrpc.INVALID_REQUEST, message)
                owners[uri] = up.name
                self.uris.owner[uri] = up

    async def list_all(self, up: Upstream, method: str, key: str, facts: ClientFacts) -> list[Any]:
        items: list[Any] = []
        params: dict[str, Any] | None = None
        for _ in range(1000):
            result = await up.request(method, params, facts=facts)
            items.extend(result.get(key) or [])
            cursor = result.get("nextCursor")
            if not cursor:
                break
            params = {"cursor": cursor}
        return items

    def capabilities(self) -> dict[str, Any]:
        live = self.live()
        if not self.aggregated and live:
            return dict(live[0].capabilities)
        caps: dict[str, Any] = {}
        for up in live:
            for key, value in up.capabilities.items():
                if key in ("tools", "prompts", "resources") and isinstance(value, dict):
                    merged = caps.setdefault(key, {})
                    for flag, on in value.items():
                        merged[flag] = merged.get(flag) or on
                elif key not in caps:
                    caps[key] = value
        return caps

    def server_info(self, name: str) -> dict[str, Any]:
        if not self.aggregated and self.single.server_info:
            return self.single.server_info
        return {"name": name, "version": "0.1.0"}

    def instructions(self) -> str | None:
        if not self.aggregated:
            return self.single.instructions
        parts = [f"## {up.name}\n{up.instructions}" for up in self.live() if up.instructions]
        return "\n\n".join(parts) or None

    def route_name(self, name: Any, kind: str) -> tuple[Upstream, str]:
        if not isinstance(name, str) or not name:
            raise RPCError(jsonrpc.INVALID_PARAMS, f"the {kind} name must be a non-empty string")
        if not self.aggregated:
            return self.single, name
        if name in self._names:
            server, original = self._names[name]
            return self.upstreams[server], original
        server, sep, rest = name.partition(SEPARATOR)
        up = self.upstreams.get(server)
        if not sep or up is None or not rest:
            raise RPCError(jsonrpc.INVALID_PARAMS, f"unknown {kind} {name!r}: names here look like server{SEPARATOR}{kind}")
        return up, rest

    def route_uri(self, uri: str) -> list[Upstream]:
        if not self.aggregated:
            return [self.single]
        owner = self.uris.find(uri)
        if owner is not None:
            return [owner]
        return [up for up in self.live() if "resources" in up.capabilities]

    def remember_tools(self, up: Upstream, params: dict[str, Any] | None, result: Any) -> None:
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return
        first_page = not (params or {}).get("cursor")
        known = {} if first_page else self._tools.get(up.name, {})
        for tool in result["tools"]:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                known[tool["name"]] = tool
        self._tools[up.name] = known
        if not result.get("nextCursor"):
            self._tools_complete.add(up.name)
        elif first_page:
            self._tools_complete.discard(up.name)

    async def tool_definition(self, facts: ClientFacts, up: Upstream, name: str) -> dict[str, Any] | None:
        """The upstream's own definition of a tool, listing it first if need be."""
        known = self._tools.get(up.name, {})
        if name in known or up.name in self._tools_complete:
            return known.get(name)
        tools = await self.list_all(up, "tools/list", "tools", facts)
        self._tools[up.name] = {t["name"]: t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)}
        self._tools_complete.add(up.name)
        return self._tools[up.name].get(name)

    def forget_tools(self, up: Upstream) -> None:
        """The upstream's tools changed: list them again before the next check."""
        self._tools_complete.discard(up.name)
        self._tools.pop(up.name, None)

    def learn_roots(self, up: Upstream, result: Any) -> None:
        """The client answered this upstream's ``roots/list``: relative paths now resolve against these."""
        from ..policy.paths import roots_from_uris

        # A stdio server runs on this machine: its roots' symbolic links are ours to resolve too.
        local = not hasattr(up.transport, "url")
        self.roots[up.name] = roots_from_uris(result, local=local)

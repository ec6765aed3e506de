"""Where a URI or a paginated listing goes when several upstreams sit behind one guard.

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

from ..protocol import jsonrpc
from ..errors import RPCError

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

"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for serve's /mcp.

Every URL in the document comes from configuration (``--resource`` or ``--public-url``), never
from the request's Host or X-Forwarded-* headers: a client that could steer them could make the
guard name an authorization server of the attacker's choosing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import ConfigError
from .discovery import is_loopback_url

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def checked_resource(url: str) -> str:
    """The resource identifier as configured, refused when a client could not use it as RFC 8707 asks."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"--resource {url!r}: expected an absolute https URL such as https://guard.example/mcp")
    if parts.scheme == "http" and not is_loopback_url(url):
        raise ConfigError(f"--resource {url!r}: plain http is only for loopback; use https")
    if parts.fragment or parts.query:
        raise ConfigError(f"--resource {url!r}: a resource identifier has no query or fragment (RFC 8707)")
    return url


@dataclass(frozen=True)
class ResourceMetadata:
    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """Where the document is served: the well-known prefix inserted before the resource's path."""
        parts = urlsplit(self.resource)
        return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"

    def document(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "resource": self.resource,
            "authorization_servers": list(self.authorization_servers),
            "bearer_methods_supported": ["header"],
        }
        if self.scopes_supported:
            body["scopes_supported"] = list(self.scopes_supported)
        return body

    def routes(self) -> list[Route]:
        """The document at the bare well-known path and at the resource-path-suffixed one (RFC 9728 3.1)."""
        body = self.document()

        async def endpoint(request: Request) -> JSONResponse:
            # Public by design: browser-based MCP clients read it cross-origin before they have any token.
            return JSONResponse(body, headers={"Cache-Control": "max-age=300", "Access-Control-Allow-Origin": "*"})

        paths = {WELL_KNOWN, urlsplit(self.url).path}
        return [Route(path, endpoint, methods=["GET"]) for path in sorted(paths)]

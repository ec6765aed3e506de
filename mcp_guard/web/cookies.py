"""The review page's cookies and the headers every one of its pages carries.

Served over HTTPS (the configured public URL is ``https://``: TLS here or at a proxy in front),
every cookie is ``__Host-``-prefixed and ``Secure``: the browser then refuses it from plain HTTP,
from a sibling subdomain, and with any Domain or Path but ``/``. Whether the page is served over
HTTPS is configuration, never guessed from ``X-Forwarded-Proto``, which any client can send.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # kept out at run time: the stdio relay imports the loopback page, and starlette is not light
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["Cookies", "PAGE_HEADERS", "framed_nowhere"]

# No page of the review app (or the loopback approval page) may be framed: a framing page could
# overlay it and have a reviewer click "Approve" on something they did not see (clickjacking).
# X-Frame-Options is the same rule for browsers that predate CSP's frame-ancestors.
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

_NAMES = {"session": "mcp_guard_review", "signin": "mcp_guard_signin"}


class Cookies:
    def __init__(self, secure: bool) -> None:
        self.secure = secure

    def name(self, kind: str) -> str:
        base = _NAMES[kind]
        return "__Host-" + base if self.secure else base

    def read(self, req: Request, kind: str) -> str:
        return req.cookies.get(self.name(kind), "")

    @staticmethod
    def secret() -> str:
        return secrets.token_urlsafe(32)

    def set(self, response: Response, kind: str, value: str, max_age: int, samesite: Literal["lax", "strict"]) -> None:
        response.set_cookie(
            self.name(kind), value, max_age=max_age, path="/", httponly=True, secure=self.secure, samesite=samesite
        )

    def delete(self, response: Response, kind: str) -> None:
        # A __Host- cookie can only be overwritten with the same attributes, Secure included.
        response.delete_cookie(self.name(kind), path="/", httponly=True, secure=self.secure, samesite="lax")


Endpoint = Callable[["Request"], Awaitable["Response"]]


def framed_nowhere(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with the page headers on every answer it gives (redirects and errors too)."""

    @wraps(endpoint)
    async def wrapped(req: Request) -> Response:
        response = await endpoint(req)
        for name, value in PAGE_HEADERS.items():
            response.headers[name] = value
        return response

    return wrapped

"""Who is calling the HTTP front: the authentication step every /mcp request passes first, and the
per-caller state of authenticated 2026-07-28 exchanges, kept between them until the caller is idle.

Any :class:`~mcp_guard.auth.caller.Authenticator` plugs in here (guard tokens, OIDC); this module
only reads the credential from where it may be (one ``Authorization`` header, never the URL) and
turns a refusal into the 400/401/403 with the ``WWW-Authenticate`` challenge of RFC 6750 / 9728.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ...auth.caller import AuthRefused, Authenticator, Caller, challenge
from ...protocol import jsonrpc

__all__ = ["CallerScopes", "authenticate", "still_valid"]

logger = logging.getLogger(__name__)

# Query parameters a client might put a bearer token in (RFC 6750 section 2.3): refused, since a
# URL ends up in proxy logs and browser history.
TOKEN_PARAMS = ("access_token", "token")


async def authenticate(request: Request, authenticator: Authenticator) -> Caller | Response:
    """The caller of ``request``, or the response that refuses it."""
    try:
        authorization = request.headers.getlist("authorization")
        if len(authorization) > 1:
            raise AuthRefused(400, "a request carries one Authorization header", "invalid_request")
        if any(name in request.query_params for name in TOKEN_PARAMS):
            raise AuthRefused(400, "send the token in the Authorization header, not the URL", "invalid_request")
        return await authenticator.authenticate(authorization[0] if authorization else None)
    except AuthRefused as refused:
        logger.info("refused an /mcp request: %s", refused.description)
        body = jsonrpc.dumps(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, refused.description))
        headers = {"WWW-Authenticate": challenge(refused, authenticator.resource_metadata_url)}
        return Response(body, status_code=refused.status, media_type="application/json", headers=headers)


async def still_valid(authenticator: Authenticator, authorization: str | None, key: str) -> bool:
    """Whether the credential an open stream was opened with still names the caller ``key``."""
    try:
        return (await authenticator.authenticate(authorization)).key == key
    except AuthRefused:
        return False


class _Scope:
    """One caller's state: when last used, and how many exchanges use it now."""

    def __init__(self) -> None:
        self.seen = time.monotonic()
        self.busy = 0


class CallerScopes:
    """Authenticated callers' 2026-07-28 state (vault, session grants), by the session key it is kept under."""

    def __init__(self) -> None:
        self._scopes: dict[str, _Scope] = {}

    def hold(self, key: str) -> Callable[[], None]:
        """Mark one exchange using ``key``'s state; the function returned (idempotent) marks it done."""
        scope = self._scopes.setdefault(key, _Scope())
        scope.busy += 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                scope.busy -= 1
                scope.seen = time.monotonic()

        return release

    async def reap(self, idle_s: float, close: Callable[[str], Awaitable[None]]) -> None:
        """``close`` the state of every caller that sent nothing for ``idle_s``."""
        now = time.monotonic()
        for key, scope in list(self._scopes.items()):
            if not scope.busy and now - scope.seen > idle_s:
                del self._scopes[key]
                logger.info("dropped a caller's 2026 state (vault, session grants) after %.0f s idle", idle_s)
                await close(key)

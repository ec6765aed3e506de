"""Who is calling the HTTP front: the authentication step every /mcp request passes first, and the
per-caller state of authenticated 2026-07-28 exchanges, kept between them until the caller is idle.

Any :class:`~mcp_guard.auth.caller.Authenticator` plugs in here (guard tokens, OIDC); this module
only reads the credential from where it may be (one ``Authorization`` header, never the URL) and
turns a refusal into the 400/401/403 with the ``WWW-Authenticate`` challenge of RFC 6750 / 9728.

Refusals are counted by reason (:class:`Refusals`: ``mcp_guard_auth_refused_total{reason}``) and
logged at WARNING at most once per reason per ``REFUSAL_LOG_S``, with how many there were: an
operator sees a token-guessing flood, and the flood cannot fill the log. They are not audited:
an unauthenticated flood would otherwise grow the audit chain without bound.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from ...auth.caller import REASONS, AuthRefused, Authenticator, Caller, challenge
from ...protocol import jsonrpc

__all__ = ["CallerScopes", "Refusals", "authenticate", "refusal_response", "still_valid"]

logger = logging.getLogger(__name__)

# Query parameters a client might put a bearer token in (RFC 6750 section 2.3): refused, since a
# URL ends up in proxy logs and browser history.
TOKEN_PARAMS = ("access_token", "token")
# Refusals of one reason are logged at most once per this many seconds, with their count.
REFUSAL_LOG_S = 60.0


@dataclass
class Refusals:
    """Counts refused requests by reason (``count``, e.g. a Prometheus counter's) and logs them, rate-limited."""

    count: Callable[[str], None] = lambda reason: None
    every_s: float = REFUSAL_LOG_S
    clock: Callable[[], float] = time.monotonic
    _logged_at: dict[str, float] = field(default_factory=dict)
    _unlogged: dict[str, int] = field(default_factory=dict)

    def refused(self, refused: AuthRefused, path: str) -> None:
        reason = refused.reason if refused.reason in REASONS else "invalid"
        self.count(reason)
        now = self.clock()
        if now - self._logged_at.get(reason, -self.every_s) < self.every_s:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            logger.debug("refused a %s request (%s): %s", path, reason, refused.description)
            return
        more = self._unlogged.pop(reason, 0)
        since = f"; {more} more for this reason since the last such line" if more else ""
        self._logged_at[reason] = now
        logger.warning("refused a %s request (%s): %s%s", path, reason, refused.description, since)


async def authenticate(request: Request, authenticator: Authenticator, refusals: Refusals | None = None) -> Caller | Response:
    """The caller of ``request``, or the response that refuses it (counted in ``refusals``)."""
    try:
        authorization = _authorization(request)
        if any(name in request.query_params for name in TOKEN_PARAMS):
            raise AuthRefused(400, "send the token in the Authorization header, not the URL", "invalid_request")
        return await authenticator.authenticate(authorization)
    except AuthRefused as refused:
        return _refused(request, refused, refusals, authenticator.resource_metadata_url)


def _refused(
    request: Request, refused: AuthRefused, refusals: Refusals | None, resource_metadata: str | None
) -> Response:
    """The response refusing ``request``, counted and logged in ``refusals``."""
    if refusals is not None:
        refusals.refused(refused, request.url.path)
    return refusal_response(refused, resource_metadata)


def _authorization(request: Request) -> str | None:
    """The request's one ``Authorization`` header (None without one); two are refused (400)."""
    sent = request.headers.getlist("authorization")
    if len(sent) > 1:
        raise AuthRefused(400, "a request carries one Authorization header", "invalid_request")
    return sent[0] if sent else None


def refusal_response(refused: AuthRefused, resource_metadata: str | None) -> Response:
    body = jsonrpc.dumps(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, refused.description))
    headers = {"WWW-Authenticate": challenge(refused, resource_metadata)}
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


def protected(
    endpoint: Callable[[Request], Awaitable[Response]], authenticator: Authenticator | None,
    refusals: Refusals | None = None, token: str | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` (e.g. /metrics) behind ``token`` when one is given, else behind ``authenticator``
    (any caller it accepts), else (``--auth none``, loopback only) open as before."""
    if token is None and authenticator is None:
        return endpoint
    expected = token.encode() if token is not None else b""

    async def guarded(request: Request) -> Response:
        if token is None:
            assert authenticator is not None
            caller = await authenticate(request, authenticator, refusals)
            if isinstance(caller, Response):
                return caller
            return await endpoint(request)
        try:
            sent = _authorization(request)
        except AuthRefused as refused:
            return _refused(request, refused, refusals, None)
        scheme, _, given = (sent or "").strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected):
            return await endpoint(request)
        refused = AuthRefused(401, "this endpoint needs its own bearer token", "invalid_token" if sent else None)
        return _refused(request, refused, refusals, None)

    return guarded

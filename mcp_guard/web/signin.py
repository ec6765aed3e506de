"""Reviewers sign in on the review page through the organisation's OpenID provider.

The flow (authorization code with PKCE S256): ``/review/oidc/start`` creates a single-use
``state`` bound to a browser cookie and sends the browser to the provider with the S256
challenge and a ``nonce``; ``/review/oidc/callback`` consumes the state (once, within ten
minutes, only in that browser), exchanges the code, checks the ID token (signature, issuer,
audience, expiry, nonce), reads the groups claim and keeps only the groups the policy names as
reviewer groups. Nobody outside them gets a session.

A session lasts no longer than the provider's word for it: it ends with the ID token (or, with
a refresh token, with the last refresh), and once its last confirmation is older than
``recheck_s`` the next request asks the provider again (refresh, then userinfo) before anything
is shown or decided. A provider that says the grant is gone, or a reviewer no longer in any
reviewer group, ends the session; a provider that cannot be reached refuses this request and
ends nothing. Redirect URIs come from the configured public URL, never from ``Host``.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request as HttpRequest
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..reviewers import SESSION_S, canonical, valid_name
from .cookies import Cookies
from .idp_sessions import LOGIN_S, IdpSession, IdpSessions
from .oidc_rp import OidcError, RelyingParty

logger = logging.getLogger(__name__)

__all__ = ["ProviderUnavailable", "Signin", "SigninSettings", "Signed"]

CALLBACK_PATH = "/review/oidc/callback"
# Reviewer sessions end with the provider's session; offline_access would outlive it, so it is not asked by default.
DEFAULT_SCOPES = "openid profile email groups"


@dataclass(frozen=True)
class SigninSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    public_url: str  # scheme://host[:port] the reviewers' browsers use; the redirect URI is built from it
    reviewer_groups: frozenset[str]
    groups_claim: str = "groups"
    user_claim: str = "preferred_username"
    recheck_s: float = 60.0
    scopes: str = DEFAULT_SCOPES
    allow_private_issuer: bool = False  # the provider may be on a private or link-local address (never cloud metadata)

    @property
    def redirect_uri(self) -> str:
        return self.public_url + CALLBACK_PATH


@dataclass(frozen=True)
class Signed:
    """A signed-in reviewer: the name decisions are recorded under and the reviewer roles held."""

    name: str
    roles: tuple[str, ...]


class ProviderUnavailable(Exception):
    """The session needs the provider's confirmation and the provider could not give it now."""


class Signin:
    def __init__(
        self, settings: SigninSettings, sessions: IdpSessions, cookies: Cookies, page: Any, audit: Any = None
    ) -> None:
        self.settings = settings
        self.audit = audit  # sign-ins, refusals and ends are evidence too; None: not recorded
        self.sessions = sessions
        self.cookies = cookies
        self.page = page  # (title, body, status) -> Response: the review page's own frame
        self.rp = RelyingParty(
            settings.issuer, settings.client_id, settings.client_secret, settings.redirect_uri,
            allow_private=settings.allow_private_issuer,
        )
        self._groups = {canonical(g): g for g in settings.reviewer_groups}
        # One re-check per session at a time (a few sessions may share a lock; it is held briefly).
        self._locks = [anyio.Lock() for _ in range(32)]

    def routes(self) -> list[Route]:
        return [Route("/review/oidc/start", self.start), Route(CALLBACK_PATH, self.callback)]

    def roles(self, claims: dict[str, Any]) -> tuple[str, ...]:
        """The policy's reviewer groups among the groups claim (compared in canonical form)."""
        value = claims.get(self.settings.groups_claim)
        groups: Iterable[Any] = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        found = {self._groups[canonical(g)] for g in groups if isinstance(g, str) and canonical(g) in self._groups}
        return tuple(sorted(found))

    # -- the flow -------------------------------------------------------------------------------

    async def start(self, req: HttpRequest) -> Response:
        # Reuse this browser's binding: two tabs signing in at once must not void each other.
        browser = self.cookies.read(req, "signin") or self.cookies.secret()
        state = self.sessions.begin(browser)
        try:
            url = await self.rp.authorization_url(
                state, self.sessions.derived("nonce", state), self.sessions.derived("pkce", state), self.settings.scopes
            )
        except OidcError as exc:
            logger.warning("reviewer sign-in cannot start: %s", exc)
            return self.page(
                "Sign-in unavailable", f"<p>The identity provider cannot be used now: {html.escape(str(exc))}</p>", 503
            )
        response = RedirectResponse(url, status_code=303)
        # Lax, not Strict: the provider sends the browser back with a cross-site top-level GET.
        self.cookies.set(response, "signin", browser, max_age=int(LOGIN_S), samesite="lax")
        return response

    async def callback(self, req: HttpRequest) -> Response:
        params = req.query_params
        if "error" in params:
            return self._refused(f"The identity provider did not sign you in ({params.get('error', '')[:100]}).", 400)
        state, code = params.get("state", ""), params.get("code", "")
        if not code or not self.sessions.consume(state, self.cookies.read(req, "signin")):
            logger.warning("reviewer sign-in refused: state unknown, used, expired or from another browser")
            return self._refused(
                "This sign-in link is not valid here: it was used already, has expired, or was started"
                " in another browser.",
                400,
            )
        try:
            tokens = await self.rp.exchange(
                code, self.sessions.derived("pkce", state), self.sessions.derived("nonce", state)
            )
            claims = {**tokens.claims, **await self.rp.userinfo(tokens.access_token, tokens.claims["sub"])}
        except OidcError as exc:
            logger.warning("reviewer sign-in refused: %s", exc)
            return self._refused(f"The sign-in could not be completed: {exc}.", 400)
        return self._open_session(claims, tokens)

    def _open_session(self, claims: dict[str, Any], tokens: Any) -> Response:
        value = claims.get(self.settings.user_claim)
        try:
            name = valid_name(value if isinstance(value, str) else "")
        except ValueError as exc:
            return self._refused(f"The provider gave no usable {self.settings.user_claim!r} claim: {exc}.", 403)
        roles = self.roles(claims)
        if not roles:
            logger.warning("reviewer sign-in refused for %s: in no reviewer group", name)
            self._record("reviewer.refused", name=name, reason="in no reviewer group")
            return self._refused(
                f"{name} is signed in at the identity provider but is in no reviewer group"
                " of this guard, so may not review here.",
                403,
            )
        expires = _horizon(time.time() + SESSION_S, tokens, tokens.claims)  # the ID token's exp, not userinfo's
        secret = self.sessions.open(name, roles, self.settings.issuer, str(claims["sub"]), expires, _kept(tokens))
        logger.info("reviewer %s signed in through %s (roles %s)", name, self.settings.issuer, ",".join(roles))
        self._record("reviewer.signed_in", name=name, roles=list(roles))
        response = RedirectResponse("/review", status_code=303)
        self.cookies.set(response, "session", secret, max_age=int(max(1, expires - time.time())), samesite="lax")
        self.cookies.delete(response, "signin")
        return response

    def _record(self, kind: str, **body: Any) -> None:
        if self.audit is not None:
            self.audit.record(kind, {"channel": "web", "issuer": self.settings.issuer, **body})

    def _refused(self, message: str, status: int) -> Response:
        body = f"<p>{html.escape(message)}</p><p><a href='/review/login'>Sign in again</a></p>"
        # The binding cookie stays: a forged callback must not end the login this browser has under way.
        return self.page("Not signed in", body, status)  # type: ignore[no-any-return]

    # -- the session ------------------------------------------------------------------------------

    async def current(self, secret: str) -> Signed | None:
        """The reviewer behind a session cookie, confirmed by the provider within ``recheck_s``.

        Raises ProviderUnavailable when a confirmation is due and the provider cannot give it."""
        session = self.sessions.find(secret)
        if session is None:
            return None
        if time.time() - session.checked < self.settings.recheck_s:
            return Signed(session.name, session.roles)
        lock = self._locks[int(session.hash[:8], 16) % len(self._locks)]
        async with lock:  # one re-check at a time: a rotated refresh token must not be spent twice
            session = self.sessions.find(secret)
            if session is None:
                return None
            if time.time() - session.checked >= self.settings.recheck_s:
                session = await self._recheck(session)
        return Signed(session.name, session.roles) if session is not None else None

    async def _recheck(self, session: IdpSession) -> IdpSession | None:
        tokens = dict(session.tokens)
        try:
            if tokens.get("refresh"):
                fresh = await self.rp.refresh(tokens["refresh"], session.subject)
                tokens.update({"access": fresh.access_token, "refresh": fresh.refresh_token or tokens["refresh"]})
                tokens["id_token"] = fresh.id_token or tokens.get("id_token")
            claims = await self.rp.userinfo(str(tokens.get("access", "")), session.subject)
        except OidcError as exc:
            if not exc.gone:
                logger.warning("reviewer %s could not be re-checked with the provider: %s", session.name, exc)
                raise ProviderUnavailable(str(exc)) from exc
            logger.info("reviewer %s signed out: the provider ended the grant (%s)", session.name, exc)
            self.sessions.end(session.hash)
            self._record("reviewer.signed_out", name=session.name, reason="the provider ended the grant")
            return None
        roles = self.roles(claims)
        if not roles:
            logger.info("reviewer %s signed out: no longer in a reviewer group", session.name)
            self.sessions.end(session.hash)
            self._record("reviewer.signed_out", name=session.name, reason="no longer in a reviewer group")
            return None
        self.sessions.confirmed(session, roles, tokens)
        return IdpSession(
            session.hash, session.name, roles, session.issuer, session.subject, session.expires, time.time(), tokens
        )

    async def sign_out(self, secret: str) -> str | None:
        """Ends the local session; the provider's logout URL to send the browser to, where it offers one."""
        session = self.sessions.find(secret)
        self.sessions.end_secret(secret)
        if session is None:
            return None
        self._record("reviewer.signed_out", name=session.name, reason="signed out")
        try:
            if session.tokens.get("refresh"):
                await self.rp.revoke(session.tokens["refresh"])
            return await self.rp.logout_url(session.tokens.get("id_token"), self.settings.public_url + "/review/login")
        except OidcError as exc:
            logger.info("logout at the provider is not available: %s", exc)
            return None


def _horizon(cap: float, tokens: Any, claims: dict[str, Any]) -> float:
    """When a new session must end at the latest.

    With a refresh token, every re-check renews the provider's word, so the cap holds; without
    one nothing can renew it, so it ends with the ID token or the access token, whichever is first."""
    ends = [cap]
    if tokens.refresh_token is None:
        if isinstance(claims.get("exp"), (int, float)):
            ends.append(float(claims["exp"]))
        if tokens.expires_at is not None:
            ends.append(tokens.expires_at)
    return min(ends)


def _kept(tokens: Any) -> dict[str, Any]:
    return {"access": tokens.access_token, "refresh": tokens.refresh_token, "id_token": tokens.id_token}

"""The review page as an OpenID Connect relying party: discovery, the authorization request, the
code exchange, ID token checks, and the re-checks (refresh, userinfo) that end a reviewer's access.

Everything the provider says is checked before it is believed. Every fetch (discovery, JWKS,
token, userinfo, revocation) goes through auth/discovery, the callers' SSRF-safe fetcher: HTTPS
only (plain HTTP on loopback, for a loopback issuer), no private, link-local or translated
address unless ``allow_private``, never a cloud metadata address, each redirect hop checked, and
a request with credentials never redirected. The discovery document must name the configured
issuer exactly, and every endpoint it names passes the same checks when discovered (the ones
this guard fetches: also with their host resolved). An ID token counts only with a signature
from the issuer's JWKS (auth/jwks.Jwks, the callers' key cache: asymmetric algorithms only, each
with a key of its type, refetched once, rate-limited, on an unknown ``kid``), this client as
audience, an unexpired ``exp`` and the ``nonce`` of this very login. Symmetric and ``none``
algorithms are refused: a client secret that also signed ID tokens would let whoever holds the
secret forge a reviewer.

No HTTP routes here (web/signin.py has them) and no store: only the protocol.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt

from ..auth.discovery import (
    Answer,
    DiscoveryError,
    FetchPolicy,
    check_resolved,
    check_url,
    discover,
    fetch_answer,
)
from ..auth.jwks import ALGORITHMS, Jwks

logger = logging.getLogger(__name__)

__all__ = ["OidcError", "Provider", "RelyingParty", "Tokens", "pkce_challenge"]

# Clock skew tolerated on exp/iat between this machine and the provider.
LEEWAY_S = 30
# A provider that does not answer within this is treated as down: the reviewer is refused, not waved through.
HTTP_TIMEOUT_S = 10.0
# Discovery, and the JWKS with it, is refetched this often (an unknown kid refetches the JWKS sooner: auth/jwks).
DISCOVERY_TTL_S = 3600.0


class OidcError(Exception):
    """The provider refused, could not be reached, or answered something that cannot be trusted.

    ``gone`` is True when the answer means the reviewer's access has ended (``invalid_grant``,
    a 401 from userinfo), False when it may be a passing failure (a timeout, a 5xx)."""

    def __init__(self, message: str, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


@dataclass(frozen=True)
class Provider:
    """The endpoints discovery found."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None


@dataclass(frozen=True)
class Tokens:
    """A token endpoint answer, with its ID token's claims once checked."""

    claims: dict[str, Any]
    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_at: float | None


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# Endpoints a discovery document names: those the reviewer's browser is sent to, and those this guard fetches.
BROWSER_ENDPOINTS = ("authorization_endpoint", "end_session_endpoint")
FETCHED_ENDPOINTS = ("token_endpoint", "jwks_uri", "userinfo_endpoint", "revocation_endpoint")
REQUIRED_ENDPOINTS = frozenset({"authorization_endpoint", "token_endpoint", "jwks_uri"})


class RelyingParty:
    """One client registration at one issuer."""

    def __init__(
        self, issuer: str, client_id: str, client_secret: str, redirect_uri: str, allow_private: bool = False
    ) -> None:
        self.policy = FetchPolicy.for_issuer(issuer, allow_private)
        try:
            self.issuer = check_url(issuer, self.policy)  # compared exactly, as OIDC Discovery 4.3 asks
        except DiscoveryError as exc:
            raise OidcError(f"the issuer cannot be used: {exc}") from exc
        self.client_id = client_id
        self._secret = client_secret
        self.redirect_uri = redirect_uri
        self._provider: Provider | None = None
        self._provider_at = 0.0
        self._jwks: Jwks | None = None

    # -- discovery and keys -----------------------------------------------------------------

    async def provider(self) -> Provider:
        if self._provider is None or time.monotonic() - self._provider_at > DISCOVERY_TTL_S:
            try:
                provider = await self._discover()
                # Fetched again with every discovery (hourly), so a key the provider retired stops
                # counting; now, so a key set that cannot be had stops the sign-in before it starts.
                jwks = Jwks(provider.jwks_uri, self.policy)
                await jwks.load()
                self._jwks = jwks
            except DiscoveryError as exc:
                raise OidcError(f"the provider cannot be used: {exc}") from exc
            self._provider, self._provider_at = provider, time.monotonic()
        return self._provider

    async def _keys(self) -> Jwks:
        await self.provider()
        if self._jwks is None:  # provider() sets it or raises; this guards against a future change
            raise OidcError("the provider's keys are not loaded")
        return self._jwks

    async def _discover(self) -> Provider:
        doc = await discover(self.issuer, self.policy, openid_only=True)  # its issuer is exactly ours
        if "S256" not in (doc.get("code_challenge_methods_supported") or ["S256"]):
            raise OidcError("the provider does not offer PKCE with S256")
        found: dict[str, str | None] = {}
        for name in (*BROWSER_ENDPOINTS, *FETCHED_ENDPOINTS):
            url = doc.get(name)
            if url is None and name not in REQUIRED_ENDPOINTS:
                found[name] = None
                continue
            if not isinstance(url, str):
                raise OidcError(f"the discovery document has no usable {name}")
            # The browser goes to these; the guard itself fetches the others, so their hosts are resolved now too.
            found[name] = check_url(url, self.policy) if name in BROWSER_ENDPOINTS else await check_resolved(
                url, self.policy
            )
        return Provider(issuer=self.issuer, **found)  # type: ignore[arg-type]

    # -- the flow -------------------------------------------------------------------------------

    async def authorization_url(self, state: str, nonce: str, verifier: str, scopes: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if "offline_access" in scopes.split():
            query["prompt"] = "consent"  # OIDC Core 11: offline access is granted only with consent asked
        return (await self.provider()).authorization_endpoint + "?" + urlencode(query)

    async def exchange(self, code: str, verifier: str, nonce: str) -> Tokens:
        """The tokens for an authorization code, the ID token checked against ``nonce``."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        answer = await self._token(form)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the provider answered the code without an ID token")
        claims = await self.check_id_token(id_token, nonce)
        return self._tokens(answer, claims)

    async def refresh(self, refresh_token: str, subject: str) -> Tokens:
        """New tokens for a refresh token; ``gone`` when the provider says the grant has ended."""
        answer = await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})
        claims: dict[str, Any] = {"sub": subject}
        if isinstance(answer.get("id_token"), str):
            claims = await self.check_id_token(answer["id_token"], None)
            if claims.get("sub") != subject:
                raise OidcError("the refreshed ID token is for another subject", gone=True)
        return self._tokens(answer, claims)

    async def userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        """The userinfo claims, which must be about ``subject`` (OIDC Core 5.3.2)."""
        endpoint = (await self.provider()).userinfo_endpoint
        if endpoint is None:
            return {}
        answer = await self._fetch(endpoint, "userinfo endpoint", bearer=access_token)
        if answer.status in (401, 403):
            raise OidcError(f"the provider refused the userinfo request ({answer.status})", gone=True)
        if answer.status != 200 or answer.document is None:
            raise OidcError(f"the provider's userinfo endpoint answered {answer.status}, not a JSON object")
        info = answer.document
        if info.get("sub") != subject:
            raise OidcError("the userinfo answer is about another subject", gone=True)
        return info

    async def revoke(self, token: str) -> None:
        """Best effort: tell the provider a refresh token is no longer wanted (RFC 7009)."""
        endpoint = (await self.provider()).revocation_endpoint
        if endpoint is None:
            return
        try:
            await self._fetch(endpoint, "revocation endpoint", form={"token": token, "token_type_hint": "refresh_token"})
        except OidcError as exc:
            logger.info("revoking a reviewer's refresh token at the provider failed: %s", exc)

    async def logout_url(self, id_token: str | None, after: str) -> str | None:
        """RP-initiated logout at the provider, where it offers one."""
        endpoint = (await self.provider()).end_session_endpoint
        if endpoint is None:
            return None
        query = {"client_id": self.client_id, "post_logout_redirect_uri": after}
        if id_token:
            query["id_token_hint"] = id_token
        return endpoint + "?" + urlencode(query)

    # -- checks ---------------------------------------------------------------------------------

    async def check_id_token(self, token: str, nonce: str | None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token is malformed: {exc}") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALGORITHMS:  # a list or object here must not raise TypeError
            raise OidcError(f"the ID token's algorithm {str(alg)[:20]!r} is not accepted")
        if kid is not None and not isinstance(kid, str):
            raise OidcError("the ID token's kid is not a string")
        key = await (await self._keys()).key_for(kid, alg)
        if key is None:
            raise OidcError(f"the ID token is signed with a key the provider does not publish for {alg} (kid {kid!r})")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token was refused: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise OidcError("the ID token is for several audiences and was not issued to this client (azp)")
        if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcError("the ID token's nonce is not this sign-in's: it comes from another login")
        return claims

    # -- HTTP -----------------------------------------------------------------------------------

    async def _fetch(
        self, url: str, what: str, *, form: dict[str, str] | None = None, bearer: str | None = None
    ) -> Answer:
        """One request through the SSRF-safe fetcher; a form goes with this client's credentials."""
        auth = (self.client_id, self._secret) if form is not None else None
        try:
            return await fetch_answer(url, self.policy, form=form, auth=auth, bearer=bearer, timeout_s=HTTP_TIMEOUT_S)
        except DiscoveryError as exc:
            raise OidcError(f"the provider's {what} could not be used: {exc}") from exc

    async def _token(self, form: dict[str, str]) -> dict[str, Any]:
        answer = await self._fetch((await self.provider()).token_endpoint, "token endpoint", form=form)
        body = answer.document
        if body is None:
            raise OidcError(f"the provider's token endpoint answered {answer.status}, not a JSON object")
        if answer.status != 200:
            error = str(body.get("error", answer.status))[:100]
            # invalid_grant: the code was used or expired, or the refresh token (and so the
            # provider's session or the user's access) has ended.
            raise OidcError(f"the provider refused: {error}", gone=error == "invalid_grant")
        if not isinstance(body.get("access_token"), str) or str(body.get("token_type", "")).lower() not in (
            "bearer",
            "dpop",
        ):
            raise OidcError("the provider's token answer has no bearer access token")
        return body

    def _tokens(self, answer: dict[str, Any], claims: dict[str, Any]) -> Tokens:
        expires_in = answer.get("expires_in")
        expires_at = time.time() + float(expires_in) if isinstance(expires_in, (int, float)) else None
        refresh = answer.get("refresh_token")
        return Tokens(
            claims=claims,
            access_token=answer["access_token"],
            refresh_token=refresh if isinstance(refresh, str) else None,
            id_token=answer.get("id_token") if isinstance(answer.get("id_token"), str) else None,
            expires_at=expires_at,
        )


"""The review page as an OpenID Connect relying party: discovery, the authorization request, the
code exchange, ID token checks, and the re-checks (refresh, userinfo) that end a reviewer's access.

Everything the provider says is checked before it is believed: the discovery document must name
the configured issuer, every endpoint it names must be HTTPS (or loopback), redirects are never
followed, and an ID token counts only with a signature from the issuer's JWKS (refetched once
when a token names an unknown ``kid``), this client as audience, an unexpired ``exp`` and the
``nonce`` of this very login. Symmetric and ``none`` algorithms are refused: a client secret
that also signed ID tokens would let whoever holds the secret forge a reviewer.

No HTTP routes here (web/signin.py has them) and no store: only the protocol.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt

logger = logging.getLogger(__name__)

__all__ = ["OidcError", "Provider", "RelyingParty", "Tokens", "pkce_challenge"]

# Asymmetric signatures only (see the module docstring).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
# Clock skew tolerated on exp/iat between this machine and the provider.
LEEWAY_S = 30
# A provider that does not answer within this is treated as down: the reviewer is refused, not waved through.
HTTP_TIMEOUT_S = 10.0
# Discovery and JWKS are refetched at most this often (an unknown kid may force one refetch sooner).
DISCOVERY_TTL_S = 3600.0
MAX_BODY = 256 * 1024


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


def check_endpoint(url: str, what: str) -> str:
    """``url`` when it is HTTPS, or plain HTTP on loopback only (a test or a local provider)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _loopback(parts.hostname or ""):
        return url
    raise OidcError(f"the provider's {what} {url!r} is neither HTTPS nor on loopback: refused")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RelyingParty:
    """One client registration at one issuer."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.issuer = check_endpoint(issuer, "issuer")  # compared exactly, as OIDC Discovery 4.3 asks
        self.client_id = client_id
        self._secret = client_secret
        self.redirect_uri = redirect_uri
        self._provider: Provider | None = None
        self._provider_at = 0.0
        self._keys: dict[str, Any] = {}
        self._keys_at = 0.0

    # -- discovery and keys -----------------------------------------------------------------

    async def provider(self) -> Provider:
        if self._provider is None or time.monotonic() - self._provider_at > DISCOVERY_TTL_S:
            self._provider = await self._discover()
            self._provider_at = time.monotonic()
        return self._provider

    async def _discover(self) -> Provider:
        doc = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery document")
        if doc.get("issuer") != self.issuer:
            # OIDC Discovery 4.3: a document for another issuer is a misconfiguration or an attack.
            raise OidcError(f"the discovery document names issuer {doc.get('issuer')!r}, not {self.issuer!r}")
        if "S256" not in (doc.get("code_challenge_methods_supported") or ["S256"]):
            raise OidcError("the provider does not offer PKCE with S256")
        needed = {name: doc.get(name) for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")}
        optional = {
            name: doc.get(name) for name in ("userinfo_endpoint", "end_session_endpoint", "revocation_endpoint")
        }
        for name, url in needed.items():
            if not isinstance(url, str):
                raise OidcError(f"the discovery document has no {name}")
            check_endpoint(url, name)
        for name, url in list(optional.items()):
            optional[name] = check_endpoint(url, name) if isinstance(url, str) else None
        return Provider(issuer=self.issuer, **needed, **optional)  # type: ignore[arg-type]

    async def _key(self, kid: str | None) -> Any:
        fresh = time.monotonic() - self._keys_at < DISCOVERY_TTL_S
        if not fresh or kid not in self._keys:
            await self._load_keys()  # a rotated key: fetch the set once more before refusing
        if kid not in self._keys:
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            raise OidcError(f"the ID token is signed with a key the provider does not publish (kid {kid!r})")
        return self._keys[kid]

    async def _load_keys(self) -> None:
        jwks = await self._get_json((await self.provider()).jwks_uri, "JWKS")
        keys: dict[str, Any] = {}
        for entry in jwks.get("keys", []) if isinstance(jwks.get("keys"), list) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key type this library cannot use cannot have signed a token we accept
            keys[entry.get("kid")] = key
        self._keys, self._keys_at = keys, time.monotonic()

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
        info = await self._get_json(endpoint, "userinfo", {"Authorization": f"Bearer {access_token}"})
        if info.get("sub") != subject:
            raise OidcError("the userinfo answer is about another subject", gone=True)
        return info

    async def revoke(self, token: str) -> None:
        """Best effort: tell the provider a refresh token is no longer wanted (RFC 7009)."""
        endpoint = (await self.provider()).revocation_endpoint
        if endpoint is None:
            return
        try:
            async with self._client() as http:
                await http.post(endpoint, data={"token": token, "token_type_hint": "refresh_token"}, auth=self._auth())
        except httpx.HTTPError as exc:
            logger.info("revoking a reviewer's refresh token at the provider failed: %s", type(exc).__name__)

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
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise OidcError(f"the ID token's algorithm {alg!r} is not accepted")
        key = await self._key(header.get("kid"))
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

    def _client(self) -> httpx.AsyncClient:
        # Redirects are never followed: each hop would be a URL nobody checked.
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False, trust_env=False)

    def _auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.client_id, self._secret)

    async def _token(self, form: dict[str, str]) -> dict[str, Any]:
        endpoint = (await self.provider()).token_endpoint
        try:
            async with self._client() as http:
                response = await http.post(
                    endpoint, data=form, auth=self._auth(), headers={"Accept": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise OidcError(f"the provider's token endpoint could not be reached ({type(exc).__name__})") from exc
        body = _json(response)
        if response.status_code != 200:
            error = str(body.get("error", response.status_code))
            # invalid_grant: the code was used or expired, or the refresh token (and so the
            # provider's session or the user's access) has ended.
            raise OidcError(f"the provider refused: {error}", gone=error == "invalid_grant")
        if not isinstance(body.get("access_token"), str) or str(body.get("token_type", "")).lower() not in (
            "bearer",
            "dpop",
        ):
            raise OidcError("the provider's token answer has no bearer access token")
        return body

    async def _get_json(self, url: str, what: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            async with self._client() as http:
                response = await http.get(url, headers={"Accept": "application/json", **(headers or {})})
        except httpx.HTTPError as exc:
            raise OidcError(f"the provider's {what} could not be fetched ({type(exc).__name__})") from exc
        if response.status_code in (401, 403):
            raise OidcError(f"the provider refused the {what} request ({response.status_code})", gone=True)
        if response.status_code != 200:
            raise OidcError(f"the provider's {what} answered {response.status_code}")
        return _json(response)

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


def _json(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_BODY:
        raise OidcError("the provider's answer is too large")
    try:
        body = response.json()
    except ValueError as exc:
        raise OidcError(f"the provider answered something other than JSON ({response.status_code})") from exc
    if not isinstance(body, dict):
        raise OidcError("the provider answered JSON that is not an object")
    return body

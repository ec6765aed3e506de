"""``serve --auth oidc``: the guard as an OAuth 2.1 resource server (MCP authorization, 2025-11-25).

Lifecycle: the issuer's metadata and JWKS are fetched on the first request (single-flight; a
failure answers 503 and is retried at most every ``DISCOVERY_RETRY_S``), then kept; :meth:`run`
(started by ``serve``) refreshes the keys in the background (jwks.py). A JWT access
token is checked locally: an asymmetric algorithm only, the signature against the cached key
for its kid, ``iss`` exactly the configured issuer, ``aud`` naming this resource (RFC 8707),
``exp``/``nbf`` with ``LEEWAY_S``, a ``typ`` fit for an access token, and the required scopes.
An opaque token goes to the issuer's introspection endpoint (RFC 7662) when a client for it is
configured. Verified tokens are remembered (by hash, never past ``exp``) so a warm request
costs a dictionary lookup.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio
import jwt

from ..approval.escape import drawn
from ..reviewers import valid_name
from .caller import AuthRefused, Caller
from .discovery import DiscoveryError, FetchPolicy, discover
from .introspection import Introspector
from .jwks import ALGORITHMS, Jwks
from .metadata import ResourceMetadata

__all__ = ["OidcAuthenticator", "OidcSettings", "discover"]

logger = logging.getLogger(__name__)

LEEWAY_S = 30
DISCOVERY_RETRY_S = 10.0
# Verified tokens remembered; the oldest go first. Each entry is a hash and a Caller.
VERIFIED_CACHE = 10_000
# Tokens longer than this are not access tokens anyone issues; refused before any parsing.
MAX_TOKEN_CHARS = 16_384
# OpenID Connect Core 1.0, 2: a sub is at most 255 ASCII characters.
SUBJECT_MAX = 255
ACCESS_TOKEN_TYPES = frozenset({None, "at+jwt", "application/at+jwt", "jwt"})


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    resource: str
    scopes: tuple[str, ...] = ()
    user_claim: str = "sub"
    groups_claim: str = "groups"
    introspection_client: tuple[str, str] | None = None  # (client id, secret)
    allow_private: bool = False


class OidcAuthenticator:
    def __init__(self, settings: OidcSettings, *, jwks_refresh_interval_s: float | None = None) -> None:
        self.settings = settings
        self.policy = FetchPolicy.for_issuer(settings.issuer, settings.allow_private)
        self.metadata = ResourceMetadata(settings.resource, (settings.issuer,), settings.scopes)
        self.jwks: Jwks | None = None
        self._discovered = anyio.Event()
        self.introspector: Introspector | None = None
        self._refresh_interval_s = jwks_refresh_interval_s
        self._verified: OrderedDict[bytes, tuple[Caller, int]] = OrderedDict()
        self._discovery_lock = anyio.Lock()
        self._discovery_failed_at = -float("inf")

    @property
    def resource_metadata_url(self) -> str | None:
        return self.metadata.url

    def routes(self) -> list[Any]:
        return self.metadata.routes()

    async def run(self) -> None:
        """Once discovery is done, keep the issuer's keys fresh in the background (until cancelled)."""
        await self._discovered.wait()
        assert self.jwks is not None
        await self.jwks.run()

    async def authenticate(self, authorization: str | None) -> Caller:
        try:
            return await self._authenticate(authorization)
        except AuthRefused:
            raise
        except Exception as exc:
            # Fail closed: whatever a token or an issuer document managed to break, the request is refused.
            logger.exception("checking an access token failed unexpectedly")
            raise AuthRefused(401, "the access token could not be checked", "invalid_token") from exc

    async def _authenticate(self, authorization: str | None) -> Caller:
        token = _bearer(authorization)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._verified.get(digest)
        if cached is not None and self.jwks is not None and cached[1] == self.jwks.generation:
            caller = cached[0]
            if caller.expires_at is not None and caller.expires_at + LEEWAY_S > time.time():
                self._require_scopes(caller)
                return caller
            self._verified.pop(digest, None)
        await self._discover()
        assert self.jwks is not None
        if token.count(".") == 2:
            caller = await self._verify_jwt(token)
            self._remember(digest, caller)
        elif self.introspector is not None:
            # The introspector keeps its own short cache: an opaque token can be revoked at any time.
            caller = self._caller(await self.introspector.introspect(token, digest))
        else:
            raise AuthRefused(401, "the access token is not a JWT and no introspection is configured", "invalid_token")
        self._require_scopes(caller)
        return caller

    def _remember(self, digest: bytes, caller: Caller) -> None:
        assert self.jwks is not None
        self._verified[digest] = (caller, self.jwks.generation)
        while len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)

    def _require_scopes(self, caller: Caller) -> None:
        missing = [s for s in self.settings.scopes if s not in caller.scopes]
        if missing:
            scope = " ".join(self.settings.scopes)
            raise AuthRefused(403, f"the access token lacks the scope {' '.join(missing)}", "insufficient_scope", scope)

    async def _discover(self) -> None:
        if self.jwks is not None:
            return
        async with self._discovery_lock:
            if self.jwks is not None:
                return
            if time.monotonic() - self._discovery_failed_at < DISCOVERY_RETRY_S:
                raise AuthRefused(503, "the identity provider could not be reached; try again shortly")
            try:
                await self._load_metadata()
            except DiscoveryError as exc:
                self._discovery_failed_at = time.monotonic()
                logger.error("OIDC discovery for %s failed: %s", self.settings.issuer, exc)
                raise AuthRefused(503, "the identity provider could not be reached; try again shortly") from exc

    async def _load_metadata(self) -> None:
        document = await discover(self.settings.issuer, self.policy)
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise DiscoveryError(f"{self.settings.issuer}: the metadata names no jwks_uri")
        extra = {} if self._refresh_interval_s is None else {"min_interval_s": self._refresh_interval_s}
        jwks = Jwks(jwks_uri, self.policy, **extra)
        await jwks.load()
        endpoint = document.get("introspection_endpoint")
        if self.settings.introspection_client is not None:
            if not isinstance(endpoint, str):
                raise DiscoveryError(f"{self.settings.issuer}: the metadata names no introspection_endpoint")
            self.introspector = Introspector(
                endpoint, self.policy, self.settings.introspection_client, issuer=self.settings.issuer,
                audience=self.settings.audience,
            )
        self.jwks = jwks
        self._discovered.set()

    async def _verify_jwt(self, token: str) -> Caller:
        assert self.jwks is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthRefused(401, "the access token is not a readable JWT", "invalid_token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:  # a list or object here must not raise TypeError
            raise AuthRefused(401, f"the access token's algorithm {str(alg)[:20]!r} is not accepted", "invalid_token")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
            raise AuthRefused(401, "the JWT is not an access token (typ)", "invalid_token")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthRefused(401, "the access token's kid is not a string", "invalid_token")
        try:
            key = await self.jwks.key_for(kid, alg)
        except DiscoveryError as exc:  # logged by the Jwks; the issuer's address is not the client's business
            raise AuthRefused(
                401, "the access token's signing key is not among the issuer's known keys, and the issuer's "
                "current keys could not be fetched; try again shortly", "invalid_token", reason="unavailable",
            ) from exc
        if key is None:
            raise AuthRefused(
                401, "the access token is signed with a key the issuer does not publish", "invalid_token",
                reason="unknown_key",
            )
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.settings.audience, issuer=self.settings.issuer,
                leeway=LEEWAY_S, options={"require": ["exp", "iss", "aud"], "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            expired = isinstance(exc, jwt.ExpiredSignatureError)
            raise AuthRefused(401, _reason(exc), "invalid_token", reason="expired" if expired else None) from exc
        return self._caller(claims)

    def _caller(self, claims: dict[str, Any]) -> Caller:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= SUBJECT_MAX:
            # The sub ties the caller's sessions, vaults and grants to the principal: without one
            # (or with a number, a list) they would hang on a claim the user may be able to change.
            raise AuthRefused(401, f"the access token has no usable 'sub' claim (a string of at most {SUBJECT_MAX}"
                              " characters)", "invalid_token")
        exp = claims.get("exp")
        return Caller(
            user=_user(claims.get(self.settings.user_claim), self.settings.user_claim),
            groups=_strings(claims.get(self.settings.groups_claim), self.settings.groups_claim),
            scheme="oidc",
            issuer=self.settings.issuer,
            subject=subject,
            scopes=_scopes(claims),
            expires_at=float(exp) if isinstance(exp, (int, float)) else None,
            claims=claims,
        )


def _user(value: Any, claim: str) -> str:
    """The caller's name from its claim, under the rules for reviewer names (reviewers.valid_name):
    an invisible character, an odd space or a control character would let a requester pass for
    a reviewer (or the reverse) on a screen, and so approve their own call."""
    if value is None:
        raise AuthRefused(401, f"the access token has no {claim!r} claim to name the caller", "invalid_token")
    if not isinstance(value, str):
        raise AuthRefused(401, f"the access token's {claim!r} claim is not a string", "invalid_token")
    try:
        name = valid_name(value, "caller name")
    except ValueError as exc:  # says why without repeating the value
        raise AuthRefused(401, f"the access token's {claim!r} claim is not a usable caller name: {exc}",
                          "invalid_token") from exc
    if not drawn(value) & drawn(name):
        # NFKC took a lookalike letter elsewhere (lunate sigma, drawn "c", to final sigma): the
        # stored name would no longer be seen to look like the one shown to people.
        raise AuthRefused(401, f"the access token's {claim!r} claim is not a usable caller name: it changes how it"
                          " is drawn under Unicode normalisation (NFKC)", "invalid_token")
    return name


def _bearer(authorization: str | None) -> str:
    if authorization is None:
        raise AuthRefused(401, "an access token is required")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthRefused(401, "expected an Authorization: Bearer token", "invalid_request")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii() or " " in token:
        raise AuthRefused(401, "the access token is malformed", "invalid_token")
    return token


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the access token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the access token is not valid yet"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the access token is not for this resource (aud)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the access token is from another issuer (iss)"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the access token's signature does not verify"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the access token lacks the {exc.claim!r} claim"
    return "the access token is invalid"


def _strings(value: Any, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    names = isinstance(value, list) and len(value) <= 500
    names = names and all(isinstance(v, str) and 0 < len(v) <= 256 for v in value)
    if not names:
        raise AuthRefused(401, f"the access token's {name!r} claim is not a list of names", "invalid_token")
    return frozenset(value)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    return frozenset()

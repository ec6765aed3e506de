"""The issuer's signing keys: fetched through discovery, cached as key objects, refreshed on an unknown kid.

A token with a kid the cache does not know triggers one refetch, at most once per
``refresh_interval_s``: a flood of made-up kids costs the issuer one request per interval, not
one per token. Only asymmetric signature algorithms are ever accepted, each only with a key of
the matching type, so neither ``none`` nor HS256-signed-with-the-public-key can pass.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
import jwt

from .discovery import DiscoveryError, FetchPolicy, fetch_json

logger = logging.getLogger(__name__)

# kty each accepted algorithm needs; HS*, none and anything else are refused before any key is touched.
ALGORITHMS = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "EdDSA": "OKP",
}
# An unknown kid refetches the JWKS at most this often.
REFRESH_INTERVAL_S = 30.0
# Keys are refetched this long after the last fetch even when every kid is known (retired keys go).
MAX_AGE_S = 3600.0
MAX_KEYS = 50


@dataclass(frozen=True)
class SigningKey:
    kid: str | None
    kty: str
    alg: str | None  # the JWK's own "alg", when it names one: then only that algorithm
    key: Any  # the cryptography key object, built once
    fingerprint: str  # the JWK's public members, to tell a changed key set from a refetched same one


class Jwks:
    def __init__(
        self, url: str, policy: FetchPolicy, *, refresh_interval_s: float = REFRESH_INTERVAL_S,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self.url = url
        self.policy = policy
        self.refresh_interval_s = refresh_interval_s
        self.max_age_s = max_age_s
        self.keys: dict[str | None, SigningKey] = {}
        self.fetched_at = 0.0
        self.last_unknown_refresh = -float("inf")
        self.generation = 0  # bumps when the key set changes: caches of verified tokens start over
        self._lock = anyio.Lock()

    async def load(self) -> None:
        document = await fetch_json(self.url, self.policy)
        keys = _parse(document, self.url)
        if set(keys) != set(self.keys) or any(keys[k].fingerprint != self.keys[k].fingerprint for k in keys):
            self.generation += 1
        self.keys = keys
        self.fetched_at = time.monotonic()
        logger.info("JWKS from %s: %d signing key(s)", self.url, len(keys))

    async def key_for(self, kid: str | None, alg: str) -> SigningKey | None:
        """The key for a token's header, refetching once (rate-limited) when its kid is unknown."""
        if time.monotonic() - self.fetched_at > self.max_age_s:
            await self._refresh(force=True)
        found = self._lookup(kid, alg)
        if found is None and kid is not None and kid not in self.keys:
            await self._refresh(force=False)
            found = self._lookup(kid, alg)
        return found

    def _lookup(self, kid: str | None, alg: str) -> SigningKey | None:
        found = self.keys.get(kid)
        if found is None and kid is None and len(self.keys) == 1:
            found = next(iter(self.keys.values()))
        if found is None or ALGORITHMS.get(alg) != found.kty or (found.alg is not None and found.alg != alg):
            return None
        return found

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            now = time.monotonic()
            if force and now - self.fetched_at <= self.max_age_s:
                return  # another request refreshed while this one waited
            if not force:
                if now - self.last_unknown_refresh < self.refresh_interval_s:
                    return
                self.last_unknown_refresh = now
            try:
                await self.load()
            except DiscoveryError as exc:
                # Keep the keys we have: an issuer hiccup must not lock every caller out.
                logger.warning("JWKS refresh failed: %s", exc)
                self.fetched_at = now


def _parse(document: dict[str, Any], url: str) -> dict[str | None, SigningKey]:
    raw_keys = document.get("keys")
    if not isinstance(raw_keys, list):
        raise DiscoveryError(f"{url}: a JWKS has a list of keys")
    keys: dict[str | None, SigningKey] = {}
    for raw in raw_keys[:MAX_KEYS]:
        parsed = _one_key(raw)
        if parsed is not None:
            keys[parsed.kid] = parsed
    return keys


def _one_key(raw: Any) -> SigningKey | None:
    if not isinstance(raw, dict) or raw.get("use", "sig") != "sig" or raw.get("kty") not in ("RSA", "EC", "OKP"):
        return None  # encryption keys, symmetric keys ("oct") and junk are never verification keys
    alg = raw.get("alg")
    if alg is not None and (not isinstance(alg, str) or ALGORITHMS.get(alg) != raw["kty"]):
        return None
    if any(name in raw for name in ("d", "p", "q", "k")):
        logger.warning("JWKS key %r carries private material; ignored", raw.get("kid"))
        return None
    try:
        key = jwt.PyJWK(raw, algorithm=alg or _default_alg(raw)).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
        logger.warning("JWKS key %r unusable: %s", raw.get("kid"), exc)
        return None
    kid = raw.get("kid")
    public = json.dumps({k: v for k, v in raw.items() if isinstance(v, str)}, sort_keys=True)
    return SigningKey(kid=kid if isinstance(kid, str) else None, kty=raw["kty"], alg=alg, key=key, fingerprint=public)


def _default_alg(raw: dict[str, Any]) -> str:
    if raw["kty"] == "RSA":
        return "RS256"
    if raw["kty"] == "OKP":
        return "EdDSA"
    return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(raw.get("crv")), "ES256")

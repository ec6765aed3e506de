"""The issuer's signing keys: fetched through discovery, cached as key objects, refetched when a kid is unknown.

Anyone can send a token with a made-up kid, so an unknown kid must neither cost the issuer a
request each nor spend a budget that a genuinely rotated key then needs:

* Refetches are single-flight and at most one per ``min_interval_s`` (5 s): every request whose
  kid is unknown waits for the next fetch that *starts after it asked* (one started before might
  predate the rotation) and shares it. A flood of made-up kids costs the issuer one request per
  5 s, and the first token signed with a new key waits at most that long instead of being refused.
* A request whose kid is known never waits on the network. The periodic refresh (``max_age_s``,
  so retired keys go) runs in the background (:meth:`Jwks.run`), serving the cached keys meanwhile.
* A fetch is bounded by discovery's timeout (``FETCH_TIMEOUT_S``, 5 s); its failure answers every
  request that waited for it, and requests arriving while the budget is spent after a failure are
  refused at once (the issuer was just found unreachable). An unknown kid waits at most
  ``UNKNOWN_KID_WAIT_S`` (10 s); against a hung issuer, usually only the rest of the fetch in flight.

Only asymmetric signature algorithms are ever accepted, each only with a key of the matching type,
so neither ``none`` nor HS256-signed-with-the-public-key can pass.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import anyio
import jwt

from .discovery import FETCH_TIMEOUT_S, DiscoveryError, FetchPolicy, fetch_json

logger = logging.getLogger(__name__)

# kty each accepted algorithm needs; HS*, none and anything else are refused before any key is touched.
ALGORITHMS = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "EdDSA": "OKP",
}
# Fetch attempts start at most this often, whatever the number of unknown kids.
MIN_REFETCH_S = 5.0


def unknown_kid_wait(min_interval_s: float) -> float:
    """The longest a request with an unknown kid waits: a fetch in flight (it may predate the key),
    the rest of the interval, then its own fetch. A hung issuer holds it one fetch timeout (its
    failure answers)."""
    return max(min_interval_s, FETCH_TIMEOUT_S) + FETCH_TIMEOUT_S


UNKNOWN_KID_WAIT_S = unknown_kid_wait(MIN_REFETCH_S)
# Keys are refetched in the background this long after the last fetch (retired keys go).
MAX_AGE_S = 3600.0
# After a failed background refresh the cached keys stay, and the next try comes this much later.
RETRY_S = 60.0
MAX_KEYS = 50
# Requests with an unknown kid that may wait at once; more are refused at once. Each holds a
# connection for up to UNKNOWN_KID_WAIT_S, and anyone can send one: no flood of forged kids may
# pin the front's connections. A genuinely rotated key needs only the first few to wait.
MAX_WAITERS = 64


@dataclass(frozen=True)
class SigningKey:
    kid: str | None
    kty: str
    alg: str | None  # the JWK's own "alg", when it names one: then only that algorithm
    key: Any  # the cryptography key object, built once
    fingerprint: str  # the JWK's public members, to tell a changed key set from a refetched same one


class Jwks:
    def __init__(
        self, url: str, policy: FetchPolicy, *, min_interval_s: float = MIN_REFETCH_S,
        max_age_s: float = MAX_AGE_S, retry_s: float = RETRY_S, max_waiters: int = MAX_WAITERS,
    ) -> None:
        self.url = url
        self.policy = policy
        self.min_interval_s = min_interval_s
        self.max_age_s = max_age_s
        self.retry_s = retry_s
        self.max_waiters = max_waiters
        self.waiting = 0  # requests waiting for a refetch now
        self.wait_s = unknown_kid_wait(min_interval_s)
        self.keys: dict[str | None, SigningKey] = {}
        self.fetched_at = -math.inf  # the last successful fetch
        self.generation = 0  # bumps when the key set changes: caches of verified tokens start over
        self.fetches = 0  # attempts made, successful or not
        # The last attempt: when it started and ended, and why it failed (None: it did not).
        self._started = -math.inf
        self._ended = -math.inf
        self._failure: str | None = None
        self._lock = anyio.Lock()
        self._changed = anyio.Event()  # wakes the background refresher when a fetch happened

    async def load(self) -> None:
        """The first fetch (at discovery); raises DiscoveryError."""
        async with self._lock:
            await self._attempt()
        if self._failure is not None:
            raise DiscoveryError(self._failure)

    async def key_for(self, kid: str | None, alg: str) -> SigningKey | None:
        """The key for a token's header; an unknown kid waits for a refetch (see the module's docstring).

        Raises DiscoveryError when the fetch this request waited for failed or came too late."""
        if kid in self.keys or kid is None:
            return self._lookup(kid, alg)  # known (or no kid): never a wait
        await self.refetch()
        return self._lookup(kid, alg)

    async def refetch(self) -> None:
        """Wait for a fetch that starts after this call (sharing it with every other waiter); raises DiscoveryError."""
        asked = time.monotonic()
        if self.waiting >= self.max_waiters:
            raise DiscoveryError(f"{self.url}: {self.waiting} requests with unknown keys are waiting already")
        self.waiting += 1
        try:
            with anyio.fail_after(self.wait_s):  # a backstop: the waits below add up to no more
                async with self._lock:
                    if not self._answered(asked) and not self._failed_lately():
                        await anyio.sleep(max(0.0, self._started + self.min_interval_s - time.monotonic()))
                        await self._attempt()
        except TimeoutError as exc:
            raise DiscoveryError(f"{self.url}: no new key set within {self.wait_s:.0f} s") from exc
        finally:
            self.waiting -= 1
        if self._failure is not None:
            raise DiscoveryError(self._failure)

    def _answered(self, asked: float) -> bool:
        """Whether an attempt since ``asked`` tells a waiter what it needs: one that started after it
        (a success before might predate the key), or a failure that ended after it."""
        return self._started >= asked or (self._failure is not None and self._ended >= asked)

    def _failed_lately(self) -> bool:
        return self._failure is not None and time.monotonic() - self._started < self.min_interval_s

    async def run(self) -> None:
        """Refresh the keys in the background once they are ``max_age_s`` old (retry after a failure)."""
        while True:
            due = max(self.fetched_at + self.max_age_s, self._started + self.min_interval_s)
            if self._failure is not None:
                due = max(due, self._started + self.retry_s)
            wait = due - time.monotonic()
            if wait > 0:
                with anyio.move_on_after(wait):
                    await self._changed.wait()  # a refetch for an unknown kid moves the due time
                continue
            async with self._lock:
                await self._attempt()

    async def _attempt(self) -> None:
        """One fetch, under the lock: bounded by the fetch timeout and shielded, so that a waiter
        leaving (its client hung up) does not cancel it for every other waiter."""
        self._started = time.monotonic()
        self.fetches += 1
        with anyio.CancelScope(shield=True):
            try:
                keys = _parse(await fetch_json(self.url, self.policy), self.url)
            except DiscoveryError as exc:
                self._failure = str(exc)
                logger.warning("JWKS fetch failed (keeping %d cached key(s)): %s", len(self.keys), exc)
            else:
                self._failure = None
                self._install(keys)
        self._ended = time.monotonic()
        self._changed.set()
        self._changed = anyio.Event()

    def _install(self, keys: dict[str | None, SigningKey]) -> None:
        if set(keys) != set(self.keys) or any(keys[k].fingerprint != self.keys[k].fingerprint for k in keys):
            self.generation += 1
        self.keys = keys
        self.fetched_at = time.monotonic()
        logger.info("JWKS from %s: %d signing key(s)", self.url, len(keys))

    def _lookup(self, kid: str | None, alg: str) -> SigningKey | None:
        found = self.keys.get(kid)
        if found is None and kid is None and len(self.keys) == 1:
            found = next(iter(self.keys.values()))
        if found is None or ALGORITHMS.get(alg) != found.kty or (found.alg is not None and found.alg != alg):
            return None
        return found


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

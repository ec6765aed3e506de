"""Opaque access tokens checked with the issuer's introspection endpoint (RFC 7662).

Answers are remembered for ``CACHE_S`` at most, and never past the token's ``exp``, so a revoked
token stops working within that time; a refusal is remembered briefly too, so one bad token
repeated cannot make the guard hammer the issuer. At most ``CONCURRENT`` introspections run at
once whatever the number of callers.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import anyio

from .caller import AuthRefused
from .discovery import DiscoveryError, FetchPolicy, fetch_json

logger = logging.getLogger(__name__)

CACHE_S = 30.0
NEGATIVE_CACHE_S = 5.0
CACHE_ENTRIES = 10_000
CONCURRENT = 8


class Introspector:
    def __init__(
        self, endpoint: str, policy: FetchPolicy, client: tuple[str, str], *, issuer: str = "", audience: str = "",
        cache_s: float = CACHE_S, clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.client = client
        self.issuer = issuer
        self.audience = audience
        self.cache_s = cache_s
        self.clock = clock
        self._cache: OrderedDict[bytes, tuple[float, dict[str, Any] | None]] = OrderedDict()
        self._limit = anyio.Semaphore(CONCURRENT)

    async def introspect(self, token: str, digest: bytes) -> dict[str, Any]:
        """The active token's claims; raises AuthRefused for an inactive or unfit one."""
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return self._accept(cached[1])
        async with self._limit:
            try:
                answer = await fetch_json(self.endpoint, self.policy, form={"token": token,
                                          "token_type_hint": "access_token"}, auth=self.client)
            except DiscoveryError as exc:
                logger.warning("introspection failed: %s", exc)
                raise AuthRefused(503, "the identity provider could not check the token; try again shortly") from exc
        claims = answer if self._fit(answer) else None
        self._store(digest, claims, now)
        return self._accept(claims)

    def _fit(self, answer: dict[str, Any]) -> bool:
        if answer.get("active") is not True or answer.get("token_type") == "refresh_token":
            return False
        if self.issuer and answer.get("iss", self.issuer) != self.issuer:
            return False
        aud = answer.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.audience and self.audience not in audiences:
            return False
        exp = answer.get("exp")
        return isinstance(exp, (int, float)) and exp > self.clock()

    def _store(self, digest: bytes, claims: dict[str, Any] | None, now: float) -> None:
        if claims is None:
            until = now + NEGATIVE_CACHE_S
        else:
            until = min(now + self.cache_s, float(claims["exp"]))
        self._cache[digest] = (until, claims)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    @staticmethod
    def _accept(claims: dict[str, Any] | None) -> dict[str, Any]:
        if claims is None:
            raise AuthRefused(401, "the access token is not active (introspection)", "invalid_token")
        return claims

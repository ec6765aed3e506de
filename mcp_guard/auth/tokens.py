"""Guard-issued caller tokens (``serve --auth tokens``): created by ``mcp-guard auth token create``.

A token is 256 random bits, shown once and kept only as its SHA-256 in the store, like a
reviewer token. Every request looks its token up again, so ``auth token revoke`` takes effect
on the next request, open sessions included, and in every instance that shares the store.
Names are reviewer-style names (one canonical form, no lookalikes of a live name): the name is
the requester that policies, the review queue and the audit see, so two live tokens must never
pass for one person, nor one person for another.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
import unicodedata
from typing import Any

import anyio.to_thread

from ..reviewers import looks_alike, same_person, valid_name
from ..store import Store
from .caller import AuthRefused, Caller

__all__ = ["CallerTokens", "TokenAuthenticator", "bearer"]

logger = logging.getLogger(__name__)

PREFIX = "mgc_"
# last_used is written at most this often per token: a write per request would serialize every
# request on the store's write lock for a date nobody needs to the second.
LAST_USED_EVERY_S = 60.0
GROUPS_MAX = 32


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; AuthRefused (401/400) otherwise."""
    if authorization is None or not authorization.strip():
        raise AuthRefused(401, "this endpoint needs a bearer token in the Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthRefused(400, "the Authorization header must be 'Bearer <token>'", "invalid_request")
    return token


def _group(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).strip()
    if not text or len(text) > 64 or any(not (c.isalnum() or c in "-_.:@") for c in text):
        raise ValueError(f"group {ascii(name)}: use letters, digits and - _ . : @ (at most 64)")
    return text


class CallerTokens:
    """The caller tokens in the store: create, list, revoke, and look one up."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._written: dict[str, float] = {}  # token hash -> when last_used was last written here

    def create(self, name: str, groups: list[str] | tuple[str, ...] = (), expires_days: float | None = None) -> str:
        """A new token for ``name``; ValueError for a bad name or group, or a name a live token has."""
        given, name = name, valid_name(name, "caller name")
        chosen = sorted({_group(g) for g in groups})
        if len(chosen) > GROUPS_MAX:
            raise ValueError(f"a caller token carries at most {GROUPS_MAX} groups")
        if expires_days is not None and not expires_days > 0:
            raise ValueError("--expires takes a positive number of days")
        token = PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        expires = now + expires_days * 86400 if expires_days is not None else None
        with self.store.transaction() as db:
            live = db.execute("SELECT name FROM caller_tokens WHERE revoked IS NULL").fetchall()
            reviewers = db.execute("SELECT name FROM reviewer_tokens WHERE revoked IS NULL").fetchall()
            # Both as typed and as stored: NFKC can take a lookalike elsewhere (lunate sigma to final sigma).
            for form in dict.fromkeys((given.strip(), name)):
                _check_unique(form, [row[0] for row in live])
                _check_not_posing(form, [row[0] for row in reviewers])
            db.execute(
                "INSERT INTO caller_tokens (hash, name, groups_json, created, expires) VALUES (?,?,?,?,?)",
                (_digest(token), name, json.dumps(chosen), now, expires),
            )
        return token

    def list(self) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT name, groups_json, created, expires, last_used, revoked FROM caller_tokens ORDER BY created"
        )
        return [{**{k: r[k] for k in ("name", "created", "expires", "last_used", "revoked")},
                 "groups": json.loads(r["groups_json"])} for r in rows]

    def revoke(self, name: str) -> int:
        """Revoke every live token of ``name`` (canonical form); the count revoked."""
        now, count = time.time(), 0
        with self.store.transaction() as db:
            for row in db.execute("SELECT hash, name FROM caller_tokens WHERE revoked IS NULL").fetchall():
                if same_person(row[1], name):
                    db.execute("UPDATE caller_tokens SET revoked=? WHERE hash=?", (now, row[0]))
                    count += 1
        return count

    def identify(self, token: str) -> Caller | None:
        """The caller of a live, unexpired token, or None."""
        digest = _digest(token)
        now = time.time()
        rows = self.store.query(
            "SELECT hash, name, groups_json, expires FROM caller_tokens WHERE hash=? AND revoked IS NULL", (digest,)
        )
        # The index lookup finds the row; the comparison that admits it takes the same time
        # whatever the stored digest holds.
        row = next((r for r in rows if hmac.compare_digest(r["hash"], digest)), None)
        if row is None or (row["expires"] is not None and row["expires"] <= now):
            return None
        self._touch(digest, now)
        return Caller(
            user=row["name"], groups=frozenset(json.loads(row["groups_json"])), scheme="tokens",
            subject=row["name"], expires_at=row["expires"],
        )

    def _touch(self, digest: str, now: float) -> None:
        if now - self._written.get(digest, 0.0) < LAST_USED_EVERY_S:
            return
        self._written[digest] = now
        try:
            self.store.execute("UPDATE caller_tokens SET last_used=? WHERE hash=?", (now, digest))
        except Exception:  # a busy store must not refuse a valid caller over a date
            logger.warning("could not record when a caller token was last used", exc_info=True)


def _check_unique(name: str, live: list[str]) -> None:
    if any(same_person(other, name) for other in live):
        raise ValueError(f"a live caller token for {name!r} exists already: revoke it first to replace it")
    twin = next((other for other in live if looks_alike(other, name)), None)
    if twin is not None:
        raise ValueError(
            f"{ascii(name)} looks like {ascii(twin)}, who holds a live caller token: choose a name"
            " that cannot be mistaken for theirs"
        )


def _check_not_posing(name: str, reviewers: list[str]) -> None:
    # A caller drawn like a reviewer but not the same name would pass no-self-approval: the one
    # person could request as one and approve as the other.
    twin = next((r for r in reviewers if looks_alike(r, name) and not same_person(r, name)), None)
    if twin is not None:
        raise ValueError(
            f"{ascii(name)} looks like the reviewer {ascii(twin)}: a caller under that name could approve its own"
            " requests as them; use the reviewer's exact name if it is the same person, or another name"
        )


@functools.lru_cache(maxsize=4096)
def _fits_name_rules(name: str) -> bool:
    """Whether a stored caller name is one reviewers.valid_name would store today (once per name:
    the check runs on every request)."""
    try:
        return valid_name(name, "caller name") == name
    except ValueError:
        return False


class TokenAuthenticator:
    """The :class:`~mcp_guard.auth.caller.Authenticator` of ``--auth tokens``."""

    def __init__(self, tokens: CallerTokens) -> None:
        self.tokens = tokens

    async def authenticate(self, authorization: str | None) -> Caller:
        token = bearer(authorization)
        caller = None
        if token.startswith(PREFIX):
            # SQLite answers in microseconds; a PostgreSQL round trip must not hold up the event loop.
            if self.tokens.store.dialect == "sqlite":
                caller = self.tokens.identify(token)
            else:
                caller = await anyio.to_thread.run_sync(self.tokens.identify, token)
        if caller is None:
            raise AuthRefused(401, "the token is unknown, revoked or expired", "invalid_token")
        if not _fits_name_rules(caller.user):  # stored before today's name rules were this strict
            raise AuthRefused(401, "the token's caller name no longer meets the name rules: revoke it and create"
                              " a token under a plain name", "invalid_token")
        return caller

    def routes(self) -> list[Any]:
        return []  # guard tokens are not OAuth: no metadata to serve

    async def run(self) -> None:
        return None  # nothing to keep fresh: every check reads the store

    @property
    def resource_metadata_url(self) -> str | None:
        return None

"""Reviewer sign-ins through the identity provider, as the store keeps them.

Two tables. ``reviewer_logins`` holds a login between its start and its callback: the SHA-256
of its ``state`` and of the browser cookie it was started in, and when. A state is consumed by
the one UPDATE that finds it unused, young enough and from the same browser, so a callback
counts once, within ``LOGIN_S``, in the browser that began it, on whichever instance it lands.
The PKCE verifier and the nonce are not stored at all: both are derived from the state with the
web key, so reading the database gives neither.

``reviewer_idp_sessions`` holds a signed-in reviewer: the SHA-256 of the cookie's secret, the
name and reviewer roles, when it ends, when the provider last confirmed it, and the provider's
tokens (needed for those re-checks and for logout), encrypted with a key derived from the web
key and bound to the row. Like token sessions, it is looked up on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..store import Store

__all__ = ["IdpSession", "IdpSessions", "LOGIN_S"]

# How long a started sign-in may take at the provider before its state is refused (the brief's bound is 10 min).
LOGIN_S = 600.0


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IdpSession:
    hash: str
    name: str
    roles: tuple[str, ...]
    issuer: str
    subject: str
    expires: float
    checked: float
    tokens: dict[str, Any]


class IdpSessions:
    def __init__(self, store: Store, key: bytes) -> None:
        self.store = store
        self._derive = key
        self._aead = AESGCM(hmac.new(key, b"mcp-guard reviewer idp tokens", hashlib.sha256).digest())

    def derived(self, purpose: str, state: str) -> str:
        """A per-login secret (the PKCE verifier, the nonce) only the web key can make from the state."""
        mac = hmac.new(self._derive, f"{purpose}|{state}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    # -- logins ---------------------------------------------------------------------------------

    def begin(self, browser: str) -> str:
        """A new single-use state for a login started in ``browser`` (its cookie's value)."""
        state = secrets.token_urlsafe(32)
        now = time.time()
        with self.store.transaction() as db:
            db.execute("DELETE FROM reviewer_logins WHERE created < ?", (now - 2 * LOGIN_S,))
            db.execute(
                "INSERT INTO reviewer_logins (hash, browser, created) VALUES (?,?,?)",
                (_digest(state), _digest(browser), now),
            )
        return state

    def consume(self, state: str, browser: str) -> bool:
        """True once for a live state started in this browser; a second call, or another browser, gets False."""
        if not state or not browser:
            return False
        changed = self.store.execute(
            "UPDATE reviewer_logins SET used=? WHERE hash=? AND browser=? AND used IS NULL AND created > ?",
            (time.time(), _digest(state), _digest(browser), time.time() - LOGIN_S),
        )
        return changed == 1

    # -- sessions -------------------------------------------------------------------------------

    def open(
        self, name: str, roles: tuple[str, ...], issuer: str, subject: str, expires: float, tokens: dict[str, Any]
    ) -> str:
        """A new session; returns the cookie's secret."""
        secret = secrets.token_urlsafe(32)
        row = _digest(secret)
        now = time.time()
        self.store.execute(
            "INSERT INTO reviewer_idp_sessions (hash, name, roles, issuer, subject, created, expires, checked, tokens)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (row, name, json.dumps(list(roles)), issuer, subject, now, expires, now, self._seal(row, tokens)),
        )
        return secret

    def find(self, secret: str) -> IdpSession | None:
        """The live session for a cookie's secret (not ended, not past its end)."""
        if not secret:
            return None
        rows = self.store.query(
            "SELECT hash, name, roles, issuer, subject, expires, checked, tokens FROM reviewer_idp_sessions"
            " WHERE hash=? AND ended IS NULL AND expires > ?",
            (_digest(secret), time.time()),
        )
        if not rows:
            return None
        r = rows[0]
        tokens = self._open(r["hash"], r["tokens"])
        if tokens is None:
            return None  # sealed under another web key: unusable, so not signed in
        return IdpSession(
            r["hash"],
            r["name"],
            tuple(json.loads(r["roles"])),
            r["issuer"],
            r["subject"],
            float(r["expires"]),
            float(r["checked"]),
            tokens,
        )

    def confirmed(self, session: IdpSession, roles: tuple[str, ...], tokens: dict[str, Any]) -> None:
        """The provider confirmed the session just now, with these roles and tokens."""
        self.store.execute(
            "UPDATE reviewer_idp_sessions SET roles=?, checked=?, tokens=? WHERE hash=? AND ended IS NULL",
            (json.dumps(list(roles)), time.time(), self._seal(session.hash, tokens), session.hash),
        )

    def end(self, row_hash: str) -> None:
        self.store.execute(
            "UPDATE reviewer_idp_sessions SET ended=? WHERE hash=? AND ended IS NULL", (time.time(), row_hash)
        )

    def end_secret(self, secret: str) -> None:
        if secret:
            self.end(_digest(secret))

    # -- sealing ----------------------------------------------------------------------------------

    def _seal(self, row: str, tokens: dict[str, Any]) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, json.dumps(tokens).encode(), row.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def _open(self, row: str, blob: str) -> dict[str, Any] | None:
        try:
            raw = base64.b64decode(blob)
            tokens = json.loads(self._aead.decrypt(raw[:12], raw[12:], row.encode()))
        except Exception:  # noqa: BLE001  # a damaged or foreign blob: the session cannot be used
            return None
        return tokens if isinstance(tokens, dict) else None

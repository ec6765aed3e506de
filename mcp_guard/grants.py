"""Grants: what an approval leaves behind, so the same call need not be asked again.

An approval is for this call once (default: no grant is stored), for the same tool for the
rest of the session, or for a TTL. Grants are scoped to the requester, the server and the
tool, always expire (a session grant with the session, at most ``SESSION_GRANT_MAX_S``), and
can be listed and revoked (``mcp-guard grants list|revoke``). No standing privilege.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from .store import Store

# A session grant also expires after this, should the session outlive a working day.
SESSION_GRANT_MAX_S = 12 * 3600.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Grant:
    id: str
    user: str
    session: str | None
    server: str
    tool: str
    scope: str
    created: float
    expires: float | None
    approver: str
    channel: str
    revoked: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ttl_seconds(scope: str) -> float | None:
    match = re.fullmatch(r"ttl:(\d+)([smhd])", scope)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def offered_scopes(widest: str) -> list[str]:
    """The scopes a person may choose when the policy allows at most ``widest``."""
    if widest == "once":
        return ["once"]
    if widest == "session":
        return ["once", "session"]
    return ["once", widest]


class Grants:
    def __init__(self, store: Store) -> None:
        self.store = store

    def find(self, user: str, session: str, server: str, tool: str, now: float | None = None) -> Grant | None:
        now = time.time() if now is None else now
        rows = self.store.query(
            "SELECT * FROM grants WHERE server=? AND tool=? AND user=? AND revoked IS NULL"
            " AND (expires IS NULL OR expires > ?) AND (scope != 'session' OR session = ?) ORDER BY created DESC LIMIT 1",
            (server, tool, user, now, session),
        )
        return Grant(**dict(rows[0])) if rows else None

    def add(self, *, user: str, session: str, server: str, tool: str, scope: str, approver: str, channel: str) -> Grant | None:
        if scope == "once":
            return None
        now = time.time()
        expires = now + (ttl_seconds(scope) or SESSION_GRANT_MAX_S)
        grant = Grant(secrets.token_hex(8), user, session if scope == "session" else None, server, tool, scope, now, expires, approver, channel)
        self.store.execute(
            "INSERT INTO grants VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (grant.id, grant.user, grant.session, grant.server, grant.tool, grant.scope, grant.created, grant.expires, grant.approver, grant.channel, None),
        )
        return grant

    def list(self, include_inactive: bool = False) -> list[Grant]:
        if include_inactive:
            rows = self.store.query("SELECT * FROM grants ORDER BY created")
        else:
            rows = self.store.query(
                "SELECT * FROM grants WHERE revoked IS NULL AND (expires IS NULL OR expires > ?) ORDER BY created", (time.time(),)
            )
        return [Grant(**dict(row)) for row in rows]

    def revoke(self, grant_id: str) -> bool:
        return self.store.execute("UPDATE grants SET revoked=? WHERE id=? AND revoked IS NULL", (time.time(), grant_id)) > 0

    def end_session(self, session: str) -> None:
        self.store.execute("UPDATE grants SET revoked=? WHERE session=? AND revoked IS NULL", (time.time(), session))

"""Grants: what an approval leaves behind, so the same call need not be asked again.

An approval is for this call once (default: no grant is stored; the approval request itself,
bound to the exact arguments, is used up by one execution), for the same tool for the rest of
the session, or for a TTL. A grant is bound to everything that asked and answered: the
requester, the server, the tool, the rule and policy version that wanted approval, and the kind
of approver (the user, or reviewers). It satisfies only a call that matches all of them, so a
user's own grant never stands in for a rule that needs reviewers, and a changed policy asks
again. Grants always expire: a session grant when its session ends (or, after a crash, when
the next guard starts and finds its process gone), at most ``SESSION_GRANT_MAX_S``; a TTL grant
made in this process is timed with the monotonic clock, so a wall clock stepped back cannot
extend it. They can be listed and revoked (``mcp-guard grants list|revoke``).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from .approvals import _alive  # one answer to 'is that guard process still there?'
from .scrub import scrub_text
from .store import Store

logger = logging.getLogger(__name__)

# A session grant also expires after this, should the session outlive a working day.
SESSION_GRANT_MAX_S = 12 * 3600.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
HOST = socket.gethostname()
_COLUMNS = (
    "id", "user", "session", "server", "tool", "scope", "created", "expires", "approver", "channel", "revoked",
    "kind", "rule", "policy_version", "owner_pid", "owner_host",
)


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
    kind: str = "user"  # who approved: "user" (the requester) or "reviewers"
    rule: str = ""  # the rule that asked for approval
    policy_version: str = ""  # ... in this version of the policy
    owner_pid: int | None = None  # the guard process whose session a session grant lives in
    owner_host: str | None = None

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
        # Grants made here, by id: when they end on the monotonic clock (immune to clock steps).
        self._deadlines: dict[str, float] = {}

    def find(
        self, user: str, session: str, server: str, tool: str, *, kind: str, rule: str, policy_version: str,
    ) -> Grant | None:
        """A live grant for exactly this requester, tool, rule, policy version and approver kind."""
        now = time.time()
        rows = self.store.query(
            "SELECT * FROM grants WHERE server=? AND tool=? AND user=? AND kind=? AND rule=? AND policy_version=?"
            " AND revoked IS NULL AND (expires IS NULL OR expires > ?) AND (scope != 'session' OR session = ?)"
            " ORDER BY created DESC",
            (server, tool, user, kind, rule, policy_version, now, session),
        )
        for row in rows:
            grant = Grant(**{k: row[k] for k in _COLUMNS})
            if self._live(grant, now):
                return grant
        return None

    def _live(self, grant: Grant, now: float) -> bool:
        deadline = self._deadlines.get(grant.id)
        if deadline is not None:
            return time.monotonic() < deadline
        # Made by another process: only the wall clock is shared. A grant "created in the
        # future" means the clock was stepped back since; it is not trusted (fail closed).
        return grant.created <= now

    def add(
        self, *, user: str, session: str, server: str, tool: str, scope: str, approver: str, channel: str,
        kind: str, rule: str, policy_version: str,
    ) -> Grant | None:
        if scope == "once":
            return None
        lifetime = ttl_seconds(scope) or SESSION_GRANT_MAX_S
        now = time.time()
        grant = Grant(
            # A tool name with a secret in it is kept masked (and such a grant then matches nothing).
            secrets.token_hex(8), user, session if scope == "session" else None, server, scrub_text(tool), scope,
            now, now + lifetime, approver, channel, None, kind, rule, policy_version, os.getpid(), HOST,
        )
        self._deadlines[grant.id] = time.monotonic() + lifetime
        values = grant.to_dict()
        self.store.execute(
            f"INSERT INTO grants ({', '.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
            tuple(values[c] for c in _COLUMNS),
        )
        return grant

    def list(self, include_inactive: bool = False) -> list[Grant]:
        if include_inactive:
            rows = self.store.query("SELECT * FROM grants ORDER BY created")
        else:
            rows = self.store.query(
                "SELECT * FROM grants WHERE revoked IS NULL AND (expires IS NULL OR expires > ?) ORDER BY created", (time.time(),)
            )
        return [Grant(**{k: row[k] for k in _COLUMNS}) for row in rows]

    def revoke(self, grant_id: str) -> bool:
        return self.store.execute("UPDATE grants SET revoked=? WHERE id=? AND revoked IS NULL", (time.time(), grant_id)) > 0

    def end_session(self, session: str) -> None:
        """A client session ended: its session grants end with it."""
        self.store.execute("UPDATE grants SET revoked=? WHERE session=? AND revoked IS NULL", (time.time(), session))

    def recover(self) -> int:
        """At start-up: end the session grants of guard processes on this host that are gone.

        Their sessions died with them (a crash, a kill), so nothing could end those grants."""
        rows = self.store.query(
            "SELECT DISTINCT owner_pid FROM grants WHERE scope='session' AND revoked IS NULL AND owner_host=?", (HOST,)
        )
        ended = 0
        for row in rows:
            pid = row["owner_pid"]
            if pid is not None and pid != os.getpid() and not _alive(pid):
                ended += self.store.execute(
                    "UPDATE grants SET revoked=? WHERE scope='session' AND revoked IS NULL"
                    " AND owner_host=? AND owner_pid=?",
                    (time.time(), HOST, pid),
                )
        # Session grants from before grants knew their process cannot be tied to a live session.
        ended += self.store.execute(
            "UPDATE grants SET revoked=? WHERE scope='session' AND revoked IS NULL AND owner_pid IS NULL",
            (time.time(),),
        )
        if ended:
            logger.warning("ended %d session grant(s) left by guard processes that are gone", ended)
        return ended

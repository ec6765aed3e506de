"""Approval requests that outlive one elicitation: the out-of-band path for ``approvers: user``.

A request is created when the guard cannot get an answer through the client (no elicitation,
or a decline faster than a person can read). It is bound to the exact call: server, tool, the
canonical hash of the arguments and the policy version. States: pending -> approved | denied
| expired. Any channel may decide it (the loopback page, ``review approve|deny`` with a token);
the first decision wins and is recorded with the channel, who, when, and the SHA-256 of the
preview that was shown. An approval is used once unless the person chose a wider scope.

No HTTP, no CLI here: those call these functions. The store is the only shared state, so a
guard process and a terminal see the same requests.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from .reviewers import Reviewers, looks_alike, same_person
from .scrub import scrub_text
from .store import Store

HOST = socket.gethostname()
MAX_REASON = 2000  # characters in a decider's note, from any channel

__all__ = ["MAX_REASON", "Approvals", "Request", "Reviewers", "call_binding", "may_decide", "reason_refusal"]


def reason_refusal(reason: str) -> str | None:
    """Why ``reason`` cannot be a decider's note, or None when it can."""
    if len(reason) > MAX_REASON:
        return f"a reason is at most {MAX_REASON} characters (this one has {len(reason)}); nothing was decided"
    return None


def call_binding(server: str, tool: str, arguments: Any, policy_version: str) -> str:
    body = json.dumps([server, tool, arguments, policy_version], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Request:
    id: str
    created: float
    expires: float
    user: str
    session: str
    server: str
    tool: str
    binding: str
    rule: str
    risk: str
    preview: str
    preview_sha256: str
    page_token: str
    page_url: str | None
    max_scope: str
    state: str
    decided_at: float | None = None
    decided_by: str | None = None
    channel: str | None = None
    scope: str | None = None
    reason: str | None = None
    consumed: float | None = None
    approvers: str = "user"  # "user": the requester decides; "reviewers": anyone else (in the group)
    reviewers: str | None = None  # JSON list of who may decide, or None for anyone but the requester
    quorum: int = 1  # distinct reviewers whose approval it takes
    grp: str | None = None  # the policy group whose members may decide
    owner_pid: int | None = None  # the guard process whose caller waits for it
    owner_host: str | None = None  # ... on this host (several instances may share a PostgreSQL store)

    def public(self) -> dict[str, Any]:
        """Everything but the page token (a bearer secret for the approval page)."""
        data = asdict(self)
        data.pop("page_token")
        data.pop("page_url")
        return data


class Approvals:
    def __init__(self, store: Store, audit: Any = None) -> None:
        self.store = store
        # Where each vote and decision is chained, in the transaction that makes it (None: not recorded).
        self.audit = audit

    def _expire(self, request_id: str | None = None) -> None:
        """Mark requests past their time expired, and those whose guard process is gone cancelled.

        With ``request_id`` only that request is looked at: a waiting call polls its own request
        many times a second, and must not sweep the whole table each time."""
        only, args = ("AND id=?", (request_id,)) if request_id is not None else ("", ())
        self.store.execute(f"UPDATE approvals SET state='expired' WHERE state='pending' AND expires < ? {only}", (time.time(), *args))
        # A request whose guard process is gone has no caller left to run it (a restart, a crash):
        # it is marked so, and the record stays.
        # Only this host's processes can be looked at; another host's instance sweeps its own.
        rows = self.store.query(
            f"SELECT id, owner_pid, owner_host FROM approvals WHERE state='pending' AND owner_pid IS NOT NULL {only}", args
        )
        for row in rows:
            if row["owner_host"] in (None, HOST) and not _alive(row["owner_pid"]):
                self.cancel(row["id"], "the guard process waiting for it is gone")

    def cancel(self, request_id: str, reason: str) -> None:
        """The caller went away: the request can no longer run; kept as a record."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE approvals SET state='cancelled', decided_at=?, reason=? WHERE id=? AND state='pending'",
                (time.time(), scrub_text(reason), request_id),
            )
            self.store.notify(db, f"approval:{request_id}")

    async def wait_changed(self, request_id: str, timeout: float) -> None:
        """Return when the request may have been decided (at once with a PostgreSQL store)."""
        await self.store.wait_changed(f"approval:{request_id}", timeout)

    def open(
        self, *, user: str, session: str, server: str, tool: str, binding: str, rule: str, risk: str,
        preview: str, max_scope: str, lifetime: float, approvers: str = "user", reviewers: list[str] | None = None,
        quorum: int = 1, group: str | None = None,
    ) -> Request:
        """The pending request for this exact call, creating it if there is none."""
        self._expire()
        found = self.store.query(
            "SELECT * FROM approvals WHERE binding=? AND user=? AND state='pending' ORDER BY created DESC LIMIT 1", (binding, user)
        )
        if found:
            return Request(**dict(found[0]))
        now = time.time()
        request = Request(
            id=secrets.token_hex(4), created=now, expires=now + lifetime, user=user, session=session, server=server,
            tool=scrub_text(tool), binding=binding, rule=rule, risk=risk, preview=preview,
            preview_sha256=hashlib.sha256(preview.encode()).hexdigest(), page_token=secrets.token_urlsafe(24),
            page_url=None, max_scope=max_scope, state="pending", approvers=approvers,
            reviewers=json.dumps(sorted(reviewers)) if reviewers is not None else None, quorum=quorum, grp=group,
            owner_pid=os.getpid(), owner_host=HOST,
        )
        self.store.execute(
            "INSERT INTO approvals (id, created, expires, user, session, server, tool, binding, rule, risk, preview,"
            " preview_sha256, page_token, max_scope, state, approvers, reviewers, quorum, grp, owner_pid, owner_host)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (request.id, request.created, request.expires, request.user, request.session, request.server, request.tool,
             request.binding, request.rule, request.risk, request.preview, request.preview_sha256, request.page_token,
             request.max_scope, request.state, request.approvers, request.reviewers, request.quorum, request.grp,
             request.owner_pid, request.owner_host),
        )
        return request

    def set_page(self, request_id: str, url: str) -> None:
        self.store.execute("UPDATE approvals SET page_url=? WHERE id=?", (url, request_id))

    def get(self, request_id: str) -> Request | None:
        self._expire(request_id)
        rows = self.store.query("SELECT * FROM approvals WHERE id=?", (request_id,))
        return Request(**dict(rows[0])) if rows else None

    def pending(self) -> list[Request]:
        self._expire()
        return [Request(**dict(r)) for r in self.store.query("SELECT * FROM approvals WHERE state='pending' ORDER BY created")]

    def decide(self, request_id: str, *, approve: bool, by: str, channel: str, scope: str = "once", reason: str = "") -> Request:
        """Record a decision; raises ValueError when it is not this person's to make.

        A user request is settled by its requester's first answer. A reviewer request is never
        decided by its requester; one deny settles it, and approvals count once per person
        until the quorum is reached: the same vote again from the same person is refused."""
        refusal = reason_refusal(reason)
        if refusal is not None:
            raise ValueError(refusal)
        self._expire(request_id)
        reason = scrub_text(reason)  # a decider's note is kept: never a raw secret in it
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT state, max_scope, user, approvers, reviewers, quorum, server, tool, preview_sha256 FROM approvals WHERE id=?",
                (request_id,),
            ).fetchone()
            if row is None:
                raise ValueError(f"no approval request {request_id!r}")
            state, max_scope, requester, approvers, reviewers, quorum, server, tool, preview_sha256 = row
            if state != "pending":
                raise ValueError(f"request {request_id} is already {state}")
            allowed = _scopes(max_scope)
            if approve and scope not in allowed:
                raise ValueError(f"scope {scope!r} is wider than the policy allows ({', '.join(allowed)})")
            settled = True
            if approvers == "reviewers":
                refusal = _self_approval(by, requester)
                if refusal is not None:
                    raise ValueError(refusal)
                if reviewers is not None and not any(same_person(by, r) for r in json.loads(reviewers)):
                    raise ValueError(f"{by} is not among the reviewers who may decide this request")
                # One row per person: a vote under a spelling drawn like an earlier voter's (an identity
                # provider's "aIice" after a token's "alice") replaces that voter's vote, never adds one.
                voters = [r[0] for r in db.execute("SELECT reviewer FROM approval_votes WHERE request=?", (request_id,)).fetchall()]
                voter = _drawn_like(by, voters) or by
                _refuse_repeat(db, request_id, voter, approve)
                db.execute(
                    "INSERT INTO approval_votes (request, reviewer, decision, at, channel, reason) VALUES (?,?,?,?,?,?)"
                    " ON CONFLICT (request, reviewer) DO UPDATE SET decision=excluded.decision, at=excluded.at,"
                    " channel=excluded.channel, reason=excluded.reason",
                    (request_id, voter, "approve" if approve else "deny", time.time(), channel, reason),
                )
                if approve:
                    yes = db.execute("SELECT reviewer FROM approval_votes WHERE request=? AND decision='approve'", (request_id,)).fetchall()
                    settled = len(_people([r[0] for r in yes])) >= quorum
            if settled:
                db.execute(
                    "UPDATE approvals SET state=?, decided_at=?, decided_by=?, channel=?, scope=?, reason=? WHERE id=?",
                    ("approved" if approve else "denied", time.time(), by, channel, scope if approve else None, reason, request_id),
                )
                self.store.notify(db, f"approval:{request_id}")
            if self.audit is not None:
                self.audit.append_within(db, "approval.decided" if settled else "approval.vote", {
                    "request": request_id, "server": server, "tool": tool, "requester": requester,
                    "decision": "approve" if approve else "deny", "by": by, "channel": channel,
                    "scope": scope if approve else None, "reason": reason, "preview_sha256": preview_sha256,
                })
        if self.audit is not None:
            self.audit.published()
        decided = self.get(request_id)
        assert decided is not None
        return decided

    def history(self, server: str, tool: str, limit: int = 10) -> list[Request]:
        """Earlier decided requests for the same tool: what reviewers did with similar calls."""
        rows = self.store.query(
            "SELECT * FROM approvals WHERE server=? AND tool=? AND state != 'pending' ORDER BY created DESC LIMIT ?",
            (server, tool, limit),
        )
        return [Request(**dict(r)) for r in rows]

    def votes(self, request_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store.query("SELECT * FROM approval_votes WHERE request=? ORDER BY at", (request_id,))]

    def take_decision(self, binding: str, user: str) -> Request | None:
        """A decided, unused request for this exact call, marked used: one decision runs one call.

        A wider scope lives on in the grant the approval made, never in the request, so an
        approval cannot be picked up again by the same user's call in another session."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT id, scope, state FROM approvals WHERE binding=? AND user=? AND state IN ('approved','denied')"
                " AND consumed IS NULL ORDER BY decided_at DESC LIMIT 1",
                (binding, user),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE approvals SET consumed=? WHERE id=? AND consumed IS NULL", (time.time(), row[0]))
        return self.get(row[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _scopes(widest: str) -> list[str]:
    from .grants import offered_scopes

    return offered_scopes(widest)


def may_decide(request: Request, name: str, role: str) -> str | None:
    """Why ``name`` (with ``role``) may not decide ``request``, or None when they may."""
    if request.approvers != "reviewers":
        # The requester's own question: only a credential in the requester's name answers it.
        return None if same_person(name, request.user) else f"this request is {request.user}'s own to decide"
    refusal = _self_approval(name, request.user)
    if refusal is not None:
        return refusal
    if not same_person(role, "admin") and request.grp is not None and not same_person(role, request.grp):
        return f"the role {role!r} may not decide requests for the {request.grp!r} group"
    return None


def _refuse_repeat(db: Any, request_id: str, voter: str, approve: bool) -> None:
    """A vote the same person already cast on this still-pending request is refused (nothing is
    recorded): it would count for nothing. A change of mind (approve, then deny) is a new vote."""
    row = db.execute("SELECT decision FROM approval_votes WHERE request=? AND reviewer=?", (request_id, voter)).fetchone()
    if row is not None and row[0] == ("approve" if approve else "deny"):
        done = "approved" if approve else "denied"
        raise ValueError(f"you already {done} request {request_id}; it waits for another reviewer")


def _people(names: list[str]) -> list[str]:
    """One name per person among ``names``: names drawn alike count as one, so a quorum is never met
    by one person under two spellings (a token revoked and a lookalike made in its place)."""
    people: list[str] = []
    for name in names:
        if _drawn_like(name, people) is None:
            people.append(name)
    return people


def _drawn_like(name: str, names: list[str]) -> str | None:
    """The first of ``names`` drawn like ``name`` (the same canonical name included), or None."""
    return next((other for other in names if looks_alike(name, other)), None)


def _self_approval(decider: str, requester: str) -> str | None:
    """Why ``decider`` counts as ``requester`` (and may not decide a reviewer request), or None.

    Names compare canonically ("Carol", "carol " and a fullwidth "ｃarol" are the requester), and a
    name drawn like the requester's (a Cyrillic "о" for a Latin "o") is taken for theirs: whoever
    can name themselves so at an identity provider could otherwise approve their own call."""
    if same_person(decider, requester):
        return f"{decider} requested this call and cannot decide it: another reviewer must"
    if looks_alike(decider, requester):
        return (f"{ascii(decider)} looks like {ascii(requester)}, who requested this call, so cannot decide it:"
                " another reviewer must")
    return None

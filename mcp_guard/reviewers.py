"""Who decides: reviewer names, reviewer tokens and the web page's reviewer sessions.

A decision is only as trustworthy as the way its decider was identified, so identity here is a
credential, never a typed name. A reviewer token is created once, shown once and stored only as
its SHA-256; a web session is a random secret whose hash is kept in the store beside the token
it came from, and every request looks both up again, so logout and ``review token revoke``
take effect on the next request. Reading the web key gives nobody a session.

Names are compared in one canonical form (NFKC, case folded, trimmed), so ``Alice``,
``"alice "`` and a fullwidth ``ａlice`` are one person: otherwise a requester could vote under
a lookalike of their own name, or a quorum could be met by one person under two spellings.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import unicodedata
from typing import TYPE_CHECKING, Any

from .approval.escape import drawn, hidden, skeleton

if TYPE_CHECKING:  # the name rules are read at every start (cli.support.requester_name): no store for them
    from .store import Store

__all__ = ["Reviewers", "canonical", "looks_alike", "same_person", "valid_name"]

# How long a web sign-in lasts at most.
SESSION_S = 8 * 3600
NAME_MAX = 64


def canonical(name: str) -> str:
    """The form names are compared in: NFKC, case folded, NFKC again (folding can denormalize), trimmed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return folded.strip()


def same_person(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and canonical(a) == canonical(b)


def looks_alike(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are drawn alike once canonical (Cyrillic ``а``, dotless ``ı``,
    Roman numeral ``ⅼ`` for Latin letters): a second person under such a name could pass for
    the first on the page, in Slack or in the audit."""
    return skeleton(canonical(a)).casefold() == skeleton(canonical(b)).casefold() or bool(drawn(a) & drawn(b))


def valid_name(name: str, what: str = "reviewer name") -> str:
    """``name`` as it will be stored (NFKC, trimmed); ValueError says why it cannot be one."""
    text = unicodedata.normalize("NFKC", name).strip()
    odd = next((c for c in name.strip() if c.isspace() and c != " "), None)
    if odd is not None:
        # NFKC makes a hair or no-break space a plain one: "b\u200aob" is drawn as "bob".
        raise ValueError(f"a {what} cannot contain U+{ord(odd):04X} (an unusual space) inside it")
    if not text:
        raise ValueError(f"a {what} cannot be empty or only whitespace")
    if len(text) > NAME_MAX:
        raise ValueError(f"a {what} has at most {NAME_MAX} characters")
    for char in text:
        # Control, format (bidi, zero-width), unassigned and private characters, blank letters
        # (U+3164, a grapheme joiner U+034F), variation selectors, and any space but a plain one,
        # would let two names look alike on a screen or in the audit.
        if hidden(char):
            raise ValueError(f"a {what} cannot contain U+{ord(char):04X} (control, invisible or unusual space)")
        if char in "\ufffc\ufffd,":
            # Stand-ins for what cannot be drawn; a comma would read as two people where the audit lists deciders.
            raise ValueError(f"a {what} cannot contain U+{ord(char):04X}")
    if not any(c.isalnum() for c in text) or unicodedata.combining(text[0]):
        raise ValueError(f"a {what} needs a letter or digit first, not a mark on nothing")
    run = 0
    for char in unicodedata.normalize("NFD", text):  # "é" is a letter and a mark
        run = run + 1 if unicodedata.category(char).startswith("M") else 0
        if run > 2:
            raise ValueError(f"a {what} cannot stack more than two marks on a letter")
    return text


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Reviewers:
    """Reviewer tokens and the web sessions signed in with them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, name: str, role: str) -> str:
        """A new token for ``name``; ValueError for a bad name or one a live token already has."""
        name, role = valid_name(name), valid_name(role, "role")
        token = "mgr_" + secrets.token_urlsafe(32)
        with self.store.transaction() as db:
            live = db.execute("SELECT name FROM reviewer_tokens WHERE revoked IS NULL").fetchall()
            if any(same_person(row[0], name) for row in live):
                raise ValueError(f"a live reviewer token for {name!r} exists already: revoke it first to replace it")
            # Every name that ever held a token, revoked ones too: votes and the audit keep them, and a
            # lookalike made after a revoke would otherwise count as a second person for a quorum.
            known = db.execute("SELECT DISTINCT name FROM reviewer_tokens").fetchall()
            twin = next((row[0] for row in known if not same_person(row[0], name) and looks_alike(row[0], name)), None)
            if twin is not None:
                raise ValueError(
                    f"{ascii(name)} looks like {ascii(twin)}, who holds or held a reviewer token: choose a name"
                    " that cannot be mistaken for theirs"
                )
            db.execute(
                "INSERT INTO reviewer_tokens (hash, name, role, created) VALUES (?,?,?,?)",
                (_digest(token), name, role, time.time()),
            )
        return token

    def identify(self, token: str) -> tuple[str, str] | None:
        """(name, role) for a live token."""
        if not token:
            return None
        rows = self.store.query("SELECT name, role FROM reviewer_tokens WHERE hash=? AND revoked IS NULL", (_digest(token),))
        return (rows[0]["name"], rows[0]["role"]) if rows else None

    def live(self, name: str) -> tuple[str, str] | None:
        """(name, role) of the live token held by ``name`` (in its canonical form), or None.

        For channels that name their decider instead of presenting a token (a Slack user id mapped
        to a name): the name only counts while a token for it is live, so ``review token revoke``
        ends that person's decisions at once, and the role is the token's, never configured."""
        if not name:
            return None
        for row in self.store.query("SELECT name, role FROM reviewer_tokens WHERE revoked IS NULL ORDER BY created"):
            if same_person(row["name"], name):
                return row["name"], row["role"]
        return None

    def list(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store.query("SELECT name, role, created, revoked FROM reviewer_tokens ORDER BY created")]

    def revoke(self, name: str) -> int:
        """Revoke every live token of ``name`` (in its canonical form); their web sessions end with them."""
        now, count = time.time(), 0
        with self.store.transaction() as db:
            for row in db.execute("SELECT hash, name FROM reviewer_tokens WHERE revoked IS NULL").fetchall():
                if same_person(row[1], name):
                    db.execute("UPDATE reviewer_tokens SET revoked=? WHERE hash=?", (now, row[0]))
                    db.execute("UPDATE reviewer_sessions SET ended=? WHERE token=? AND ended IS NULL", (now, row[0]))
                    count += 1
        return count

    # -- web sessions ---------------------------------------------------------------------------

    def open_session(self, token: str) -> str | None:
        """A new session secret for a live token (the cookie's value), or None."""
        if self.identify(token) is None:
            return None
        secret = secrets.token_urlsafe(32)
        now = time.time()
        self.store.execute(
            "INSERT INTO reviewer_sessions (hash, token, created, expires) VALUES (?,?,?,?)",
            (_digest(secret), _digest(token), now, now + SESSION_S),
        )
        return secret

    def session(self, secret: str) -> tuple[str, str] | None:
        """(name, role) while the session and its token are both live; looked up on every request."""
        if not secret:
            return None
        rows = self.store.query(
            "SELECT t.name, t.role FROM reviewer_sessions s JOIN reviewer_tokens t ON t.hash = s.token"
            " WHERE s.hash=? AND s.ended IS NULL AND s.expires > ? AND t.revoked IS NULL",
            (_digest(secret), time.time()),
        )
        return (rows[0]["name"], rows[0]["role"]) if rows else None

    def end_session(self, secret: str) -> None:
        if secret:
            self.store.execute("UPDATE reviewer_sessions SET ended=? WHERE hash=? AND ended IS NULL", (time.time(), _digest(secret)))

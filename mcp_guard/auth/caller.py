"""The authenticated caller, the refusal a front turns into a 401/403, and the authenticator seam."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Caller:
    """One authenticated principal.

    ``user`` is the name policies, the review queue and the audit see (the configured claim, or
    the guard token's name); ``key`` ties per-caller state (vaults, grants, sessions) to the
    principal itself, so two issuers with the same ``sub`` never share anything."""

    user: str
    groups: frozenset[str] = frozenset()
    scheme: str = "none"  # "oidc" | "tokens" | "none"
    issuer: str = ""
    subject: str = ""
    scopes: frozenset[str] = frozenset()
    expires_at: float | None = None  # wall-clock seconds; None: does not expire on its own
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.scheme}|{self.issuer}|{self.subject or self.user}"


# Why a request was refused, as counted in mcp_guard_auth_refused_total{reason}: a small fixed set.
REASONS = ("missing", "malformed", "invalid", "expired", "unknown_key", "scope", "unavailable")


class AuthRefused(Exception):
    """A request without acceptable credentials: 401 (none, or invalid) or 403 (insufficient scope).

    ``error`` is the RFC 6750 error code (``invalid_token``, ``insufficient_scope``,
    ``invalid_request``) or None when no credential was given at all. ``reason`` is one of
    ``REASONS`` (by default the one the status and error code say)."""

    def __init__(
        self, status: int, description: str, error: str | None = None, scope: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.error = error
        self.scope = scope
        self.reason = reason if reason in REASONS else _reason(status, error)


def _reason(status: int, error: str | None) -> str:
    if status >= 500:
        return "unavailable"
    if error is None:
        return "missing"
    return {"invalid_request": "malformed", "insufficient_scope": "scope"}.get(error, "invalid")


def challenge(refused: AuthRefused, resource_metadata: str | None) -> str:
    """The ``WWW-Authenticate`` value for a refusal (RFC 6750 section 3, RFC 9728 section 5.1)."""
    parts = []
    if resource_metadata:
        parts.append(f'resource_metadata="{_quoted(resource_metadata)}"')
    if refused.error:
        parts.append(f'error="{_quoted(refused.error)}"')
        parts.append(f'error_description="{_quoted(refused.description)}"')
    if refused.scope:
        parts.append(f'scope="{_quoted(refused.scope)}"')
    return "Bearer " + ", ".join(parts) if parts else "Bearer"


def _quoted(text: str) -> str:
    # A quoted-string may not hold '"' or '\\' unescaped, nor control characters at all.
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    return cleaned.replace("\\", "\\\\").replace('"', '\\"')


class Authenticator(Protocol):
    """Turns a request's credentials into a caller, or refuses."""

    async def authenticate(self, authorization: str | None) -> Caller:
        """``authorization`` is the raw ``Authorization`` header (None when absent); raises AuthRefused."""
        ...

    def routes(self) -> list[Any]:
        """Starlette routes this scheme serves without authentication (e.g. protected-resource metadata)."""
        ...

    async def run(self) -> None:
        """Background upkeep for as long as ``serve`` runs (e.g. refreshing an issuer's keys); may return at once."""
        ...

    @property
    def resource_metadata_url(self) -> str | None:
        """The metadata URL named in 401 challenges (from configuration, never from request headers)."""
        ...

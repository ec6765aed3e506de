"""The real OpenID provider fixture for every test of serve's caller authentication."""

from __future__ import annotations

from tests.oidc_provider import oidc_provider  # noqa: F401  (a pytest fixture, found by name)

"""The review page's sign-in options, shared by ``serve`` and ``review serve``.

``--reviewer-public-url`` is the address reviewers' browsers use (``https://`` makes every page
cookie ``__Host-`` and Secure); with ``--reviewer-oidc-issuer``, ``--reviewer-oidc-client-id`` and
``--reviewer-oidc-client-secret-file`` the page signs reviewers in through that provider only,
with the redirect URI ``PUBLIC_URL/review/oidc/callback`` (register it, and
``PUBLIC_URL/review/login`` as the post-logout redirect, at the provider). The reviewer groups are
the groups the policy's reviewer rules name, plus any ``--reviewer-group``.

The provider is fetched from as the callers' issuer is (auth/discovery): a provider on a private or
link-local address needs ``--reviewer-oidc-allow-private-issuer``, its own option, so that trusting
an internal provider for reviewers does not widen what the callers' ``--allow-private-issuer``
allows, or the other way round. Cloud metadata addresses are refused whatever the options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .support import secret_file
from ..errors import ConfigError

__all__ = ["add_options", "page_options"]


def add_options(parser: argparse.ArgumentParser, with_policy: bool = False) -> None:
    group = parser.add_argument_group("review page sign-in")
    group.add_argument("--reviewer-public-url", metavar="URL", help="the review page's address as browsers reach it")
    group.add_argument("--reviewer-oidc-issuer", metavar="URL", help="reviewers sign in through this OpenID provider")
    group.add_argument("--reviewer-oidc-client-id", metavar="ID")
    group.add_argument("--reviewer-oidc-client-secret-file", metavar="F", help="a file holding the client secret")
    group.add_argument(
        "--reviewer-oidc-allow-private-issuer", action="store_true",
        help="the reviewers' provider may be on a private or link-local address (never cloud metadata)",
    )
    group.add_argument(
        "--reviewer-oidc-scope", metavar="S", default=None, help="scopes asked (default: openid profile email groups)"
    )
    group.add_argument(
        "--reviewer-groups-claim", metavar="C", default="groups", help="the claim listing a reviewer's groups"
    )
    group.add_argument(
        "--reviewer-user-claim", metavar="C", default=None,
        help="the claim naming a reviewer (default: --user-claim when callers sign in at the same provider, "
        "else preferred_username)",
    )
    group.add_argument(
        "--reviewer-group", metavar="G", action="append", default=[], help="a reviewer group (repeatable)"
    )
    group.add_argument(
        "--reviewer-recheck-s",
        metavar="N",
        type=float,
        default=60.0,
        help="ask the provider again whether a reviewer's access holds at most every N seconds (default 60)",
    )
    if with_policy:
        group.add_argument("--policy", help="the policy whose reviewer rules name the reviewer groups")


def page_options(args: argparse.Namespace, policy_file: Callable[[], str | None]) -> dict[str, Any]:
    """``public_url`` and ``signin`` for ReviewApp, from the options; ConfigError on a bad combination."""
    public = _public_url(args.reviewer_public_url)
    oidc = (args.reviewer_oidc_issuer, args.reviewer_oidc_client_id, args.reviewer_oidc_client_secret_file)
    if not any(oidc):
        return {"public_url": public, "signin": None}
    if not all(oidc) or public is None:
        raise ConfigError(
            "reviewer sign-in needs --reviewer-oidc-issuer, --reviewer-oidc-client-id,"
            " --reviewer-oidc-client-secret-file and --reviewer-public-url together"
        )
    from ..auth.discovery import is_loopback_host  # here, not at import: every command builds this parser

    if not public.startswith("https://") and not is_loopback_host(urlsplit(public).hostname or ""):
        raise ConfigError(
            f"--reviewer-public-url {public}: reviewers sign in over HTTPS only (plain HTTP on loopback alone)"
        )
    if args.reviewer_recheck_s < 0:
        raise ConfigError("--reviewer-recheck-s cannot be negative")
    _check_issuer(args.reviewer_oidc_issuer, args.reviewer_oidc_allow_private_issuer)
    from ..web.signin import DEFAULT_SCOPES, SigninSettings

    return {
        "public_url": public,
        "signin": SigninSettings(
            issuer=args.reviewer_oidc_issuer,
            client_id=args.reviewer_oidc_client_id,
            client_secret=secret_file(args.reviewer_oidc_client_secret_file, "--reviewer-oidc-client-secret-file"),
            public_url=public,
            reviewer_groups=frozenset(_groups(args, policy_file())),
            groups_claim=args.reviewer_groups_claim,
            user_claim=_reviewer_claim(args),
            recheck_s=args.reviewer_recheck_s,
            scopes=args.reviewer_oidc_scope or DEFAULT_SCOPES,
            allow_private_issuer=args.reviewer_oidc_allow_private_issuer,
        ),
    }


def _reviewer_claim(args: argparse.Namespace) -> str:
    """The claim naming a reviewer. When callers (``--auth oidc``) come from the same provider it is
    theirs: no-self-approval compares names, and a person named by ``sub`` as a caller and by
    ``preferred_username`` as a reviewer would be two people who may approve each other."""
    same = getattr(args, "auth", None) == "oidc" and (getattr(args, "issuer", None) or "").rstrip("/") == (
        args.reviewer_oidc_issuer.rstrip("/")
    )
    caller_claim = getattr(args, "user_claim", None) or "sub"
    chosen = args.reviewer_user_claim
    if same and chosen is not None and chosen != caller_claim:
        raise ConfigError(
            f"--reviewer-user-claim {chosen} differs from --user-claim {caller_claim} at the same provider: "
            "a caller could then approve their own call under their other name"
        )
    return chosen or (caller_claim if same else "preferred_username")


def _public_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"--reviewer-public-url {url!r}: give scheme://host[:port], without a path")
    return f"{parts.scheme}://{parts.netloc}"


def _check_issuer(issuer: str, allow_private: bool) -> None:
    """Refuse at start an issuer no fetch would be allowed to reach (a literal address; names are
    checked each time they are resolved, at every fetch)."""
    from ..auth.discovery import DiscoveryError, FetchPolicy, check_url

    policy = FetchPolicy.for_issuer(issuer, allow_private)
    try:
        check_url(issuer, policy)
    except DiscoveryError as exc:
        hint = ""
        if not allow_private:
            try:
                check_url(issuer, FetchPolicy.for_issuer(issuer, allow_private=True))
                hint = " (an internal provider: give --reviewer-oidc-allow-private-issuer)"
            except DiscoveryError:
                pass
        raise ConfigError(f"--reviewer-oidc-issuer {exc}{hint}") from exc


def _groups(args: argparse.Namespace, policy_file: str | None) -> set[str]:
    groups = set(args.reviewer_group)
    if policy_file:
        from ..policy.load import load_policy

        policy = load_policy(policy_file)
        groups |= {rule.group for rule in policy.rules if rule.approvers == "reviewers" and rule.group}
    if not groups:
        raise ConfigError(
            "reviewer sign-in needs reviewer groups: a policy whose reviewer rules name a group, or --reviewer-group G"
        )
    return groups


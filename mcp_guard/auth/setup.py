"""``serve``'s caller-authentication options, and the one place an Authenticator is built from them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .caller import Authenticator

MODES = ("none", "oidc", "tokens")
# A metrics token shorter than this is guessable; the refusal counters would show the guessing, too late.
MIN_METRICS_TOKEN = 24


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("caller authentication")
    group.add_argument(
        "--auth", choices=MODES, default=None,
        help="how callers authenticate: oidc (OAuth 2.1 access tokens), tokens (guard-issued), or none "
        "(loopback only; the default there)",
    )
    group.add_argument("--issuer", help="--auth oidc: the authorization server's issuer URL, exactly as in its tokens")
    group.add_argument("--audience", help="--auth oidc: the aud access tokens must name (RFC 8707: this resource)")
    group.add_argument(
        "--scope", action="append", default=[], help="--auth oidc: a scope every access token must have (repeatable)"
    )
    group.add_argument("--user-claim", default="sub", help="--auth oidc: the claim naming the caller (default sub)")
    group.add_argument("--groups-claim", default="groups", help="--auth oidc: the claim with the caller's groups")
    group.add_argument("--introspection-client-id", help="--auth oidc: client id for introspecting opaque tokens")
    group.add_argument("--introspection-secret-file", help="--auth oidc: file holding that client's secret")
    group.add_argument(
        "--resource", help="this guard's protected-resource identifier, e.g. https://guard.example/mcp "
        "(default: --public-url + /mcp, else the audience when it is a URL)",
    )
    group.add_argument("--public-url", help="the guard's external base URL, e.g. https://guard.example")
    group.add_argument(
        "--metrics-token-file",
        help="a file holding the bearer token /metrics then requires (a scraper's own credential); without it, "
        "under --auth oidc|tokens /metrics takes any caller's valid credential",
    )
    group.add_argument(
        "--allow-private-issuer", action="store_true",
        help="--auth oidc: allow metadata and JWKS on private or link-local addresses (never cloud metadata)",
    )


def from_args(args: argparse.Namespace, tokens: Callable[[], Authenticator] | None = None) -> Authenticator | None:
    """The authenticator ``serve`` puts in front of /mcp, or None for ``--auth none``; raises ConfigError."""
    from .discovery import is_loopback_url  # here, not at import: every mcp-guard command builds this parser

    mode = args.auth
    loopback = is_loopback_url(f"http://{_bracketed(args.host)}/")
    if mode is None:
        if not loopback:
            raise ConfigError(
                f"serve on {args.host} needs caller authentication: give --auth oidc or --auth tokens "
                "(--auth none is only for loopback)"
            )
        mode = "none"
    if mode == "none":
        if not loopback:
            raise ConfigError(f"--auth none is only allowed on loopback, not on {args.host}")
        print(
            f"mcp-guard: --auth none: any local process that reaches port {args.port} can call every tool, "
            "as the user who started serve", file=sys.stderr, flush=True,
        )
        return None
    print(f"mcp-guard: callers authenticate with --auth {mode}", file=sys.stderr, flush=True)
    if mode == "oidc":
        return _oidc(args)
    if tokens is None:
        raise ConfigError("--auth tokens is not available in this build")
    return tokens()


def _oidc(args: argparse.Namespace) -> Authenticator:
    from .oidc import OidcAuthenticator, OidcSettings

    if not args.issuer or not args.audience:
        raise ConfigError("--auth oidc needs --issuer URL and --audience AUD")
    client = None
    if args.introspection_client_id:
        if not args.introspection_secret_file:
            raise ConfigError("--introspection-client-id needs --introspection-secret-file F")
        from ..cli.support import secret_file

        client = (args.introspection_client_id, secret_file(args.introspection_secret_file, "--introspection-secret-file"))
    settings = OidcSettings(
        issuer=args.issuer, audience=args.audience, resource=_resource(args), scopes=tuple(args.scope),
        user_claim=args.user_claim, groups_claim=args.groups_claim, introspection_client=client,
        allow_private=args.allow_private_issuer,
    )
    return OidcAuthenticator(settings)


def _resource(args: argparse.Namespace) -> str:
    from .metadata import checked_resource

    if args.resource:
        return checked_resource(args.resource)
    if args.public_url:
        return checked_resource(args.public_url.rstrip("/") + "/mcp")
    if args.audience.startswith(("https://", "http://")):
        return checked_resource(args.audience)
    raise ConfigError("--auth oidc needs --resource URL or --public-url URL (the audience is not a URL)")


def metrics_token(args: argparse.Namespace) -> str | None:
    """The token of ``--metrics-token-file``, or None; raises ConfigError for a missing, short or odd one."""
    path = getattr(args, "metrics_token_file", None)
    if not path:
        return None
    from ..cli.support import secret_file

    token = secret_file(path, "--metrics-token-file")
    if len(token) < MIN_METRICS_TOKEN or not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError(
            f"--metrics-token-file {path}: the token must be at least {MIN_METRICS_TOKEN} printable ASCII characters "
            "without spaces (e.g. the output of: openssl rand -hex 32)"
        )
    return token


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

"""``mcp-guard auth token create|list|revoke`` and ``serve --auth``: who may call through ``serve``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .cli_support import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, approvals_for, audit_for, requester_name
from .errors import ConfigError

__all__ = ["add_serve_options", "announce", "authenticator", "check_host", "register"]

AUTH_MODES = ("none", "tokens", "oidc")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(sub: Any, state: Any) -> None:
    """The ``auth`` command group; ``state`` adds the --home/--store options."""
    auth = sub.add_parser("auth", help="caller credentials for serve --auth tokens")
    asub = auth.add_subparsers(metavar="ACTION")
    token = asub.add_parser("token", help="caller tokens: create NAME [--group G]... [--expires DAYS] | list | revoke NAME")
    token.add_argument("token_action", choices=("create", "list", "revoke"))
    token.add_argument("name", nargs="?", default="")
    token.add_argument("--group", action="append", default=[], help="a group the caller belongs to, for policy (repeatable)")
    token.add_argument("--expires", type=float, default=None, metavar="DAYS", help="the token stops working after DAYS")
    state(token)
    token.set_defaults(func=cmd_auth_token)


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--auth", choices=AUTH_MODES, default="none",
        help="how callers authenticate: tokens (mcp-guard auth token create), oidc, or none (loopback only)",
    )


def check_host(args: argparse.Namespace) -> None:
    """``--auth none`` only on loopback: anyone who reaches another address would be the one user."""
    if args.auth == "none" and args.host not in LOOPBACK:
        raise ConfigError(
            f"--auth none would let anyone who reaches {args.host} call every tool as one user: "
            "use --auth tokens or --auth oidc, or bind to 127.0.0.1"
        )


def authenticator(args: argparse.Namespace) -> Any:
    """The Authenticator ``serve --auth`` names, or None for ``--auth none`` (loopback only)."""
    check_host(args)
    if args.auth == "none":
        return None
    if args.auth == "tokens":
        from .auth.tokens import CallerTokens, TokenAuthenticator

        return TokenAuthenticator(CallerTokens(approvals_for(args).store))
    raise ConfigError("--auth oidc is not available in this build of mcp-guard")


def announce(args: argparse.Namespace) -> None:
    """Say on stderr who the callers are, so nobody runs an open gateway by mistake."""
    if args.auth == "none":
        print(
            f"mcp-guard: --auth none: callers are not authenticated; every call is {requester_name(args)}'s",
            file=sys.stderr, flush=True,
        )
    else:
        print(f"mcp-guard: callers authenticate with --auth {args.auth}", file=sys.stderr, flush=True)


def cmd_auth_token(args: argparse.Namespace) -> int:
    from .auth.tokens import CallerTokens

    tokens = CallerTokens(approvals_for(args).store)
    if args.token_action == "create":
        return _create(args, tokens)
    if args.token_action == "revoke":
        if not args.name or not tokens.revoke(args.name):
            print(f"mcp-guard: no live caller token for {args.name!r}", file=sys.stderr)
            return EXIT_PROBLEM
        _audit(args, "revoked", args.name, None)
        print(f"revoked the caller token of {args.name}; its next request is refused", file=sys.stderr)
        return EXIT_OK
    print(json.dumps(tokens.list()))
    return EXIT_OK


def _create(args: argparse.Namespace, tokens: Any) -> int:
    try:
        token = tokens.create(args.name, args.group, args.expires)
    except ValueError as exc:
        print(f"mcp-guard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _audit(args, "created", args.name, sorted(set(args.group)))
    print(token)  # the only time it is shown: it is stored hashed
    print(f"caller token for {args.name.strip()} created; keep it secret", file=sys.stderr)
    return EXIT_OK


def _audit(args: argparse.Namespace, action: str, name: str, groups: list[str] | None) -> None:
    """Who was given (or lost) access, and by which OS account: callers are part of the evidence."""
    body: dict[str, Any] = {"action": action, "name": name.strip(), "by": requester_name(argparse.Namespace(user=None))}
    if groups is not None:
        body["groups"] = groups
    audit_for(args, writer=True).append("caller.token", body)

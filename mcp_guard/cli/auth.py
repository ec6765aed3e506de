"""``mcp-guard auth token create|list|revoke`` and ``serve --auth``: who may call through ``serve``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .support import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, approvals_for, audit_for, requester_name, state

__all__ = ["authenticator", "register"]


def register(sub: Any) -> None:
    """The ``auth`` command group."""
    auth = sub.add_parser("auth", help="caller credentials for serve --auth tokens")
    asub = auth.add_subparsers(metavar="ACTION")
    token = asub.add_parser("token", help="caller tokens: create NAME [--group G]... [--expires DAYS] | list | revoke NAME")
    token.add_argument("token_action", choices=("create", "list", "revoke"))
    token.add_argument("name", nargs="?", default="")
    token.add_argument("--group", action="append", default=[], help="a group the caller belongs to, for policy (repeatable)")
    token.add_argument("--expires", type=float, default=None, metavar="DAYS", help="the token stops working after DAYS")
    state(token)
    token.set_defaults(func=cmd_auth_token)


def authenticator(args: argparse.Namespace) -> Any:
    """The Authenticator ``serve --auth`` names (None for ``--auth none``, loopback only).

    Built after the guard is: guard-issued tokens live in the config's store when it names one."""
    from ..auth import setup
    from ..auth.tokens import CallerTokens, TokenAuthenticator

    return setup.from_args(args, tokens=lambda: TokenAuthenticator(CallerTokens(approvals_for(args).store)))


def cmd_auth_token(args: argparse.Namespace) -> int:
    from ..auth.tokens import CallerTokens

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
    _list(tokens.list())
    return EXIT_OK


def _list(tokens: list[dict[str, Any]]) -> None:
    """JSON for a script; a table for a person at a terminal (no token is ever stored to show)."""
    import time

    from .term import STATE_STYLE, Column, moment, print_records

    now = time.time()

    def state(t: dict[str, Any]) -> str:
        return "revoked" if t["revoked"] else "expired" if t["expires"] is not None and t["expires"] <= now else "live"

    columns = (Column("NAME"), Column("GROUPS", "wrap"), Column("CREATED", "keep"), Column("EXPIRES", "keep"),
               Column("LAST USED", "keep"), Column("STATE", "keep", STATE_STYLE))
    print_records(tokens, columns, lambda t: (t["name"], ", ".join(t["groups"]) or "-", moment(t["created"]),
                                              moment(t["expires"]), moment(t["last_used"]), state(t)),
                  "no caller tokens: `mcp-guard auth token create NAME` makes one")


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

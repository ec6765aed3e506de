"""``mcp-guard grants list|revoke``: approvals that outlive one call."""

from __future__ import annotations

import argparse
import sys

from .support import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, grants_for, state


def register(sub) -> None:  # type: ignore[no-untyped-def]
    grants = sub.add_parser("grants", help="list or revoke approvals that outlive one call")
    gsub = grants.add_subparsers(metavar="ACTION")
    glist = gsub.add_parser("list", help="active grants (add --all for expired and revoked)")
    glist.add_argument("--all", action="store_true")
    glist.add_argument("--json", action="store_true")
    state(glist)
    glist.set_defaults(func=cmd_grants_list)
    grevoke = gsub.add_parser("revoke", help="revoke a grant by id")
    grevoke.add_argument("id")
    state(grevoke)
    grevoke.set_defaults(func=cmd_grants_revoke)


def cmd_grants_list(args: argparse.Namespace) -> int:
    import json
    import time

    grants = grants_for(args)
    if grants is None:
        return EXIT_USAGE
    items = grants.list(include_inactive=args.all)
    if args.json:
        print(json.dumps([g.to_dict() for g in items]))
        return EXIT_OK
    if not items:
        print("no active grants", file=sys.stderr)
    for g in items:
        left = f"{max(0, (g.expires or 0) - time.time()) / 60:.0f} min left" if g.expires else "no expiry"
        state = " (revoked)" if g.revoked else ""
        print(f"{g.id}  {g.user} may call {g.tool} on {g.server}  scope {g.scope}, {left}{state}")
    return EXIT_OK


def cmd_grants_revoke(args: argparse.Namespace) -> int:
    grants = grants_for(args)
    if grants is None:
        return EXIT_USAGE
    if not grants.revoke(args.id):
        print(f"mcp-guard: no active grant {args.id!r}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"revoked {args.id}", file=sys.stderr)
    return EXIT_OK

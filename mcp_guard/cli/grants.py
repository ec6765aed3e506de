"""``mcp-guard grants list|revoke``: approvals that outlive one call."""

from __future__ import annotations

import argparse
import sys

from .support import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, grants_for, one_line, state


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
    from .term import on_terminal

    if on_terminal():
        _table(items)
        return EXIT_OK
    for g in items:
        left = f"{max(0, (g.expires or 0) - time.time()) / 60:.0f} min left" if g.expires else "no expiry"
        state = " (revoked)" if g.revoked else ""
        # Server and tool names came from upstreams: escaped, like every other listing's.
        print(f"{g.id}  {one_line(g.user)} may call {one_line(g.tool)} on {one_line(g.server)}  scope {one_line(g.scope)},"
              f" {left}{state}")
    return EXIT_OK


def _table(items: list) -> None:  # type: ignore[type-arg]
    import time

    from .term import STATE_STYLE, Column, print_table

    now = time.time()

    def state(g) -> str:  # type: ignore[no-untyped-def]
        return "revoked" if g.revoked else "expired" if g.expires and g.expires <= now else "active"

    columns = (Column("ID", "keep"), Column("USER"), Column("TOOL"), Column("SERVER"), Column("SCOPE"),
               Column("LEFT", "keep", right=True), Column("STATE", "keep", STATE_STYLE))
    print_table(columns, [(g.id, g.user, g.tool, g.server, g.scope,
                           f"{max(0, g.expires - now) / 60:.0f} min" if g.expires else "no expiry", state(g)) for g in items])


def cmd_grants_revoke(args: argparse.Namespace) -> int:
    grants = grants_for(args)
    if grants is None:
        return EXIT_USAGE
    if not grants.revoke(args.id):
        print(f"mcp-guard: no active grant {args.id!r}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"revoked {args.id}", file=sys.stderr)
    return EXIT_OK

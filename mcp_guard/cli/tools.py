"""``mcp-guard tools diff|accept|check``: the pinned tool definitions and what scanning found in them."""

from __future__ import annotations

import argparse
import sys

from .support import EXIT_OK, EXIT_PROBLEM, audit_for, one_line, pins_for, requester_name, state


def register(sub) -> None:  # type: ignore[no-untyped-def]
    tools = sub.add_parser("tools", help="pinned tool definitions: diff, accept, check")
    tsub = tools.add_subparsers(metavar="ACTION")
    tdiff = tsub.add_parser("diff", help="changed or held tools, with the difference")
    tdiff.add_argument("server", nargs="?")
    state(tdiff)
    tdiff.set_defaults(func=cmd_tools_diff)
    taccept = tsub.add_parser("accept", help="accept the changed (or held new) tools of a server")
    taccept.add_argument("server")
    taccept.add_argument("tool", nargs="?")
    state(taccept)
    taccept.set_defaults(func=cmd_tools_accept)
    tcheck = tsub.add_parser("check", help="what description scanning found, with the evidence")
    tcheck.add_argument("server", nargs="?")
    tcheck.add_argument("--json", action="store_true")
    state(tcheck)
    tcheck.set_defaults(func=cmd_tools_check)


def cmd_tools_diff(args: argparse.Namespace) -> int:
    import difflib
    import json

    rows = [r for r in pins_for(args).rows(args.server) if r["pending_hash"] or r["accepted"] is None]
    if not rows:
        print("no changed or held tools", file=sys.stderr)
        return EXIT_OK
    for r in rows:
        if r["pending_hash"]:
            old = json.dumps(json.loads(r["definition"]), indent=2, sort_keys=True).splitlines(True)
            new = json.dumps(json.loads(r["pending_definition"]), indent=2, sort_keys=True).splitlines(True)
            sys.stdout.write("".join(difflib.unified_diff(old, new, f"{r['server']}/{r['tool']} (accepted)", f"{r['server']}/{r['tool']} (now)")))
        else:
            print(f"{r['server']}/{r['tool']}: new, held until accepted")
    return EXIT_PROBLEM


def cmd_tools_accept(args: argparse.Namespace) -> int:
    count = pins_for(args).accept(args.server, args.tool)
    if not count:
        print(f"mcp-guard: nothing to accept for {args.server}{'/' + args.tool if args.tool else ''}", file=sys.stderr)
        return EXIT_PROBLEM
    audit = audit_for(args, writer=True)
    audit.append("tool.accepted", {"server": args.server, "tool": args.tool or "*", "by": requester_name(argparse.Namespace(user=None))})
    print(f"accepted {count} tool definition(s) of {args.server}", file=sys.stderr)
    return EXIT_OK


def cmd_tools_check(args: argparse.Namespace) -> int:
    import json

    from .term import on_terminal

    flagged = [(r["server"], r["tool"], json.loads(r["findings"] or "[]")) for r in pins_for(args).rows(args.server)]
    flagged = [f for f in flagged if f[2]]
    if args.json:
        print(json.dumps([{"server": s, "tool": t, "findings": f} for s, t, f in flagged]))
        return EXIT_PROBLEM if flagged else EXIT_OK
    if on_terminal():
        from .term import Column, print_table

        columns = (Column("SERVER"), Column("TOOL"), Column("FINDING", "keep", lambda _: "red"), Column("WHERE"),
                   Column("EVIDENCE", "wrap"))
        print_table(columns, [(server, tool, f["kind"], f["where"], repr(f["evidence"]))
                              for server, tool, findings in flagged for f in findings])
    else:
        # Tool and parameter names came from the server: escaped, as the evidence is by repr().
        for server, tool, findings in flagged:
            print(f"{one_line(server)}/{one_line(tool)}:")
            for f in findings:
                print(f"  {one_line(f['kind'])} in {one_line(f['where'])}: {f['evidence']!r}")
    if not flagged:
        print("no findings", file=sys.stderr)
    return EXIT_PROBLEM if flagged else EXIT_OK

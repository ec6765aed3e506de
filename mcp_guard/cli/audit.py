"""``mcp-guard audit verify|head|tail|export``: check, anchor, read and export the tamper-evident trail."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from .support import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, audit_for, state


def register(sub) -> None:  # type: ignore[no-untyped-def]
    audit = sub.add_parser("audit", help="check, read and export the tamper-evident audit trail")
    asub = audit.add_subparsers(metavar="ACTION")
    verify = asub.add_parser("verify", help="exit 0 when the chain is whole, 1 naming the first bad record")
    verify.add_argument(
        "--expect", metavar="SEQ:HASH", help="a head from `audit head` kept elsewhere: the chain must still hold it"
    )
    state(verify)
    verify.set_defaults(func=cmd_audit_verify)
    head = asub.add_parser("head", help="seal the chain's head now and print it (SEQ:HASH), to anchor elsewhere")
    state(head)
    head.set_defaults(func=cmd_audit_head)
    tail = asub.add_parser("tail", help="the last records")
    tail.add_argument("-n", type=int, default=20)
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument("--json", action="store_true")
    state(tail)
    tail.set_defaults(func=cmd_audit_tail)
    exp = asub.add_parser("export", help="records as evidence: JSON lines or CSV")
    exp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    exp.add_argument("--since", help="ISO date or time (UTC), e.g. 2026-11-01")
    exp.add_argument("--until", help="ISO date or time (UTC)")
    state(exp)
    exp.set_defaults(func=cmd_audit_export)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from ..audit import KeyMissing, parse_head

    try:
        expect = parse_head(args.expect) if args.expect else None
    except ValueError as exc:
        print(f"mcp-guard: --expect: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from .. import settings

    current = settings.current()
    if not current.store_url and not current.home.is_dir():
        # A misspelt home must not pass a monitoring check as "whole" (nor be made by reading it).
        print(f"mcp-guard: no mcp-guard home at {current.home}: check --home or MCP_GUARD_HOME", file=sys.stderr)
        return EXIT_USAGE
    try:
        audit = audit_for(args)
        problem = audit.verify(expect)
    except KeyMissing as exc:
        return _unverifiable(exc)
    except ConfigError as exc:
        if isinstance(exc.__cause__, KeyMissing):
            return _unverifiable(exc.__cause__)
        raise
    if problem is not None:
        where = f"at record {problem.seq}" if problem.seq is not None else "as a whole"
        print(f"mcp-guard: audit chain broken {where}: {problem.reason}", file=sys.stderr)
        return EXIT_PROBLEM
    count = sum(1 for _ in audit.records())
    held = f", holding {expect[0]}:{expect[1]}" if expect else ""
    print(f"audit chain whole: {count} records{held}", file=sys.stderr)
    return EXIT_OK


def _unverifiable(missing: Exception) -> int:
    # Records whose seal key is gone: a finding about this home, not a usage error.
    print(f"mcp-guard: audit chain cannot be verified: {missing}", file=sys.stderr)
    return EXIT_PROBLEM


def cmd_audit_head(args: argparse.Namespace) -> int:
    """The head, checked and sealed now: kept elsewhere, it lets `verify --expect` catch a cut."""
    audit = audit_for(args)
    problem = audit.verify()
    if problem is not None:
        print(f"mcp-guard: not sealing a broken chain (record {problem.seq}): {problem.reason}", file=sys.stderr)
        return EXIT_PROBLEM
    if audit.seal() is None:
        print("mcp-guard: the audit chain is empty: there is no head to anchor", file=sys.stderr)
        return EXIT_PROBLEM
    head = audit.head()
    assert head is not None
    print(f"{head[0]}:{head[1]}")
    return EXIT_OK


# The colour of a decision or outcome in the table on a terminal; words not listed stay as they are.
_VERDICT_STYLE = {"allow": "green", "allowed": "green", "approved": "green", "ok": "green",
                  "completed": "green", "deny": "red", "denied": "red", "refused": "red", "error": "red",
                  "withheld": "red", "approve": "yellow", "asked": "yellow"}.get
_FIELDS = ("user", "requester", "server", "tool", "risk", "rule", "decision", "outcome", "approver", "by", "channel", "reason")


def _when(record: dict) -> str:  # type: ignore[type-arg]
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["ts"]))


def _fields(body: dict, skip: tuple[str, ...] = ()) -> str:  # type: ignore[type-arg]
    from ..approval.escape import one_line

    # Stored fields came from calls (tool names, reasons, upstream errors): escaped, so an ANSI
    # sequence, a newline or a bidi override in them cannot rewrite the reader's terminal or forge lines.
    return " ".join(f"{k}={one_line(str(body[k]))}" for k in _FIELDS if k in body and k not in skip)


def _format_record(record: dict, as_json: bool) -> str:  # type: ignore[type-arg]
    """One record a line, for a script or a file."""
    import json

    from ..approval.escape import one_line

    if as_json:
        return json.dumps(record)  # ASCII: a bidi override or other invisible in a record stays an escape on the terminal
    return f"{record['seq']:>6} {_when(record)} {one_line(str(record['kind'])):<16} {_fields(record['body'])}"


def _row(record: dict) -> tuple[object, ...]:  # type: ignore[type-arg]
    """One record as a table row: the decision and outcome in columns of their own, coloured."""
    body = record["body"]
    return (record["seq"], _when(record), record["kind"], body.get("decision", ""), body.get("outcome", ""),
            _fields(body, ("decision", "outcome")))


def cmd_audit_tail(args: argparse.Namespace) -> int:
    import time

    from .term import Column, Table, on_terminal

    audit = audit_for(args)
    records = list(audit.records())[-args.n :] if args.n > 0 else []
    table = None
    if on_terminal() and not args.json:
        columns = (Column("SEQ", "keep", right=True, width=6), Column("TIME", "keep"), Column("KIND", width=16),
                   Column("DECISION", style=_VERDICT_STYLE, width=8), Column("OUTCOME", style=_VERDICT_STYLE, width=9),
                   Column("RECORD", "wrap"))
        table = Table(columns, [_row(r) for r in records])
        print(table.header(), flush=True)

    def show(record: dict) -> None:  # type: ignore[type-arg]
        lines = table.row(_row(record)) if table else [_format_record(record, args.json)]
        print("\n".join(lines), flush=True)

    for record in records:
        show(record)
    last = records[-1]["seq"] if records else 0
    while args.follow:
        time.sleep(0.5)
        audit.fold_spools()  # records a guard spooled but has not chained yet
        for record in audit.records():
            if record["seq"] > last:
                show(record)
                last = record["seq"]
    return EXIT_OK


def cmd_audit_export(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..audit import export

    def when(text: str | None) -> float | None:
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"--since/--until: not an ISO date or time: {text!r}") from None
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()

    audit = audit_for(args)
    for chunk in export(audit.records(when(args.since), when(args.until)), args.format):
        sys.stdout.write(chunk)
    return EXIT_OK

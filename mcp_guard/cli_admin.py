"""The administrative commands: policy, review, grants, tools, audit, wrap, scan, doctor.

Each takes the parsed arguments and returns an exit code; messages go to stderr, data to stdout.
"""

from __future__ import annotations

import argparse
import sys

from .cli_support import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    approvals_for,
    audit_for,
    command_spec,
    config_policy,
    config_specs,
    grants_for,
    pins_for,
    policy_path,
    requester_name,
    upstream_command,
)
from .approval.escape import one_line
from .errors import ConfigError


def cmd_policy_check(args: argparse.Namespace) -> int:
    from .policy import load_policy

    files = list(args.files)
    listed: dict[str, list[dict[str, object]] | str] | None = None
    if args.config:
        files, listed = _check_config(args.config, files)
    elif not files:
        raise ConfigError("give one or more policy files, or --config F")
    status = EXIT_OK
    for path in files:
        try:
            policy = load_policy(path)
        except ConfigError as exc:
            print(f"{exc}", file=sys.stderr)
            status = EXIT_PROBLEM
            continue
        dead = _dead_rules(policy, listed)
        for problem in dead:
            print(f"{path}: {problem}", file=sys.stderr)
        status = EXIT_PROBLEM if dead else status
        verdict = f"{len(dead)} rule(s) can never match" if dead else "ok"
        print(f"{path}: {verdict} ({len(policy.rules)} rules)", file=sys.stderr)
    if listed is not None:
        for name, tools in listed.items():
            if isinstance(tools, str):
                print(
                    f"{args.config}: server {name!r} could not be listed ({tools}); rules on its tools were not checked",
                    file=sys.stderr,
                )
                status = EXIT_PROBLEM
    return status


def _check_config(config_path: str, files: list[str]) -> tuple[list[str], dict[str, list[dict[str, object]] | str]]:
    """The policy files to check (the config's own when none are given) and each server's tools."""
    from .catalog import list_tools
    from .config import load_config

    config = load_config(config_path)
    if not files:
        files = [policy_path(None, config_policy(config, config_path))]
    return files, list_tools(config_specs(config))


def _dead_rules(policy: object, listed: dict[str, list[dict[str, object]] | str] | None) -> list[str]:
    """Rules that never match: always those no risk level can meet; with --config, those the servers' tools rule out."""
    from .policy.reach import dead_matches, impossible_risks, unread_arguments

    if listed is None:
        return impossible_risks(policy)  # type: ignore[arg-type]
    tools = {name: found if isinstance(found, list) else None for name, found in listed.items()}
    servers = {name: None if found is None else [str(t["name"]) for t in found] for name, found in tools.items()}
    return dead_matches(policy, servers) + unread_arguments(policy, tools)  # type: ignore[arg-type]


def cmd_policy_explain(args: argparse.Namespace) -> int:
    import json

    from .policy import decide, load_policy
    from .policy.engine import Facts
    from .policy.paths import UnresolvablePath, resolve
    from .risk import RISK_KEY, resolve_risk

    try:
        [resolve(r, None) for r in args.root or ()]
    except UnresolvablePath as exc:
        raise ConfigError(f"--root {exc.value!r}: a root is an absolute path or a file:// URI") from None

    policy = load_policy(policy_path(args.policy))
    try:
        arguments = json.loads(args.args)
        annotations = json.loads(args.annotations) if args.annotations else None
    except ValueError as exc:
        raise ConfigError(f"--args/--annotations: not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ConfigError("--args must be a JSON object")
    tool: dict[str, object] = {"name": args.tool}
    if args.risk:
        tool["_meta"] = {RISK_KEY: args.risk}
    if isinstance(annotations, dict):
        tool["annotations"] = annotations
    risk = resolve_risk(policy, args.server, tool, args.tool)
    who = args.user or requester_name(args)
    roots = tuple(resolve(r, None)[0] for r in args.root) if args.root else None
    facts = Facts(args.server, args.tool, risk.level, arguments, who, annotations=annotations or {}, roots=roots)
    decision = decide(policy, facts)
    if args.json:
        print(json.dumps({**decision.to_dict(), "risk": risk.level, "risk_source": risk.source, "user": who}))
    else:
        print(f"{decision.action.upper()}  {args.tool} on {args.server} (risk {risk.level}, from {risk.source})")
        print(f"rule:   {decision.rule}")
        print(f"reason: {decision.reason}")
        if decision.action == "approve":
            print(f"asks:   {decision.approvers}, waits {decision.timeout:.0f} s, grant at most: {decision.scope}")
    return EXIT_OK


def cmd_review_list(args: argparse.Namespace) -> int:
    import json
    import time

    if args.url:  # a served review API: the store may be another account's
        from .cli_review import cmd_review_remote_list

        return cmd_review_remote_list(args)
    items = approvals_for(args).pending()
    if args.json:
        print(json.dumps([{**r.public(), "page_url": r.page_url} for r in items]))
        return EXIT_OK
    if not items:
        print("no calls are waiting for approval", file=sys.stderr)
    for r in items:
        left = max(0, int(r.expires - time.time()))
        print(f"{r.id}  {one_line(r.user)} wants {one_line(r.tool)} on {one_line(r.server)} (risk {one_line(r.risk)},"
              f" rule {one_line(r.rule)}), {left} s left")
        if r.page_url:
            print(f"          {r.page_url}")
    return EXIT_OK


def cmd_review_show(args: argparse.Namespace) -> int:
    import json

    if args.url:
        from .cli_review import cmd_review_remote_show

        return cmd_review_remote_show(args)
    request = approvals_for(args).get(args.id)
    if request is None:
        print(f"mcp-guard: no approval request {args.id!r}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(request.public()))
    else:
        print(f"{request.id}: {one_line(request.tool)} on {one_line(request.server)}, risk {one_line(request.risk)},"
              f" rule {one_line(request.rule)}, {request.state}, requested by {one_line(request.user)}")
        # The stored preview is escaped when built; each line is passed through again so nothing in
        # the store can move the cursor or clear the terminal.
        print("\n".join(one_line(line) for line in request.preview.rstrip("\n").split("\n")))
        print(f"Preview: {len(request.preview)} characters, shown in full; sha256 {request.preview_sha256}")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from .audit import parse_head

    try:
        expect = parse_head(args.expect) if args.expect else None
    except ValueError as exc:
        print(f"mcp-guard: --expect: {exc}", file=sys.stderr)
        return EXIT_USAGE
    audit = audit_for(args)
    problem = audit.verify(expect)
    if problem is not None:
        where = f"at record {problem.seq}" if problem.seq is not None else "as a whole"
        print(f"mcp-guard: audit chain broken {where}: {problem.reason}", file=sys.stderr)
        return EXIT_PROBLEM
    count = sum(1 for _ in audit.records())
    held = f", holding {expect[0]}:{expect[1]}" if expect else ""
    print(f"audit chain whole: {count} records{held}", file=sys.stderr)
    return EXIT_OK


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


def _format_record(record: dict, as_json: bool) -> str:  # type: ignore[type-arg]
    import json
    import time

    if as_json:
        return json.dumps(record, ensure_ascii=False)
    body = record["body"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["ts"]))
    what = " ".join(f"{k}={body[k]}" for k in ("user", "server", "tool", "risk", "rule", "decision", "outcome", "reason") if k in body)
    return f"{record['seq']:>6} {when} {record['kind']:<16} {what}"


def cmd_audit_tail(args: argparse.Namespace) -> int:
    import time

    audit = audit_for(args)
    records = list(audit.records())[-args.n :] if args.n > 0 else []
    for record in records:
        print(_format_record(record, args.json), flush=True)
    last = records[-1]["seq"] if records else 0
    while args.follow:
        time.sleep(0.5)
        audit.fold_spools()  # records a guard spooled but has not chained yet
        for record in audit.records():
            if record["seq"] > last:
                print(_format_record(record, args.json), flush=True)
                last = record["seq"]
    return EXIT_OK


def cmd_audit_export(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from .audit import export

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


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    command = upstream_command(args)
    specs: object
    from_config = None
    if command:
        specs = [command_spec(args, command)]
    elif args.config:
        from .config import load_config

        try:
            config = load_config(args.config)
            from_config = config_policy(config, args.config)
            specs = config_specs(config)
        except ConfigError as exc:
            specs = exc
    else:
        raise ConfigError("give --config F, or the server command after --")

    def store():  # type: ignore[no-untyped-def]
        from .store import open_store

        return open_store()

    policy = None if args.no_policy else policy_path(args.policy, from_config)
    return doctor.run(specs, policy, store)


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

    flagged = [(r["server"], r["tool"], json.loads(r["findings"] or "[]")) for r in pins_for(args).rows(args.server)]
    flagged = [f for f in flagged if f[2]]
    if args.json:
        print(json.dumps([{"server": s, "tool": t, "findings": f} for s, t, f in flagged]))
    else:
        for server, tool, findings in flagged:
            print(f"{server}/{tool}:")
            for f in findings:
                print(f"  {f['kind']} in {f['where']}: {f['evidence']!r}")
        if not flagged:
            print("no findings", file=sys.stderr)
    return EXIT_PROBLEM if flagged else EXIT_OK


def cmd_wrap(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import wrap as wrapping

    path = Path(args.file) if args.file else wrapping.default_path(args.client)
    if args.verb == "wrap":
        done = wrapping.wrap(path, args.client, dry_run=args.dry_run)
    else:
        done = wrapping.unwrap(path, dry_run=args.dry_run)
    for note in done.notes:
        print(f"{path}: {note}", file=sys.stderr)
    if args.dry_run:
        sys.stdout.write(wrapping.diff(done.old, done.new, path))
        print(f"{path}: dry run, nothing written", file=sys.stderr)
    elif not done.changed:
        print(f"{path}: nothing to change", file=sys.stderr)
    elif args.verb == "wrap":
        kept = f"; {len(done.notes)} left as they were (above)" if done.notes else ""
        print(f"{path}: {len(done.changed)} server(s) now run through mcp-guard{kept}; restart the client", file=sys.stderr)
    else:
        print(f"{path}: {len(done.changed)} server(s) restored; everything else kept as it is now", file=sys.stderr)
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    from .scan import main as scan_main

    return scan_main(args.file, args.jsonl, args.ner, getattr(args, "prefilter", True))


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

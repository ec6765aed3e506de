"""Command line: argv to library calls, exit codes, human output. No business rules here.

Exit codes: 0 success; 1 a check found a problem; 2 usage or configuration error.
Messages go to stderr; stdout belongs to the MCP protocol (``run``) or to data.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from .errors import ConfigError, GuardError

logger = logging.getLogger("mcp_guard")

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.log_level)
    if not getattr(args, "func", None):
        _parser().print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"mcp-guard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GuardError as exc:
        print(f"mcp-guard: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-guard", description="A tool-call firewall for the Model Context Protocol.")
    parser.add_argument(
        "--log-level", default=os.environ.get("MCP_GUARD_LOG_LEVEL", "warning"), help="debug, info, warning (default) or error; logs go to stderr"
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="serve MCP on stdio in front of one or more upstream servers")
    _common(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: one stdio upstream server")
    run.set_defaults(func=_cmd_run)

    serve = sub.add_parser("serve", help="serve streamable HTTP at /mcp in front of the upstream servers")
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port to bind (default 8765; 0 picks a free one)")
    serve.add_argument(
        "--allowed-host", action="append", default=[], help="extra Host header value to accept (DNS-rebinding protection)"
    )
    serve.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: one stdio upstream server")
    serve.set_defaults(func=_cmd_serve)

    policy = sub.add_parser("policy", help="check a policy, or explain a decision")
    psub = policy.add_subparsers(metavar="ACTION")
    check = psub.add_parser("check", help="validate policy files; exit 1 on the first error")
    check.add_argument("files", nargs="+")
    check.set_defaults(func=_cmd_policy_check)
    explain = psub.add_parser("explain", help="print the decision for one call and the rule behind it")
    explain.add_argument("--policy", help="policy YAML (default: the shipped default.yaml)")
    explain.add_argument("--server", required=True)
    explain.add_argument("--tool", required=True)
    explain.add_argument("--args", default="{}", help="the call's arguments as JSON")
    explain.add_argument("--risk", choices=("low", "medium", "high", "critical"), help="the author's tag, if any")
    explain.add_argument("--annotations", default=None, help="the tool's MCP annotations as JSON")
    explain.add_argument("--user", default=None)
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=_cmd_policy_explain)

    review = sub.add_parser("review", help="list and decide calls waiting for approval")
    rsub = review.add_subparsers(metavar="ACTION")
    rlist = rsub.add_parser("list", help="pending approval requests (with the approval page's link)")
    rlist.add_argument("--json", action="store_true")
    rlist.add_argument("--home")
    rlist.set_defaults(func=_cmd_review_list)
    rshow = rsub.add_parser("show", help="one request: the preview the approver sees")
    rshow.add_argument("id")
    rshow.add_argument("--json", action="store_true")
    rshow.add_argument("--home")
    rshow.set_defaults(func=_cmd_review_show)
    rserve = rsub.add_parser("serve", help="serve only the reviewers' web page and API (no MCP)")
    rserve.add_argument("--host", default="127.0.0.1")
    rserve.add_argument("--port", type=int, default=8766)
    rserve.add_argument("--allowed-host", action="append", default=[])
    rserve.add_argument("--home")
    rserve.set_defaults(func=_cmd_review_serve)
    token = rsub.add_parser("token", help="reviewer tokens: create NAME --role ROLE | list | revoke NAME")
    token.add_argument("token_action", choices=("create", "list", "revoke"))
    token.add_argument("name", nargs="?", default="")
    token.add_argument("--role", default="reviewer", help="a policy group name the reviewer decides for, or admin")
    token.add_argument("--home")
    token.set_defaults(func=_cmd_review_token)
    for verb in ("approve", "deny"):
        decide = rsub.add_parser(verb, help=f"{verb} a pending request")
        decide.add_argument("id")
        decide.add_argument("--as", dest="as_name", default=None, help="who decides (default: the OS user)")
        decide.add_argument("--reason", default="")
        if verb == "approve":
            decide.add_argument("--scope", default="once", help="once (default), session, or the policy's ttl:...")
        decide.add_argument("--home")
        decide.set_defaults(func=_cmd_review_decide, approve=verb == "approve")

    doctor = sub.add_parser("doctor", help="check the config, policy, store and each upstream; say how to fix problems")
    _common(doctor)
    doctor.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: one stdio upstream")
    doctor.set_defaults(func=_cmd_doctor)

    tools = sub.add_parser("tools", help="pinned tool definitions: diff, accept, check")
    tsub = tools.add_subparsers(metavar="ACTION")
    tdiff = tsub.add_parser("diff", help="changed or held tools, with the difference")
    tdiff.add_argument("server", nargs="?")
    tdiff.add_argument("--home")
    tdiff.set_defaults(func=_cmd_tools_diff)
    taccept = tsub.add_parser("accept", help="accept the changed (or held new) tools of a server")
    taccept.add_argument("server")
    taccept.add_argument("tool", nargs="?")
    taccept.add_argument("--home")
    taccept.set_defaults(func=_cmd_tools_accept)
    tcheck = tsub.add_parser("check", help="what description scanning found, with the evidence")
    tcheck.add_argument("server", nargs="?")
    tcheck.add_argument("--json", action="store_true")
    tcheck.add_argument("--home")
    tcheck.set_defaults(func=_cmd_tools_check)

    for verb in ("wrap", "unwrap"):
        w = sub.add_parser(verb, help=f"{'put every server of' if verb == 'wrap' else 'restore'} a client's MCP config {'behind the guard' if verb == 'wrap' else 'from its backup'}")
        w.add_argument("--client", choices=("claude-desktop", "claude-code", "cursor", "vscode"), default="claude-desktop")
        w.add_argument("--file", help="the config file (default: where the client keeps it on this OS)")
        w.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
        w.set_defaults(func=_cmd_wrap, verb=verb)

    audit = sub.add_parser("audit", help="check, read and export the tamper-evident audit trail")
    asub = audit.add_subparsers(metavar="ACTION")
    verify = asub.add_parser("verify", help="exit 0 when the chain is whole, 1 naming the first bad record")
    verify.add_argument("--home")
    verify.set_defaults(func=_cmd_audit_verify)
    tail = asub.add_parser("tail", help="the last records")
    tail.add_argument("-n", type=int, default=20)
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument("--json", action="store_true")
    tail.add_argument("--home")
    tail.set_defaults(func=_cmd_audit_tail)
    exp = asub.add_parser("export", help="records as evidence: JSON lines or CSV")
    exp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    exp.add_argument("--since", help="ISO date or time (UTC), e.g. 2026-11-01")
    exp.add_argument("--until", help="ISO date or time (UTC)")
    exp.add_argument("--home")
    exp.set_defaults(func=_cmd_audit_export)

    scan = sub.add_parser("scan", help="find personal data and secrets in text (the masking engine)")
    scan.add_argument("file", nargs="?", help="a text file (default: stdin)")
    scan.add_argument("--jsonl", action="store_true", help='read {"id","text"} lines, write {"id","spans","masked"} lines')
    scan.set_defaults(func=_cmd_scan)

    grants = sub.add_parser("grants", help="list or revoke approvals that outlive one call")
    gsub = grants.add_subparsers(metavar="ACTION")
    glist = gsub.add_parser("list", help="active grants (add --all for expired and revoked)")
    glist.add_argument("--all", action="store_true")
    glist.add_argument("--json", action="store_true")
    glist.add_argument("--home")
    glist.set_defaults(func=_cmd_grants_list)
    grevoke = gsub.add_parser("revoke", help="revoke a grant by id")
    grevoke.add_argument("id")
    grevoke.add_argument("--home")
    grevoke.set_defaults(func=_cmd_grants_revoke)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON file in the mcpServers shape (command/args/env or url/headers)")
    p.add_argument("--home", help="state directory (default: $MCP_GUARD_HOME or the user's data dir)")
    p.add_argument("--user", default=None, help="the requester's name (default: $MCP_GUARD_USER or the OS user)")
    p.add_argument("--name", default=None, help="name of the upstream given after -- (default: taken from its command)")
    p.add_argument(
        "--protocol", choices=("auto", "legacy", "2026-07-28"), default="auto", help="era to speak to the upstream after --"
    )
    p.add_argument("--allow-method", action="append", default=[], help="relay this non-MCP method (glob), e.g. 'vendor/*'")
    p.add_argument("--policy", help="policy YAML (default: $MCP_GUARD_POLICY, the config's, or the shipped default.yaml)")
    p.add_argument("--no-policy", action="store_true", help="relay only: no risk, no decisions, no approvals")


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors. Messages hold names and ids, never values."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    style = os.environ.get("MCP_GUARD_LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json")
    if style == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("mcp-guard %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mcp_guard")
    root.addHandler(handler)
    root.setLevel(level.upper() if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else "WARNING")
    root.propagate = False


def _user(args: argparse.Namespace) -> str:
    if args.user:
        return str(args.user)
    env = os.environ.get("MCP_GUARD_USER")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _hub(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .guard import UpstreamSpec, build_hub, load_hook

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if args.home:
        os.environ["MCP_GUARD_HOME"] = args.home
    if command and args.config:
        raise ConfigError("give either --config F or -- CMD ARGS, not both")
    if command:
        spec = UpstreamSpec(name=args.name or default_name(command), command=command[0], args=command[1:], protocol=args.protocol)
        hooks = _policy_hooks(args, None, [])
        return build_hub([spec], hooks, allow_methods=args.allow_method), 32 * 1024 * 1024
    if not args.config:
        raise ConfigError("nothing to guard: give --config F, or the server command after --")
    from .config import load_config

    config = load_config(args.config)
    specs = [
        UpstreamSpec(
            name=name,
            command=entry.command,
            args=entry.args,
            env=entry.env,
            cwd=entry.cwd,
            url=entry.url,
            headers=entry.headers,
            protocol=entry.protocol,
        )
        for name, entry in config.enabled().items()
    ]
    policy_file = config.guard.policy
    if policy_file is not None and not os.path.isabs(policy_file):
        policy_file = os.path.join(os.path.dirname(os.path.abspath(args.config)), policy_file)
    hooks = _policy_hooks(args, policy_file, [load_hook(ref) for ref in config.guard.hooks])
    allow = [*config.guard.allow_methods, *args.allow_method]
    return build_hub(specs, hooks, allow, config.guard.max_message_bytes), config.guard.max_message_bytes


def _policy_path(explicit: str | None, from_config: str | None = None) -> str:
    if explicit:
        return explicit
    if os.environ.get("MCP_GUARD_POLICY"):
        return os.environ["MCP_GUARD_POLICY"]
    if from_config:
        return from_config
    from importlib.resources import files

    return str(files("mcp_guard.policies").joinpath("default.yaml"))


def _policy_hooks(args: argparse.Namespace, from_config: str | None, extra: list):  # type: ignore[no-untyped-def, type-arg]
    from .hooks import default_hooks

    if args.no_policy:
        return extra
    from .hooks.policy import PolicySource

    path = _policy_path(args.policy, from_config)
    audit = _open_audit()
    try:
        source = PolicySource.from_file(path)
    except ConfigError as exc:
        if audit is not None:
            audit.append("policy.rejected", {"path": path, "error": str(exc)[:2000]})
        raise
    if audit is not None:
        audit.append("policy.loaded", {"path": path, "sha256": _file_digest(path), "rules": len(source.policy.rules)})
        source.listeners.append(lambda event, detail: audit.append(event, {"path": path, **detail}))
    return default_hooks(source, _open_grants(), extra, audit, getattr(args, "metrics", None))


def _file_digest(path: str) -> str:
    import hashlib

    try:
        return hashlib.sha256(open(path, "rb").read()).hexdigest()
    except OSError:
        return ""


def _open_audit():  # type: ignore[no-untyped-def]
    from .audit import Audit
    from .store import Store, StoreError

    try:
        return Audit(Store())
    except StoreError as exc:
        # Fail closed: a guard that cannot keep its record does not run calls.
        raise ConfigError(f"{exc}. Fix MCP_GUARD_HOME, or run with --no-policy to relay without checks.") from exc


def _open_grants():  # type: ignore[no-untyped-def]
    from .grants import Grants
    from .store import Store, StoreError

    try:
        return Grants(Store())
    except StoreError as exc:
        # Approvals still work, one call at a time: nothing wider can be remembered.
        logger.error("%s; approvals will not be remembered beyond one call", exc)
        return None


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from .policy import load_policy

    status = EXIT_OK
    for path in args.files:
        try:
            policy = load_policy(path)
        except ConfigError as exc:
            print(f"{exc}", file=sys.stderr)
            status = EXIT_PROBLEM
            continue
        print(f"{path}: ok ({len(policy.rules)} rules)", file=sys.stderr)
    return status


def _cmd_policy_explain(args: argparse.Namespace) -> int:
    import json

    from .policy import decide, load_policy
    from .policy.engine import Facts
    from .risk import RISK_KEY, resolve_risk

    policy = load_policy(_policy_path(args.policy))
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
    user = args.user or _user(args)
    decision = decide(policy, Facts(args.server, args.tool, risk.level, arguments, user, annotations=annotations or {}))
    if args.json:
        print(json.dumps({**decision.to_dict(), "risk": risk.level, "risk_source": risk.source, "user": user}))
    else:
        print(f"{decision.action.upper()}  {args.tool} on {args.server} (risk {risk.level}, from {risk.source})")
        print(f"rule:   {decision.rule}")
        print(f"reason: {decision.reason}")
        if decision.action == "approve":
            print(f"asks:   {decision.approvers}, waits {decision.timeout:.0f} s, grant at most: {decision.scope}")
    return EXIT_OK


def _approvals_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .approvals import Approvals

    grants = _grants_for(args)
    if grants is None:
        raise ConfigError("the mcp-guard store cannot be opened")
    return Approvals(grants.store)


def _cmd_review_list(args: argparse.Namespace) -> int:
    import json
    import time

    items = _approvals_for(args).pending()
    if args.json:
        print(json.dumps([{**r.public(), "page_url": r.page_url} for r in items]))
        return EXIT_OK
    if not items:
        print("no calls are waiting for approval", file=sys.stderr)
    for r in items:
        left = max(0, int(r.expires - time.time()))
        print(f"{r.id}  {r.user} wants {r.tool} on {r.server} (risk {r.risk}, rule {r.rule}), {left} s left")
        if r.page_url:
            print(f"          {r.page_url}")
    return EXIT_OK


def _cmd_review_show(args: argparse.Namespace) -> int:
    import json

    request = _approvals_for(args).get(args.id)
    if request is None:
        print(f"mcp-guard: no approval request {args.id!r}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(request.public()))
    else:
        print(f"{request.id}: {request.tool} on {request.server}, risk {request.risk}, rule {request.rule}, {request.state}")
        print(request.preview)
    return EXIT_OK


def _cmd_review_decide(args: argparse.Namespace) -> int:
    approvals = _approvals_for(args)
    who = args.as_name or _user(argparse.Namespace(user=None))
    try:
        decided = approvals.decide(
            args.id, approve=args.approve, by=who, channel="cli", scope=getattr(args, "scope", "once"), reason=args.reason
        )
    except ValueError as exc:
        print(f"mcp-guard: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{decided.id} {decided.state} by {who}", file=sys.stderr)
    return EXIT_OK


def _audit_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if args.home:
        os.environ["MCP_GUARD_HOME"] = args.home
    return _open_audit()


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    audit = _audit_for(args)
    problem = audit.verify()
    if problem is not None:
        print(f"mcp-guard: audit chain broken at record {problem.seq}: {problem.reason}", file=sys.stderr)
        return EXIT_PROBLEM
    count = sum(1 for _ in audit.records())
    print(f"audit chain whole: {count} records", file=sys.stderr)
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


def _cmd_audit_tail(args: argparse.Namespace) -> int:
    import time

    audit = _audit_for(args)
    records = list(audit.records())[-args.n :] if args.n > 0 else []
    for record in records:
        print(_format_record(record, args.json), flush=True)
    last = records[-1]["seq"] if records else 0
    while args.follow:
        time.sleep(0.5)
        for record in audit.records():
            if record["seq"] > last:
                print(_format_record(record, args.json), flush=True)
                last = record["seq"]
    return EXIT_OK


def _cmd_audit_export(args: argparse.Namespace) -> int:
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

    audit = _audit_for(args)
    for chunk in export(audit.records(when(args.since), when(args.until)), args.format):
        sys.stdout.write(chunk)
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor
    from .guard import UpstreamSpec

    if args.home:
        os.environ["MCP_GUARD_HOME"] = args.home
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    specs: object
    from_config = None
    if command:
        specs = [UpstreamSpec(name=args.name or default_name(command), command=command[0], args=command[1:], protocol=args.protocol)]
    elif args.config:
        from .config import load_config

        try:
            config = load_config(args.config)
            from_config = config.guard.policy
            specs = [
                UpstreamSpec(name=n, command=e.command, args=e.args, env=e.env, cwd=e.cwd, url=e.url, headers=e.headers, protocol=e.protocol)
                for n, e in config.enabled().items()
            ]
        except ConfigError as exc:
            specs = exc
    else:
        raise ConfigError("give --config F, or the server command after --")

    def store():  # type: ignore[no-untyped-def]
        from .store import Store

        return Store()

    policy = None if args.no_policy else _policy_path(args.policy, from_config)
    return doctor.run(specs, policy, store)


def _pins_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .integrity import Pins

    return Pins(_approvals_for(args).store)


def _cmd_tools_diff(args: argparse.Namespace) -> int:
    import difflib
    import json

    rows = [r for r in _pins_for(args).rows(args.server) if r["pending_hash"] or r["accepted"] is None]
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


def _cmd_tools_accept(args: argparse.Namespace) -> int:
    count = _pins_for(args).accept(args.server, args.tool)
    if not count:
        print(f"mcp-guard: nothing to accept for {args.server}{'/' + args.tool if args.tool else ''}", file=sys.stderr)
        return EXIT_PROBLEM
    audit = _audit_for(args)
    audit.append("tool.accepted", {"server": args.server, "tool": args.tool or "*", "by": _user(argparse.Namespace(user=None))})
    print(f"accepted {count} tool definition(s) of {args.server}", file=sys.stderr)
    return EXIT_OK


def _cmd_tools_check(args: argparse.Namespace) -> int:
    import json

    flagged = [(r["server"], r["tool"], json.loads(r["findings"] or "[]")) for r in _pins_for(args).rows(args.server)]
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


def _cmd_wrap(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import wrap as wrapping

    path = Path(args.file) if args.file else wrapping.default_path(args.client)
    if args.verb == "wrap":
        old, new = wrapping.wrap(path, args.client, dry_run=args.dry_run)
    else:
        old, new = wrapping.unwrap(path, dry_run=args.dry_run)
    if args.dry_run:
        sys.stdout.write(wrapping.diff(old, new, path))
    elif old == new:
        print(f"{path}: nothing to change", file=sys.stderr)
    else:
        done = "every server now runs through mcp-guard; restart the client" if args.verb == "wrap" else "restored from the backup"
        print(f"{path}: {done}", file=sys.stderr)
    return EXIT_OK


def _cmd_scan(args: argparse.Namespace) -> int:
    from .scan import main as scan_main

    return scan_main(args.file, args.jsonl)


def _grants_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if args.home:
        os.environ["MCP_GUARD_HOME"] = args.home
    return _open_grants()


def _cmd_grants_list(args: argparse.Namespace) -> int:
    import json
    import time

    grants = _grants_for(args)
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


def _cmd_grants_revoke(args: argparse.Namespace) -> int:
    grants = _grants_for(args)
    if grants is None:
        return EXIT_USAGE
    if not grants.revoke(args.id):
        print(f"mcp-guard: no active grant {args.id!r}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"revoked {args.id}", file=sys.stderr)
    return EXIT_OK


_GENERIC = {"index", "main", "__main__", "server", "dist", "build", "lib", "src", "bin", "app", "cli"}
_RUNNERS = {"node", "npx", "python", "python3", "uv", "uvx", "pipx", "bun", "bunx", "deno", "docker", "env", "sh", "bash"}


def default_name(command: list[str]) -> str:
    """A stable server name from its command line, so that policies, pins and audit records of
    different servers do not share one: `npx -y @mcp/server-files` -> server-files."""
    import re
    from pathlib import PurePath

    for word in command:
        if word.startswith("-") or "=" in word and not word.startswith("/"):
            continue
        path = PurePath(word)
        parts = [re.sub(r"\.(?:py|js|mjs|cjs|ts|exe)$", "", p) for p in path.parts]
        meaningful = [p for p in parts if p and p not in _GENERIC and p != "/" and not p.startswith("@")]
        if not meaningful:
            continue
        candidate = meaningful[-1]
        if path.name in ("index.js", "main.py", "__main__.py", "index.mjs") and len(meaningful) >= 1:
            candidate = meaningful[-1]
        if candidate in _RUNNERS:
            continue
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", candidate).replace("__", "_")[:48] or "upstream"
    return "upstream"


def _cmd_run(args: argparse.Namespace) -> int:
    import anyio

    from .relay.front_stdio import serve_stdio

    hub, limit = _hub(args)
    anyio.run(functools.partial(serve_stdio, hub, user=_user(args), max_message_bytes=limit))
    return EXIT_OK


def _review_routes():  # type: ignore[no-untyped-def]
    """A factory for the reviewers' routes on the store of this home (None without a store)."""
    from .approvals import Approvals, Reviewers
    from .audit import load_key

    grants = _open_grants()
    if grants is None:
        return None
    store = grants.store

    def build(origins: set[str]) -> list:  # type: ignore[type-arg]
        from .audit import Audit
        from .web.review import ReviewApp
        from .web.slack import SlackCallback

        approvals = Approvals(store)
        review = ReviewApp(approvals, Reviewers(store), load_key(store.path.parent, "web.key"), origins).routes()
        return review + SlackCallback(approvals, Audit(store)).routes()

    return build


def _cmd_serve(args: argparse.Namespace) -> int:
    from .hooks.metrics import Metrics
    from .relay.front_http import serve_http

    args.metrics = Metrics()
    hub, limit = _hub(args)
    review = None if args.no_policy else _review_routes()
    routes = [_metrics_route(args.metrics)]
    return serve_http(
        hub, host=args.host, port=args.port, extra_hosts=args.allowed_host, user=_user(args), max_message_bytes=limit,
        review=review, routes=routes,
    )


def _metrics_route(metrics):  # type: ignore[no-untyped-def]
    """GET /metrics: Prometheus text format; approvals pending is read from the store then."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.responses import Response
    from starlette.routing import Route

    grants = _open_grants()

    async def endpoint(request):  # type: ignore[no-untyped-def]
        if grants is not None:
            from .approvals import Approvals

            metrics.pending.set(len(Approvals(grants.store).pending()))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", endpoint)


def _cmd_review_serve(args: argparse.Namespace) -> int:
    from .relay.front_http import serve_http

    if args.home:
        os.environ["MCP_GUARD_HOME"] = args.home
    review = _review_routes()
    if review is None:
        raise ConfigError("the mcp-guard store cannot be opened")
    return serve_http(None, host=args.host, port=args.port, extra_hosts=args.allowed_host, review=review)


def _cmd_review_token(args: argparse.Namespace) -> int:
    import json

    from .approvals import Reviewers

    store = _approvals_for(args).store
    reviewers = Reviewers(store)
    if args.token_action == "create":
        token = reviewers.create(args.name, args.role)
        print(token)  # the only time it is shown: it is stored hashed
        print(f"reviewer token for {args.name} ({args.role}) created; keep it secret", file=sys.stderr)
    elif args.token_action == "revoke":
        if not reviewers.revoke(args.name):
            print(f"mcp-guard: no live token for {args.name!r}", file=sys.stderr)
            return EXIT_PROBLEM
    else:
        print(json.dumps(reviewers.list()))
    return EXIT_OK

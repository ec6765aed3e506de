"""Command line: argv to library calls, exit codes, human output. No business rules here.

Exit codes: 0 success; 1 a check found a problem; 2 usage or configuration error (a missing
file, a busy port, bad input: one line on stderr, no traceback); 130 interrupted; 141 stdout
closed early (``audit export | head``). Messages go to stderr; stdout belongs to the MCP
protocol (``run``) or to data.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from . import cli_auth
from . import cli_signin
from . import settings
from .cli_support import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    command_spec,
    config_policy,
    config_specs,
    open_grants,
    policy_path,
    requester_name,
    upstream_command,
)
from .cli_help import EXIT_PIPE, LOG_LEVEL_HELP, Version, cmd_completion, everywhere, os_problem
from .errors import ConfigError, GuardError

logger = logging.getLogger("mcp_guard")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = settings.install(
        settings.Settings.from_environment(
            home=getattr(args, "home", None), store_url=getattr(args, "store", None), log_level=args.log_level
        )
    )
    _setup_logging(chosen)
    if not getattr(args, "func", None):
        # A group alone (`mcp-guard review`) prints its own help, not the top level's.
        (getattr(args, "help_of", None) or _parser()).print_help(sys.stderr)
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
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours. Point stdout at nothing so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except OSError as exc:
        print(f"mcp-guard: {os_problem(exc, args)}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-guard", description="A tool-call firewall for the Model Context Protocol.")
    parser.add_argument("--log-level", default=None, help=LOG_LEVEL_HELP)
    parser.add_argument("--version", action=Version, nargs=0, help="print the installed version and exit")
    sub = parser.add_subparsers(metavar="COMMAND")
    _commands(sub)
    completion = sub.add_parser("completion", help="print a shell completion script: bash, zsh or tcsh")
    completion.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell to complete in")
    completion.set_defaults(func=functools.partial(cmd_completion, parser))
    everywhere(parser)
    return parser


def _commands(sub) -> None:  # type: ignore[no-untyped-def]

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
    serve.add_argument(
        "--max-sessions-per-caller", type=_session_cap, default=50, metavar="N",
        help="with --auth oidc|tokens: handshake-era sessions open and 2026-07-28 requests in flight that one "
        "caller may hold at once, together (default 50); each may run its own upstream processes",
    )
    _auth_options(serve)
    cli_signin.add_options(serve)
    serve.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: one stdio upstream server")
    serve.set_defaults(func=_cmd_serve)
    cli_auth.register(sub, _state)

    policy = sub.add_parser("policy", help="check, explain, show a tool's rules, or write a starting policy")
    psub = policy.add_subparsers(metavar="ACTION")
    check = psub.add_parser(
        "check", help="validate policy files; with --config also find rules that can never match; exit 1 on any problem"
    )
    check.add_argument("files", nargs="*", help="policy YAML (default with --config: the config's policy)")
    check.add_argument("--config", help="the mcpServers JSON: start its servers, list their tools, report dead rules")
    check.set_defaults(func=_later("cli_admin", "cmd_policy_check"))
    explain = psub.add_parser("explain", help="print the decision for one call and the rule behind it")
    explain.add_argument("--policy", help="policy YAML (default: the shipped default.yaml)")
    explain.add_argument("--server", required=True)
    explain.add_argument("--tool", required=True)
    explain.add_argument("--args", default="{}", help="the call's arguments as JSON")
    explain.add_argument("--risk", choices=("low", "medium", "high", "critical"), help="the author's tag, if any")
    explain.add_argument("--annotations", default=None, help="the tool's MCP annotations as JSON")
    explain.add_argument("--user", default=None)
    explain.add_argument(
        "--root", action="append", default=None, help="a root the server has, for relative paths (repeatable)"
    )
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=_later("cli_admin", "cmd_policy_explain"))
    show = psub.add_parser("show", help="the risk and rules in force for one listed tool, and where each came from")
    show.add_argument("--config", required=True, help="the mcpServers JSON: its servers are started and listed")
    show.add_argument("--server", required=True, help="the server's name in the config")
    show.add_argument("--tool", required=True, help="the tool's name as the server lists it (not server__tool)")
    show.add_argument("--policy", help="policy YAML (default: $MCP_GUARD_POLICY, the config's, or the shipped default)")
    show.add_argument("--user", default=None, help="the requester rules see (default: $MCP_GUARD_USER or the OS user)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_later("cli_policy", "cmd_policy_show"))
    init = psub.add_parser("init", help="write a starting policy from the tools the config's servers list")
    init.add_argument("--config", required=True, help="the mcpServers JSON whose servers are started and listed")
    init.add_argument("-o", "--output", help="file to write (default: stdout); an existing one needs --force")
    init.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    init.set_defaults(func=_later("cli_policy", "cmd_policy_init"))

    review = sub.add_parser("review", help="list and decide calls waiting for approval")
    rsub = review.add_subparsers(metavar="ACTION")
    rlist = rsub.add_parser("list", help="pending approval requests (with the approval page's link)")
    rlist.add_argument("--json", action="store_true")
    _reviewer(rlist)
    _state(rlist)
    rlist.set_defaults(func=_later("cli_admin", "cmd_review_list"))
    rshow = rsub.add_parser("show", help="one request: the preview the approver sees")
    rshow.add_argument("id")
    rshow.add_argument("--json", action="store_true")
    _reviewer(rshow)
    _state(rshow)
    rshow.set_defaults(func=_later("cli_admin", "cmd_review_show"))
    rserve = rsub.add_parser("serve", help="serve only the reviewers' web page and API (no MCP)")
    rserve.add_argument("--host", default="127.0.0.1")
    rserve.add_argument("--port", type=int, default=8766)
    rserve.add_argument("--allowed-host", action="append", default=[])
    _state(rserve)
    cli_signin.add_options(rserve, with_policy=True)
    rserve.set_defaults(func=_cmd_review_serve)
    token = rsub.add_parser("token", help="reviewer tokens: create NAME --role ROLE | list | revoke NAME")
    token.add_argument("token_action", choices=("create", "list", "revoke"))
    token.add_argument("name", nargs="?", default="")
    token.add_argument("--role", default="reviewer", help="a policy group name the reviewer decides for, or admin")
    _state(token)
    token.set_defaults(func=_later("cli_review", "cmd_review_token"))
    for verb in ("approve", "deny"):
        decide = rsub.add_parser(verb, help=f"{verb} a pending request")
        decide.add_argument("id")
        decide.add_argument(
            "--as", dest="as_name", default=None, help="a check only: must name the token's reviewer, who is the one deciding"
        )
        decide.add_argument("--reason", default="")
        if verb == "approve":
            decide.add_argument("--scope", default="once", help="once (default), session, or the policy's ttl:...")
        _reviewer(decide)
        _state(decide)
        decide.set_defaults(func=_later("cli_review", "cmd_review_decide"), approve=verb == "approve", scope="once")

    doctor = sub.add_parser("doctor", help="check the config, policy, store and each upstream; say how to fix problems")
    _common(doctor)
    doctor.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: one stdio upstream")
    doctor.set_defaults(func=_later("cli_admin", "cmd_doctor"))

    tools = sub.add_parser("tools", help="pinned tool definitions: diff, accept, check")
    tsub = tools.add_subparsers(metavar="ACTION")
    tdiff = tsub.add_parser("diff", help="changed or held tools, with the difference")
    tdiff.add_argument("server", nargs="?")
    _state(tdiff)
    tdiff.set_defaults(func=_later("cli_admin", "cmd_tools_diff"))
    taccept = tsub.add_parser("accept", help="accept the changed (or held new) tools of a server")
    taccept.add_argument("server")
    taccept.add_argument("tool", nargs="?")
    _state(taccept)
    taccept.set_defaults(func=_later("cli_admin", "cmd_tools_accept"))
    tcheck = tsub.add_parser("check", help="what description scanning found, with the evidence")
    tcheck.add_argument("server", nargs="?")
    tcheck.add_argument("--json", action="store_true")
    _state(tcheck)
    tcheck.set_defaults(func=_later("cli_admin", "cmd_tools_check"))

    from .wrap_clients import CLIENTS

    for verb in ("wrap", "unwrap"):
        what = "put every server of a client's MCP config behind the guard" if verb == "wrap" else (
            "take out exactly what wrap changed, keeping every edit made since")
        w = sub.add_parser(verb, help=what, description=what)
        w.add_argument("--client", choices=CLIENTS, default="claude-desktop", help="whose config format (default: %(default)s)")
        w.add_argument("--file", help="the config file (default: where the client keeps it on this OS)")
        w.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
        w.add_argument("--home", help="where the wrap record lives (default: $MCP_GUARD_HOME or the user's data dir)")
        w.set_defaults(func=_later("cli_admin", "cmd_wrap"), verb=verb)

    audit = sub.add_parser("audit", help="check, read and export the tamper-evident audit trail")
    asub = audit.add_subparsers(metavar="ACTION")
    verify = asub.add_parser("verify", help="exit 0 when the chain is whole, 1 naming the first bad record")
    verify.add_argument(
        "--expect", metavar="SEQ:HASH", help="a head from `audit head` kept elsewhere: the chain must still hold it"
    )
    _state(verify)
    verify.set_defaults(func=_later("cli_admin", "cmd_audit_verify"))
    head = asub.add_parser("head", help="seal the chain's head now and print it (SEQ:HASH), to anchor elsewhere")
    _state(head)
    head.set_defaults(func=_later("cli_admin", "cmd_audit_head"))
    tail = asub.add_parser("tail", help="the last records")
    tail.add_argument("-n", type=int, default=20)
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument("--json", action="store_true")
    _state(tail)
    tail.set_defaults(func=_later("cli_admin", "cmd_audit_tail"))
    exp = asub.add_parser("export", help="records as evidence: JSON lines or CSV")
    exp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    exp.add_argument("--since", help="ISO date or time (UTC), e.g. 2026-11-01")
    exp.add_argument("--until", help="ISO date or time (UTC)")
    _state(exp)
    exp.set_defaults(func=_later("cli_admin", "cmd_audit_export"))

    scan = sub.add_parser("scan", help="find personal data and secrets in text (the masking engine)")
    scan.add_argument("file", nargs="?", help="a text file (default: stdin)")
    scan.add_argument("--jsonl", action="store_true", help='read {"id","text"} lines, write {"id","spans","masked"} lines')
    scan.add_argument("--ner", default="off", help="PERSON and LOCATION too: auto, or a spaCy model name or folder (the ner extra)")
    scan.add_argument("--no-prefilter", dest="prefilter", action="store_false",
                      help="read every text whole, without the Hyperscan pre-pass (gives the same spans; for checks)")
    scan.set_defaults(func=_later("cli_admin", "cmd_scan"))

    grants = sub.add_parser("grants", help="list or revoke approvals that outlive one call")
    gsub = grants.add_subparsers(metavar="ACTION")
    glist = gsub.add_parser("list", help="active grants (add --all for expired and revoked)")
    glist.add_argument("--all", action="store_true")
    glist.add_argument("--json", action="store_true")
    _state(glist)
    glist.set_defaults(func=_later("cli_admin", "cmd_grants_list"))
    grevoke = gsub.add_parser("revoke", help="revoke a grant by id")
    grevoke.add_argument("id")
    _state(grevoke)
    grevoke.set_defaults(func=_later("cli_admin", "cmd_grants_revoke"))


def _later(module: str, name: str):  # type: ignore[no-untyped-def]
    """A command's function, imported when that command runs: ``run`` loads none of the others."""

    def command(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(args)

    return command


def _reviewer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-file", default=None, help="a file holding the reviewer token (default: $MCP_GUARD_REVIEW_TOKEN, or asked)")
    p.add_argument("--url", default=None, help="a running serve's address: go through its review API, not the store")


def _state(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="state directory (default: $MCP_GUARD_HOME or the user's data dir)")
    p.add_argument(
        "--store", help="postgresql://... to share approvals, grants and audit between instances (default: $MCP_GUARD_STORE or SQLite in the home)"
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON file in the mcpServers shape (command/args/env or url/headers)")
    _state(p)
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


def _setup_logging(chosen: settings.Settings) -> None:
    level = chosen.log_level
    handler = logging.StreamHandler(sys.stderr)
    style = chosen.log_format or ("text" if sys.stderr.isatty() else "json")
    if style == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("mcp-guard %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mcp_guard")
    root.addHandler(handler)
    root.setLevel(level.upper() if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else "WARNING")
    root.propagate = False


def _guard(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The guard the command line describes, its message size limit, and its idle timeout."""
    from .guard import Guard, load_hook

    command = upstream_command(args)
    if command and args.config:
        raise ConfigError("give either --config F or -- CMD ARGS, not both")
    metrics = getattr(args, "metrics", None)
    if command:
        policy = None if args.no_policy else policy_path(args.policy, None)
        guard = Guard.open(
            settings.current(), [command_spec(args, command)], policy=policy, allow_methods=args.allow_method,
            metrics=metrics,
        )
        atexit.register(guard.close)
        return _settled(guard), 32 * 1024 * 1024, 1800.0
    if not args.config:
        raise ConfigError("nothing to guard: give --config F, or the server command after --")
    from .config import load_config

    config = load_config(args.config)
    chosen = settings.install(settings.current().with_store(config.guard.store))
    policy = None if args.no_policy else policy_path(args.policy, config_policy(config, args.config))
    guard = Guard.open(
        chosen, config_specs(config), policy=policy, extra_hooks=[load_hook(ref) for ref in config.guard.hooks],
        allow_methods=[*config.guard.allow_methods, *args.allow_method],
        max_message_bytes=config.guard.max_message_bytes, metrics=metrics,
    )
    atexit.register(guard.close)
    return _settled(guard), config.guard.max_message_bytes, config.guard.session_idle_timeout


def _settled(guard):  # type: ignore[no-untyped-def]
    """Everything built so far lives as long as the process: keep the garbage collector off it."""
    import gc

    gc.collect()
    gc.freeze()
    return guard


def _cmd_run(args: argparse.Namespace) -> int:
    command = upstream_command(args)
    if command and not args.config:
        from .relay import prestart

        prestart.early(command)  # the server starts while the guard builds its policy and masking
    from .relay import loop
    from .relay.fronts.stdio import serve_stdio

    guard, limit, _ = _guard(args)
    loop.run(functools.partial(serve_stdio, guard.solo(), user=requester_name(args), max_message_bytes=limit))
    return EXIT_OK


def _review_routes(page: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
    """A factory for the reviewers' routes on the store of this home (None without a store).

    ``page``: the sign-in options of cli_signin.page_options (public URL, OpenID provider)."""
    from .approvals import Approvals, Reviewers
    from .audit import load_key

    grants = open_grants()
    if grants is None:
        return None
    store = grants.store

    def build(origins: set[str]) -> list:  # type: ignore[type-arg]
        from .audit import Audit
        from .web.review import ReviewApp
        from .web.slack import SlackCallback

        approvals = Approvals(store)
        reviewers = Reviewers(store)
        audit = Audit(store)
        review = ReviewApp(approvals, reviewers, load_key(store.home, "web.key"), origins, audit=audit, **(page or {}))
        return review.routes() + SlackCallback(approvals, reviewers, audit).routes()

    return build


def _session_cap(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of sessions, 1 or more, not {text!r}")
    return value


def _auth_options(serve: argparse.ArgumentParser) -> None:
    from .auth import setup

    setup.add_options(serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from .hooks.metrics import Metrics
    from .relay.fronts.http import serve_http

    from .auth.setup import metrics_token
    from .relay.fronts.callers import Refusals, protected

    args.metrics = Metrics()
    guard, limit, idle_s = _guard(args)
    authenticator = cli_auth.authenticator(args)  # after _guard: on the config's store, if it names one
    page = cli_signin.page_options(args, functools.partial(_serve_policy, args))
    review = None if args.no_policy else _review_routes(page)
    refusals = Refusals(count=lambda reason: args.metrics.auth_refused.labels(reason).inc())
    token = metrics_token(args)
    metrics = _metrics_route(args.metrics, lambda endpoint: protected(endpoint, authenticator, refusals, token))
    offer = functools.partial(_offer_review_url, guard, public=page["public_url"])
    return serve_http(
        guard, host=args.host, port=args.port, extra_hosts=args.allowed_host, user=requester_name(args), max_message_bytes=limit,
        review=review, routes=[metrics], idle_s=idle_s, on_review_url=offer, authenticator=authenticator,
        max_sessions_per_caller=args.max_sessions_per_caller, refusals=refusals,
    )


def _serve_policy(args: argparse.Namespace) -> str:
    from .config import load_config

    return policy_path(args.policy, config_policy(load_config(args.config), args.config) if args.config else None)


def _offer_review_url(guard, url: str, public: str | None = None) -> None:  # type: ignore[no-untyped-def]
    from .hooks.approve import ApprovalHook

    url = f"{public}/review" if public else url  # the configured address, not the bound one

    for hook in guard.pipeline.hooks:
        if isinstance(hook, ApprovalHook) and not hook.review_url:  # $MCP_GUARD_REVIEW_URL wins
            hook.review_url = url


def _metrics_route(metrics, guarded=lambda endpoint: endpoint):  # type: ignore[no-untyped-def]
    """GET /metrics: Prometheus text format; approvals pending and the audit's state are read then.

    ``guarded`` puts it behind the callers' authentication or the metrics token (callers.protected)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.responses import Response
    from starlette.routing import Route

    grants = open_grants()

    async def endpoint(request):  # type: ignore[no-untyped-def]
        if grants is not None:
            from .approvals import Approvals

            metrics.pending.set(len(Approvals(grants.store).pending()))
        if metrics.spool is not None:
            metrics.audit_backlog.set(metrics.spool.backlog)
            metrics.audit_failing.set(1 if metrics.spool.failing else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", guarded(endpoint))


def _cmd_review_serve(args: argparse.Namespace) -> int:
    from .relay.fronts.http import serve_http

    review = _review_routes(cli_signin.page_options(args, lambda: args.policy))
    if review is None:
        raise ConfigError("the mcp-guard store cannot be opened")
    return serve_http(None, host=args.host, port=args.port, extra_hosts=args.allowed_host, review=review)

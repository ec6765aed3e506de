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

from .errors import ConfigError

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
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON file in the mcpServers shape (command/args/env or url/headers)")
    p.add_argument("--home", help="state directory (default: $MCP_GUARD_HOME or the user's data dir)")
    p.add_argument("--user", default=None, help="the requester's name (default: $MCP_GUARD_USER or the OS user)")
    p.add_argument("--name", default="upstream", help="name of the upstream given after -- (default: upstream)")
    p.add_argument(
        "--protocol", choices=("auto", "legacy", "2026-07-28"), default="auto", help="era to speak to the upstream after --"
    )
    p.add_argument("--allow-method", action="append", default=[], help="relay this non-MCP method (glob), e.g. 'vendor/*'")


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
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
        spec = UpstreamSpec(name=args.name, command=command[0], args=command[1:], protocol=args.protocol)
        return build_hub([spec], allow_methods=args.allow_method), 32 * 1024 * 1024
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
    hooks = [load_hook(ref) for ref in config.guard.hooks]
    allow = [*config.guard.allow_methods, *args.allow_method]
    return build_hub(specs, hooks, allow, config.guard.max_message_bytes), config.guard.max_message_bytes


def _cmd_run(args: argparse.Namespace) -> int:
    import anyio

    from .relay.front_stdio import serve_stdio

    hub, limit = _hub(args)
    anyio.run(functools.partial(serve_stdio, hub, user=_user(args), max_message_bytes=limit))
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from .relay.front_http import serve_http

    hub, limit = _hub(args)
    return serve_http(hub, host=args.host, port=args.port, extra_hosts=args.allowed_host, user=_user(args), max_message_bytes=limit)

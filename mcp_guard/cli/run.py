"""``mcp-guard run``: MCP on stdio in front of the upstream servers; and the guard both fronts compose.

Start-up matters here: the upstream is started before the pipeline is imported (relay/prestart),
and nothing of the other commands is loaded.
"""

from __future__ import annotations

import argparse
import atexit
import functools

from .. import settings
from ..errors import ConfigError
from .support import (
    EXIT_OK,
    command_spec,
    common,
    config_policy,
    config_specs,
    policy_path,
    requester_name,
    upstream_command,
)


def register(sub) -> None:  # type: ignore[no-untyped-def]
    run = sub.add_parser("run", help="serve MCP on stdio in front of one or more upstream servers")
    common(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: one stdio upstream server")
    run.set_defaults(func=cmd_run, settles=True)


def guard_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The guard the command line describes, its message size limit, and its idle timeout."""
    from ..guard import Guard, load_hook

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
        return settled(guard), 32 * 1024 * 1024, 1800.0
    if not args.config:
        raise ConfigError("nothing to guard: give --config F, or the server command after --")
    from ..config import load_config

    config = load_config(args.config)
    chosen = settings.install(settings.current().with_store(config.guard.store))
    policy = None if args.no_policy else policy_path(args.policy, config_policy(config, args.config))
    guard = Guard.open(
        chosen, config_specs(config), policy=policy, extra_hooks=[load_hook(ref) for ref in config.guard.hooks],
        allow_methods=[*config.guard.allow_methods, *args.allow_method],
        max_message_bytes=config.guard.max_message_bytes, metrics=metrics,
    )
    atexit.register(guard.close)
    return settled(guard), config.guard.max_message_bytes, config.guard.session_idle_timeout


def settled(guard):  # type: ignore[no-untyped-def]
    """Everything built so far lives as long as the process: keep the garbage collector off it.

    The collector has been off since start (cli.main); what start-up left unreachable is a few
    hundred kilobytes at most, not worth the ~30 ms a full collection costs here."""
    import gc

    gc.freeze()
    gc.enable()
    return guard


def cmd_run(args: argparse.Namespace) -> int:
    command = upstream_command(args)
    if command and not args.config:
        from ..relay import prestart

        prestart.early(command)  # the server starts while the guard builds its policy and masking
    from ..relay import loop
    from ..relay.fronts.stdio import serve_stdio

    guard, limit, _ = guard_for(args)
    loop.run(functools.partial(serve_stdio, guard.solo(), user=requester_name(args), max_message_bytes=limit))
    return EXIT_OK

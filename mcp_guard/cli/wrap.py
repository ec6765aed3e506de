"""``mcp-guard wrap|unwrap``: put a client's MCP servers behind the guard, or take exactly that out again."""

from __future__ import annotations

import argparse
import sys

from .support import EXIT_OK, policy_path


def register(sub) -> None:  # type: ignore[no-untyped-def]
    from ..wrap_clients import CLIENTS

    for verb in ("wrap", "unwrap"):
        what = "put every server of a client's MCP config behind the guard" if verb == "wrap" else (
            "take out exactly what wrap changed, keeping every edit made since")
        w = sub.add_parser(verb, help=what, description=what)
        w.add_argument("--client", choices=CLIENTS, default="claude-desktop", help="whose config format (default: %(default)s)")
        w.add_argument("--file", help="the config file (default: where the client keeps it on this OS)")
        w.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
        w.add_argument("--home", help="where the wrap record lives (default: $MCP_GUARD_HOME or the user's data dir)")
        w.set_defaults(func=cmd_wrap, verb=verb)


def cmd_wrap(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import wrap as wrapping

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
        _prepare_first_start()
    else:
        print(f"{path}: {len(done.changed)} server(s) restored; everything else kept as it is now", file=sys.stderr)
    return EXIT_OK


def _prepare_first_start() -> None:
    """What a guard's first start in this home would otherwise do while the client waits: compile
    the masking patterns (seconds, once) and validate the policy (kept for the next starts)."""
    from ..errors import ConfigError
    from ..hooks.mask import label_sets
    from ..masking import fast
    from ..policy import load_policy
    from ..progress import Progress

    with Progress().step("preparing the guard's first start (policy, masking patterns)"):
        try:
            policy = load_policy(policy_path(None, None))
        except ConfigError as exc:
            print(f"mcp-guard: the policy the wrapped servers will run under does not load: {exc}", file=sys.stderr)
            return
        if policy.masking.enabled:
            fast.warm(label_sets(policy.masking))

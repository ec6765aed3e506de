"""``mcp-guard doctor``: check the config, policy, store and each upstream, and say how to fix problems."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .support import command_spec, common, config_policy, config_specs, policy_path, upstream_command


def register(sub) -> None:  # type: ignore[no-untyped-def]
    doctor = sub.add_parser("doctor", help="check the config, policy, store and each upstream; say how to fix problems")
    common(doctor)
    doctor.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: one stdio upstream")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .. import doctor

    command = upstream_command(args)
    specs: object
    from_config = None
    if command:
        specs = [command_spec(args, command)]
    elif args.config:
        from ..config import load_config

        try:
            config = load_config(args.config)
            from_config = config_policy(config, args.config)
            specs = config_specs(config)
        except ConfigError as exc:
            specs = exc
    else:
        raise ConfigError("give --config F, or the server command after --")

    def store():  # type: ignore[no-untyped-def]
        from ..store import open_store

        return open_store()

    policy = None if args.no_policy else policy_path(args.policy, from_config)
    from .term import Progress, painter

    return doctor.run(specs, policy, store, paint=painter(), progress=Progress())

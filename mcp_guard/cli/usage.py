"""How the command line explains itself: --version, help and defaults on every option, global
options after the subcommand, and one-line messages for the OS errors a user meets."""

from __future__ import annotations

import argparse
import sys

from .support import EXIT_OK

EXIT_PIPE = 141  # what a shell reports for a process ended by SIGPIPE


def os_problem(exc: OSError, args: argparse.Namespace) -> str:
    import errno

    if exc.errno == errno.EADDRINUSE:
        where = f"{getattr(args, 'host', '127.0.0.1')}:{getattr(args, 'port', '?')}"
        return f"cannot listen on {where}: the address is already in use (stop the other program, or give --port)"
    if exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc.strerror or exc)


LOG_LEVEL_HELP = "debug, info, warning or error (default: $MCP_GUARD_LOG_LEVEL, else warning); logs go to stderr"
LOG_LEVELS = ("debug", "info", "warning", "error")


class Version(argparse.Action):
    """--version, read from the package metadata only when asked (importlib.metadata costs ~30 ms)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        print(f"mcp-guard {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-guard")
    except PackageNotFoundError:
        return "unknown (not installed)"


# Help for the arguments that many commands share, filled in where a command gave none.
_HELP = {
    "--json": "print machine-readable JSON", "id": "the request or grant id (from `list`)", "--server": "the server name",
    "--tool": "the tool name (as the server names it)", "--user": "the requester's name (default: the OS user)",
    "--reason": "why, kept in the audit record", "--host": "address to bind", "--port": "port to bind (0 picks a free one)",
    "--allowed-host": "extra Host header value to accept (DNS-rebinding protection)", "files": "policy YAML files",
    "server": "the server name (default: every server)", "tool": "one tool of that server (default: every changed tool)",
    "token_action": "create NAME --role ROLE, list, or revoke NAME", "name": "the reviewer's name",
    "-n": "how many records", "--format": "jsonl (one JSON object a line) or csv", "--all": "expired and revoked ones too",
}


def _explain(parser: argparse.ArgumentParser) -> None:
    """Every option says what it is for and, when it has one, its default."""
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        key = action.option_strings[0] if action.option_strings else action.dest
        if not action.help:
            action.help = _HELP.get(key, _HELP.get(action.dest, action.dest.replace("_", " ")))
        trivial = action.default in (None, False, True, "", [], argparse.SUPPRESS) or not action.option_strings
        if not trivial and "default" not in action.help:
            action.help += " (default: %(default)s)"


def everywhere(parser: argparse.ArgumentParser) -> None:
    """Global options after the subcommand too, and each group's own help when called alone."""
    _explain(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parser.set_defaults(help_of=parser)
            for child in action.choices.values():
                # SUPPRESS: a value given before the subcommand is not reset by the child's default.
                child.add_argument("--log-level", default=argparse.SUPPRESS, type=str.lower, choices=LOG_LEVELS, help=LOG_LEVEL_HELP)
                everywhere(child)


def cmd_completion(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import shtab

    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    return EXIT_OK



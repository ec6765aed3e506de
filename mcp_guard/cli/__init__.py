"""Command line: argv to library calls, exit codes, human output. No business rules here.

One module per command group, each with ``register(subparsers)``; this one builds the parser from
them and runs the chosen command. Group modules import their heavy parts inside the commands, so
that building the parser (which every command does) costs ``run`` almost nothing.

Exit codes: 0 success; 1 a check found a problem; 2 usage or configuration error (a missing
file, a busy port, bad input: one line on stderr, no traceback); 130 interrupted; 141 stdout
closed early (``audit export | head``). Messages go to stderr; stdout belongs to the MCP
protocol (``run``) or to data.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .. import settings
from ..errors import ConfigError, GuardError
from .support import EXIT_PROBLEM, EXIT_USAGE
from .usage import EXIT_PIPE, LOG_LEVEL_HELP, LOG_LEVELS, Version, cmd_completion, everywhere, os_problem

__all__ = ["main"]

logger = logging.getLogger("mcp_guard")

# In the order `mcp-guard --help` lists them; each is the module of that name here.
_GROUPS = ("run", "serve", "auth", "policy", "review", "doctor", "tools", "wrap", "audit", "scan", "grants")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(_command(argv)).parse_args(argv)
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
    if getattr(args, "settles", False):
        # Building a guard allocates much and frees little: the collector's passes over a growing
        # heap are wasted then (~15% of start-up). `run` and `serve` switch it back on once their
        # guard has settled (cli/run.settled).
        gc.disable()
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
    finally:
        gc.enable()


def _command(argv: Sequence[str]) -> str | None:
    """The command group ``argv`` names, when it names one (the first word that is no option)."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif word in ("-h", "--help", "--"):
            return None  # the top level's own help, or a word it must refuse: the whole command line
        elif not word.startswith("-"):
            return word if word in _GROUPS else None
    return None


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or, for a command of group ``only``, that group alone: building
    every group's options costs ~15 ms of the guard's start, and parses that command the same."""
    parser = argparse.ArgumentParser(prog="mcp-guard", description="A tool-call firewall for the Model Context Protocol.")
    parser.add_argument("--log-level", default=None, type=str.lower, choices=LOG_LEVELS, help=LOG_LEVEL_HELP)
    parser.add_argument("--version", action=Version, nargs=0, help="print the installed version and exit")
    sub = parser.add_subparsers(metavar="COMMAND")
    for name in (only,) if only else _GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    if not only:
        completion = sub.add_parser("completion", help="print a shell completion script: bash, zsh or tcsh")
        completion.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell to complete in")
        completion.set_defaults(func=functools.partial(cmd_completion, parser))
    everywhere(parser)
    return parser


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
        # ASCII only: a name an upstream chose (a tool's, with bidi or escape codes in it) reaches
        # whoever reads the log as \u escapes, never as a control that redraws their terminal.
        return json.dumps(entry, ensure_ascii=True)


class _TextFormatter(logging.Formatter):
    """A line for a person at a terminal: every control, bidi or invisible character in it is
    shown as an escape (approval.escape.one_line), whatever the message quotes."""

    def __init__(self) -> None:
        super().__init__("mcp-guard %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        from ..approval.escape import one_line

        return "\n".join(one_line(line) for line in super().format(record).split("\n"))


def _setup_logging(chosen: settings.Settings) -> None:
    level = chosen.log_level
    handler = logging.StreamHandler(sys.stderr)
    style = chosen.log_format or ("text" if sys.stderr.isatty() else "json")
    if style == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter())
    root = logging.getLogger("mcp_guard")
    root.addHandler(handler)
    root.setLevel(level.upper() if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else "WARNING")
    root.propagate = False

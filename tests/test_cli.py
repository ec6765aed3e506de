"""The command line as a user meets it: version, help, global options, one-line errors, exit codes."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import probe


def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "mcp_guard", *args], capture_output=True, text=True, timeout=60, **kwargs)


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"mcp-guard {version('mcp-guard')}"


def test_log_level_is_accepted_after_the_subcommand_as_well_as_before() -> None:
    for argv in (("--log-level", "debug", "policy", "check", "x.yaml"), ("policy", "check", "x.yaml", "--log-level", "debug")):
        done = run(*argv)
        assert "unrecognized arguments" not in done.stderr and done.returncode == 1, done.stderr


def test_a_command_group_alone_prints_its_own_help() -> None:
    for group in ("review", "policy", "audit", "tools", "grants"):
        done = run(group)
        assert done.returncode == 2 and done.stderr.startswith(f"usage: mcp-guard {group} "), group


def test_every_option_has_help_and_names_its_default() -> None:
    from mcp_guard.cli import _parser

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction):
                assert action.help, f"{path} {action.dest}"
                if action.option_strings and action.nargs != 0 and action.default not in (None, "", [], argparse.SUPPRESS):
                    assert "default" in action.help, f"{path} {action.option_strings}"

    walk(_parser(), "mcp-guard")


def test_serve_on_a_busy_port_is_a_one_line_error_with_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("serve", "--port", str(port), "--no-policy", "--", *probe())
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and f"127.0.0.1:{port}" in done.stderr and "already in use" in done.stderr


def test_audit_export_into_a_pipe_closed_early_ends_without_a_traceback(guard_home: Path) -> None:
    from mcp_guard.audit import Audit
    from mcp_guard.store import open_store

    audit = Audit(open_store())
    for i in range(3000):  # more than a pipe buffer holds, so the writer meets the closed pipe
        audit.append("test.record", {"n": i, "note": "x" * 40})
    process = subprocess.Popen([sys.executable, "-m", "mcp_guard", "audit", "export"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline()  # like `| head -1`
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert process.returncode == 141


def test_missing_files_are_one_line_errors_naming_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    for argv in (("policy", "explain", "--policy", missing, "--server", "s", "--tool", "t"), ("scan", missing),
                 ("run", "--config", missing)):
        done = run(*argv)
        assert done.returncode == 2 and "Traceback" not in done.stderr and "nope.yaml" in done.stderr, (argv, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_nameless_and_duplicate_reviewer_tokens_are_refused(guard_home: Path) -> None:
    for blank in ("", "   ", "\x1b[31m"):
        done = run("review", "token", "create", blank)
        assert done.returncode == 2 and "reviewer name" in done.stderr and not done.stdout
    assert run("review", "token", "create", "alice").returncode == 0
    again = run("review", "token", "create", "alice")
    assert again.returncode == 2 and "exists already" in again.stderr and not again.stdout
    assert run("review", "token", "revoke", "alice").returncode == 0
    assert run("review", "token", "create", "alice").returncode == 0


def test_completion_prints_a_script_for_the_shell() -> None:
    done = run("completion", "bash")
    assert done.returncode == 0 and "mcp-guard" in done.stdout and "unwrap" in done.stdout


def test_a_requester_name_with_escape_codes_or_invisible_characters_stops_the_guard_before_any_call() -> None:
    # "bob\x1b[0m" prints as bob on a terminal but compares as someone else: a reviewer token for
    # bob could then approve bob's own call. The guard refuses to run under such a name.
    hostile = run("run", "--user", "bob\x1b[0m", "--no-policy", "--", *probe(), stdin=subprocess.DEVNULL)
    assert hostile.returncode == 2, hostile.stderr
    assert "U+001B" in hostile.stderr and "\x1b" not in hostile.stderr and "Traceback" not in hostile.stderr
    from_env = run("run", "--no-policy", "--", *probe(), stdin=subprocess.DEVNULL, env={**os.environ, "MCP_GUARD_USER": "al\u200bice"})
    assert from_env.returncode == 2 and "MCP_GUARD_USER" in from_env.stderr and "U+200B" in from_env.stderr
    plain = run("run", "--user", "alice", "--no-policy", "--", *probe(), stdin=subprocess.DEVNULL)
    assert plain.returncode == 0, plain.stderr


@pytest.mark.parametrize("argv", [
    ["run", "--", "python", "server.py", "--flag"],
    ["--log-level", "debug", "run", "--no-policy", "--", "x"],
    ["run", "--log-level", "info", "--policy", "p.yaml", "--", "x"],
    ["serve", "--port", "0", "--no-policy", "--", "x"],
    ["review", "list", "--json"],
    ["--log-level=warning", "audit", "tail", "-n", "3"],
    ["policy", "show", "--config", "c.json", "--server", "s", "--tool", "t"],
])
def test_a_command_parses_the_same_with_its_group_alone_as_with_the_whole_command_line(argv: list[str]) -> None:
    from mcp_guard.cli import _command, _parser

    def parsed(parser: argparse.ArgumentParser) -> dict[str, object]:
        values = vars(parser.parse_args(argv))
        values.pop("help_of", None)  # the parser objects themselves differ
        values["func"] = getattr(values.get("func"), "__name__", None)
        return values

    assert _command(argv) == next(w for w in argv if not w.startswith("-") and w not in ("debug",))
    assert parsed(_parser(_command(argv))) == parsed(_parser())


def test_an_unknown_command_is_refused_by_the_whole_command_line() -> None:
    done = run("rnu", "--", "x")
    assert done.returncode == 2 and "invalid choice: 'rnu'" in done.stderr and "run" in done.stderr


def test_the_top_level_help_asked_before_a_command_lists_every_command() -> None:
    done = run("--help", "review")
    assert done.returncode == 0 and all(name in done.stdout for name in ("run", "serve", "audit", "wrap", "unwrap"))


def test_an_unknown_log_level_is_refused_with_the_levels_there_are() -> None:
    done = run("--log-level=bogus", "run", "--", "x")
    assert done.returncode == 2 and "invalid choice: 'bogus'" in done.stderr and "warning" in done.stderr

"""The admin commands on a real terminal (a pseudo-terminal from the pty module) and piped.

On a terminal ``doctor`` colours its verdicts and shows a progress line on stderr while it probes
each upstream; piped, the same run prints the same words with no escape code and no progress line.
``NO_COLOR`` turns the colour off on a terminal too. ``audit tail`` and ``review list`` are tables
on a terminal and keep their lines piped (tests/cli/test_tables.py has the other listings).
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

from tests.cli.terminal import COLOUR, ESCAPE, clean_env, offsets, on_terminal, piped
from tests.conftest import PY
from tests.reviewing import reviewer_token

ROOT = Path(__file__).resolve().parent.parent.parent


def doctor_argv(home: Path) -> list[str]:
    return [PY, "-m", "mcp_guard", "doctor", "--no-policy", "--home", str(home), "--name", "echo", "--",
            PY, str(ROOT / "fixtures" / "echo_server.py")]


def test_doctor_on_a_terminal_colours_its_verdicts_and_piped_prints_the_same_words_plain(tmp_path: Path) -> None:
    argv = doctor_argv(tmp_path / "home")
    code, out, _ = on_terminal(argv, clean_env())
    assert code == 0, out
    assert "\x1b[32mok\x1b[0m" in out
    pcode, pout, _ = piped(argv, clean_env())
    assert pcode == 0
    assert "\x1b" not in pout
    assert ESCAPE.sub("", out) == pout


def test_doctor_shows_each_upstream_probe_with_its_time_on_a_terminal_stderr_only(tmp_path: Path) -> None:
    argv = doctor_argv(tmp_path / "home")
    _, out, err = on_terminal(argv, clean_env())
    assert re.search(r"probing upstream echo: \d+\.\d s\n", ESCAPE.sub("", err).replace("\r", "")), err
    assert "probing" not in out
    _, pout, perr = piped(argv, clean_env())
    assert "probing" not in perr and "probing" not in pout
    assert "\x1b" not in perr


def test_no_color_keeps_a_terminal_plain(tmp_path: Path) -> None:
    _, out, _ = on_terminal(doctor_argv(tmp_path / "home"), clean_env(NO_COLOR="1"))
    assert "ok" in out and "\x1b" not in out


def test_audit_tail_on_a_terminal_is_a_table_with_coloured_decisions_and_piped_keeps_its_lines(tmp_path: Path) -> None:
    from mcp_guard.audit import Audit
    from mcp_guard.store import Store

    home = tmp_path / "home"
    home.mkdir()
    audit = Audit(Store(home / "guard.db"))
    audit.append("call.decided", {"user": "ann", "server": "fs", "tool": "rm", "decision": "deny"})
    audit.append("call.decided", {"user": "ann", "server": "fs", "tool": "ls", "decision": "allow"})
    argv = [PY, "-m", "mcp_guard", "audit", "tail", "--home", str(home)]
    code, out, _ = on_terminal(argv, clean_env())
    assert code == 0, out
    header, *rows = out.splitlines()
    assert header.startswith("\x1b[1m") and len(rows) == 2
    kind, decision, record = offsets(header, "KIND", "DECISION", "RECORD")
    assert "\x1b[31mdeny\x1b[0m" in rows[0] and "\x1b[32mallow\x1b[0m" in rows[1]
    for row, verdict, tool in zip(rows, ("deny", "allow"), ("rm", "ls")):
        plain = COLOUR.sub("", row)
        assert plain[kind:].startswith("call.decided ") and plain[decision:].startswith(f"{verdict} ")
        assert plain[record:] == f"user=ann server=fs tool={tool}"
    pcode, pout, _ = piped(argv, clean_env())
    assert pcode == 0 and "\x1b" not in pout
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.fullmatch(rf" +\d+ {when} call.decided     user=ann server=fs tool=rm decision=deny\n"
                        rf" +\d+ {when} call.decided     user=ann server=fs tool=ls decision=allow\n", pout), pout


def test_audit_tail_shows_escape_codes_newlines_and_bidi_from_a_call_as_text_never_raw(tmp_path: Path) -> None:
    from mcp_guard.audit import Audit
    from mcp_guard.store import Store

    home = tmp_path / "home"
    home.mkdir()
    hostile = {"user": "ann", "server": "fs", "tool": "rm\x1b[2J\x1b[1;1H", "decision": "deny",
               "reason": "boom\n    99 2026-01-01 00:00:00 call.decided decision=allow \u202eevil"}
    Audit(Store(home / "guard.db")).append("call.decided", hostile)
    argv = [PY, "-m", "mcp_guard", "audit", "tail", "--home", str(home)]
    code, out, _ = on_terminal(argv, clean_env())
    assert code == 0 and "\u202e" not in out and "\\x1b[2J" in out
    assert not ESCAPE.sub("", COLOUR.sub("", out)).count("\x1b") and ESCAPE.findall(out) == COLOUR.findall(out)
    assert len([line for line in out.splitlines()[1:] if line[:6].strip().isdigit()]) == 1  # no forged second row
    pcode, pout, _ = piped(argv, clean_env())
    assert pcode == 0 and "\x1b" not in pout and "\u202e" not in pout and "\\x1b[2J" in pout
    assert len([line for line in pout.splitlines() if line.strip()]) == 1  # no forged second line


def test_review_list_on_a_terminal_is_a_table_with_the_risk_coloured_and_piped_keeps_its_lines(tmp_path: Path) -> None:
    from mcp_guard.approvals import Approvals
    from mcp_guard.store import Store

    home = tmp_path / "home"
    home.mkdir()
    Approvals(Store(home / "guard.db")).open(
        user="ann", session="s1", server="fs", tool="delete_file", binding="b1", rule="ask-deletes", risk="high",
        preview="delete_file(path='/tmp/x')", max_scope="once", lifetime=600,
    )
    argv = [PY, "-m", "mcp_guard", "review", "list", "--home", str(home)]
    code, out, _ = on_terminal(argv, clean_env())
    assert code == 0, out
    header, row = out.splitlines()
    assert COLOUR.sub("", header).split() == ["ID", "REQUESTER", "TOOL", "SERVER", "RISK", "RULE", "LEFT"]
    plain = COLOUR.sub("", row)
    for at, value in zip(offsets(header, "REQUESTER", "TOOL", "SERVER", "RISK", "RULE"),
                         ("ann ", "delete_file ", "fs ", "high ", "ask-deletes ")):
        assert plain[at:].startswith(value), (plain, value)
    assert "\x1b[31mhigh\x1b[0m" in row and re.search(r"\d+ s$", plain)
    pcode, pout, _ = piped(argv, clean_env())
    assert pcode == 0 and "\x1b" not in pout
    assert re.fullmatch(r"[0-9a-f]+  ann wants delete_file on fs \(risk high, rule ask-deletes\), \d+ s left\n", pout)


REVIEWED_ECHO = """version: 1
defaults: {timeout: 60, wait: 60}
groups: {secops: [bob]}
rules:
  - name: echo-is-reviewed
    match: {tool: echo}
    action: approve
    approvers: reviewers
    group: secops
"""


def test_a_call_waiting_for_a_reviewer_shows_a_live_line_on_the_terminal_until_it_is_decided(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rules = tmp_path / "reviewed.yaml"
    rules.write_text(REVIEWED_ECHO)
    argv = [PY, "-m", "mcp_guard", "run", "--home", str(home), "--policy", str(rules), "--user", "carol", "--",
            PY, str(ROOT / "fixtures" / "echo_server.py")]
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, env=clean_env())
    os.close(slave)
    assert proc.stdin is not None and proc.stdout is not None
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    for message in (
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}},
    ):
        proc.stdin.write((json.dumps(message) + "\n").encode())
    proc.stdin.flush()
    seen = b""
    while b"is waiting for approval (request " not in seen or b" ... 1 s" not in seen:
        chunk = os.read(master, 65536)
        assert chunk, "the guard's stderr closed before any waiting line"
        seen += chunk
    rid = re.search(rb"\(request ([0-9a-f]+)\)", seen).group(1).decode()  # type: ignore[union-attr]
    denied = subprocess.run([PY, "-m", "mcp_guard", "review", "deny", rid, "--home", str(home), "--reason", "no"],
                            env={**clean_env(), "MCP_GUARD_REVIEW_TOKEN": reviewer_token(home, "bob")},
                            capture_output=True, text=True, timeout=60)
    assert denied.returncode == 0, denied.stderr
    answers = [json.loads(proc.stdout.readline()) for _ in range(2)]
    proc.stdin.close()
    while chunk := _read(master):
        seen += chunk
    proc.wait(timeout=30)
    proc.stdout.close()
    os.close(master)
    assert answers[1]["result"]["isError"] is True
    text = seen.decode()
    assert "\r\x1b[K" in text  # redrawn in place on a terminal
    assert re.search(r"echo on echo_server is waiting for approval \(request [0-9a-f]+\): \d+\.\d s\n", text.replace("\r\n", "\n"))


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed its side
        return b""

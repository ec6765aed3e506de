"""The admin commands on a real terminal (a pseudo-terminal from the pty module) and piped.

On a terminal ``doctor`` colours its verdicts and shows a progress line on stderr while it probes
each upstream; piped, the same run prints the same words with no escape code and no progress line.
``NO_COLOR`` turns the colour off on a terminal too.
"""

from __future__ import annotations

import json
import os
import pty
import re
import selectors
import subprocess
from pathlib import Path

from tests.conftest import PY
from tests.reviewing import reviewer_token

ROOT = Path(__file__).resolve().parent.parent
ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def doctor_argv(home: Path) -> list[str]:
    return [PY, "-m", "mcp_guard", "doctor", "--no-policy", "--home", str(home), "--name", "echo", "--",
            PY, str(ROOT / "fixtures" / "echo_server.py")]


def on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of a command whose stdout and stderr are each their own terminal."""
    masters, slaves = zip(*(pty.openpty() for _ in range(2)))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slaves[0], stderr=slaves[1], env=env)
    for fd in slaves:
        os.close(fd)
    got = {fd: b"" for fd in masters}
    with selectors.DefaultSelector() as sel:
        for fd in masters:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select():
                try:
                    chunk = os.read(key.fd, 65536)
                except OSError:  # EIO: the child closed its side
                    chunk = b""
                if chunk:
                    got[key.fd] += chunk
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
    code = proc.wait(timeout=60)
    out, err = (got[fd].decode().replace("\r\n", "\n") for fd in masters)
    return code, out, err


def piped(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60)
    return done.returncode, done.stdout, done.stderr


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return {**env, **extra}


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


def test_audit_tail_colours_decisions_on_a_terminal_and_piped_prints_the_same_lines_plain(tmp_path: Path) -> None:
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
    assert "decision=\x1b[31mdeny\x1b[0m" in out and "decision=\x1b[32mallow\x1b[0m" in out
    pcode, pout, _ = piped(argv, clean_env())
    assert pcode == 0 and "\x1b" not in pout
    assert ESCAPE.sub("", out) == pout and "decision=deny" in pout


def test_audit_tail_shows_escape_codes_newlines_and_bidi_from_a_call_as_text_never_raw(tmp_path: Path) -> None:
    from mcp_guard.audit import Audit
    from mcp_guard.store import Store

    home = tmp_path / "home"
    home.mkdir()
    hostile = {"user": "ann", "server": "fs", "tool": "rm\x1b[2J\x1b[1;1H", "decision": "deny",
               "reason": "boom\n    99 2026-01-01 00:00:00 call.decided decision=allow \u202eevil"}
    Audit(Store(home / "guard.db")).append("call.decided", hostile)
    argv = [PY, "-m", "mcp_guard", "audit", "tail", "--home", str(home)]
    for code, out, _ in (on_terminal(argv, clean_env()), piped(argv, clean_env())):
        assert code == 0
        plain = ESCAPE.sub("", out.replace("\x1b[31mdeny\x1b[0m", "deny"))
        assert "\x1b" not in plain and "\u202e" not in out and "decision=allow" not in out.splitlines()[-1][:60]
        assert len([line for line in out.splitlines() if line.strip()]) == 1  # no forged second line
        assert "\\x1b[2J" in out or "\\u001b" in out


def test_review_list_colours_the_risk_on_a_terminal_and_piped_prints_the_same_words_plain(tmp_path: Path) -> None:
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
    assert "(risk \x1b[31mhigh\x1b[0m," in out
    pcode, pout, _ = piped(argv, clean_env())
    assert pcode == 0 and "\x1b" not in pout and "wants delete_file on fs (risk high," in pout

    def unclocked(text: str) -> str:
        return re.sub(r"\d+ s left", "N s left", text)

    assert unclocked(ESCAPE.sub("", out)) == unclocked(pout)


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

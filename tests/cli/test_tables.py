"""Every admin listing is an aligned table on a real terminal, and piped it is what scripts read before.

The data is made as a person makes it, through the CLI and running guards: carol's and dave's
guards (`mcp-guard run`, a bare JSON-RPC client on their stdin) each call a tool that their server
names with an ANSI screen-clear and a bidi override; carol approves hers for the session with
`review approve`, giving a reason that carries the same codes, which leaves a grant; dave's waits in
the queue. Caller tokens come from `auth token create` and `revoke`.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.cli.terminal import COLOUR, ESCAPE, clean_env, offsets, on_terminal, piped, tools_through
from tests.conftest import FIXTURES, PY, free_port
from tests.policy.cli_servers import risky, write_config
from tests.reviewing import reviewer_token

POLICY = """version: 1
defaults: {timeout: 900, wait: 600, scope: session, min_human_ms: 0}
rules:
  - name: every-send-is-asked
    match: {risk: high}
    action: approve
    approvers: user
    scope: session
"""
HOSTILE = "send\x1b[2J\u202eevil"
SHOWN = "send\\x1b[2J\\u202eevil"  # how every listing writes it: escapes as text
REASON = "fine\x1b[2J\u202eby me"


class Caller:
    """One person's guard, with a bare JSON-RPC client on its stdin, whose `send` tool has a hostile name."""

    def __init__(self, home: Path, policy: Path, user: str) -> None:
        argv = [PY, "-m", "mcp_guard", "run", "--home", str(home), "--policy", str(policy), "--user", user, "--",
                PY, str(FIXTURES / "attack_approve_server.py")]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**clean_env(), "ATTACK_TOOL": HOSTILE})
        hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        self.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
        self.answer()
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        self.tool = next(t["name"] for t in self.answer()["result"]["tools"] if t["name"] != "lookup")

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def mcp_guard(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "mcp_guard", *args], capture_output=True, text=True, timeout=60,
                          env={**clean_env(), **env}, stdin=subprocess.DEVNULL)


def waiting_for(home: Path, user: str) -> str:
    """The id of ``user``'s request once it is in the queue (polling the queue, not timing anything)."""
    while True:
        listed = json.loads(mcp_guard("review", "list", "--json", "--home", str(home)).stdout or "[]")
        mine = [r["id"] for r in listed if r["user"] == user]
        if mine:
            return mine[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("tables")
    home, policy = root / "home", root / "policy.yaml"
    policy.write_text(POLICY)
    carol = Caller(home, policy, "carol")
    carol.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": carol.tool, "arguments": {}}})
    approved = mcp_guard("review", "approve", waiting_for(home, "carol"), "--scope", "session", "--reason", REASON,
                         "--home", str(home), MCP_GUARD_REVIEW_TOKEN=reviewer_token(home, "carol"))
    assert approved.returncode == 0, approved.stderr
    assert carol.answer()["result"]["content"][0]["text"] == "sent"
    dave = Caller(home, policy, "dave")
    dave.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": dave.tool, "arguments": {}}})
    waiting_for(home, "dave")
    for made in (("create", "alice", "--group", "ops", "--group", "dev", "--expires", "30"), ("create", "bob"),
                 ("revoke", "bob")):
        assert mcp_guard("auth", "token", *made, "--home", str(home)).returncode == 0
    try:
        yield SimpleNamespace(home=home, argv=lambda *args: [PY, "-m", "mcp_guard", *args, "--home", str(home)])
    finally:
        carol.close()
        dave.close()


def rows_of(out: str) -> tuple[str, list[str]]:
    header, *rows = out.splitlines()
    return header, [COLOUR.sub("", row) for row in rows]


def only_colour_codes(out: str) -> bool:
    """No escape sequence in ``out`` but colour (SGR) codes, and no bidi control at all."""
    return ESCAPE.findall(out) == COLOUR.findall(out) and "\x1b" not in ESCAPE.sub("", out) and "\u202e" not in out


def test_review_list_on_a_terminal_aligns_each_request_under_its_header_with_the_page_link_below(world) -> None:
    code, out, _ = on_terminal(world.argv("review", "list"), clean_env(), columns=160)
    assert code == 0
    header, (row, link) = rows_of(out)
    assert header.startswith("\x1b[1m") and COLOUR.sub("", header).split() == [
        "ID", "REQUESTER", "TOOL", "SERVER", "RISK", "RULE", "LEFT"]
    at = offsets(header, "REQUESTER", "TOOL", "SERVER", "RISK", "RULE")
    for start, value in zip(at, ("dave", SHOWN, "attack_approve_server", "high", "every-send-is-asked")):
        assert row[start:].startswith(value + " "), (row, value)
    assert "\x1b[31mhigh\x1b[0m" in out and re.search(r"\d+ s$", row)
    assert link.startswith(" " * offsets(header, "REQUESTER")[0] + "http://127.0.0.1:")
    assert only_colour_codes(out)


def test_a_piped_review_list_keeps_its_line_and_link_per_request_with_no_escape_code(world) -> None:
    code, out, _ = piped(world.argv("review", "list"), clean_env())
    assert code == 0 and "\x1b" not in out and "\u202e" not in out
    assert re.fullmatch(rf"[0-9a-f]+  dave wants {re.escape(SHOWN)} on attack_approve_server \(risk high, rule "
                        r"every-send-is-asked\), \d+ s left\n {10}http://127\.0\.0\.1:\d+/r/[0-9a-f]+\?t=\S+\n", out)


def test_review_list_through_a_served_api_is_the_same_table_on_a_terminal(world) -> None:
    port = free_port()
    serve = subprocess.Popen(world.argv("review", "serve", "--port", str(port)), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=clean_env())
    try:
        env = clean_env(MCP_GUARD_REVIEW_TOKEN=reviewer_token(world.home, "dave"))
        argv = [PY, "-m", "mcp_guard", "review", "list", "--url", f"http://127.0.0.1:{port}"]
        while (plain := piped(argv, env))[0] != 0:  # polling until it serves, not timing anything
            assert serve.poll() is None, "review serve ended"
        code, out, _ = on_terminal(argv, env)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert code == 0 and only_colour_codes(out)
    header, (row,) = rows_of(out)
    assert COLOUR.sub("", header).split() == ["ID", "REQUESTER", "TOOL", "SERVER", "RISK", "RULE", "LEFT"]
    for start, value in zip(offsets(header, "REQUESTER", "TOOL", "RISK"), ("dave", SHOWN, "high")):
        assert row[start:].startswith(value + " "), (row, value)
    assert "\x1b[31mhigh\x1b[0m" in out and "\x1b" not in plain[1] and "\u202e" not in plain[1]
    assert re.fullmatch(rf"[0-9a-f]+  dave wants {re.escape(SHOWN)} on attack_approve_server \(risk high, rule "
                        r"every-send-is-asked\)\n", plain[1])


def test_grants_list_on_a_terminal_is_a_table_with_the_state_in_colour_and_the_tool_name_neutralised(world) -> None:
    code, out, _ = on_terminal(world.argv("grants", "list"), clean_env())
    assert code == 0
    header, (row,) = rows_of(out)
    assert COLOUR.sub("", header).split() == ["ID", "USER", "TOOL", "SERVER", "SCOPE", "LEFT", "STATE"]
    for start, value in zip(offsets(header, "USER", "TOOL", "SCOPE", "STATE"), ("carol", SHOWN, "session", "active")):
        assert row[start:].startswith(value), (row, value)
    assert "\x1b[32mactive\x1b[0m" in out and re.search(r"  \d+ min  ", row) and only_colour_codes(out)
    pcode, pout, _ = piped(world.argv("grants", "list"), clean_env())
    assert pcode == 0 and "\x1b" not in pout and "\u202e" not in pout
    assert re.fullmatch(rf"[0-9a-f]+  carol may call {re.escape(SHOWN)} on attack_approve_server  scope session, "
                        r"\d+ min left\n", pout)


def test_token_lists_on_a_terminal_are_tables_and_piped_stay_the_json_scripts_read(world) -> None:
    code, out, _ = on_terminal(world.argv("auth", "token", "list"), clean_env())
    assert code == 0
    header, rows = rows_of(out)
    assert COLOUR.sub("", header).split() == ["NAME", "GROUPS", "CREATED", "EXPIRES", "LAST", "USED", "STATE"]
    groups, state = offsets(header, "GROUPS", "STATE")
    shown = [(r[:5], r[groups:groups + 8], r[state:]) for r in rows if r.startswith(("alice ", "bob "))]
    assert shown == [("alice", "dev, ops", "live"), ("bob  ", "-       ", "revoked")]
    assert "\x1b[32mlive\x1b[0m" in out and "\x1b[31mrevoked\x1b[0m" in out
    code, out, _ = on_terminal(world.argv("review", "token", "list"), clean_env())
    header, rows = rows_of(out)
    assert COLOUR.sub("", header).split() == ["NAME", "ROLE", "CREATED", "STATE", "REVOKED"]
    row = next(r for r in rows if r.startswith("carol "))  # dave's may be there too
    assert row.startswith("carol  secops  ") and row[offsets(header, "STATE")[0]:].startswith("live ")
    for listing, keys in ((("auth", "token", "list"), {"name", "groups", "created", "expires", "last_used", "revoked"}),
                          (("review", "token", "list"), {"name", "role", "created", "revoked"})):
        pcode, pout, _ = piped(world.argv(*listing), clean_env())
        tokens = json.loads(pout)
        assert pcode == 0 and pout == json.dumps(tokens) + "\n" and all(set(t) == keys for t in tokens)
    assert "mgr_" not in out and "mgc_" not in out


def test_audit_tail_on_a_terminal_shows_a_hostile_reason_as_text_in_its_table_row(world) -> None:
    code, out, _ = on_terminal(world.argv("audit", "tail", "-n", "50"), clean_env(), columns=200)
    assert code == 0 and only_colour_codes(out)
    header, rows = rows_of(out)
    kind, decision, record = offsets(header, "KIND", "DECISION", "RECORD")
    decided = next(r for r in rows if r[kind:].startswith("approval.decided"))
    assert decided[decision:].startswith("approve ") and "\x1b[33mapprove\x1b[0m" in out
    assert decided[record:].startswith(f"requester=carol server=attack_approve_server tool={SHOWN} ")
    assert decided.endswith("reason=fine\\x1b[2J\\u202eby me")
    pcode, pout, _ = piped(world.argv("audit", "tail", "-n", "50"), clean_env())
    assert pcode == 0 and "\x1b" not in pout and "\u202e" not in pout
    assert re.search(r"^ +\d+ \S+ \S+ approval\.decided requester=carol .* reason=fine\\x1b\[2J\\u202eby me$", pout, re.M)


def test_audit_tail_follow_on_a_terminal_lays_out_records_that_arrive_later_under_the_same_header(world) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    tail = subprocess.Popen(world.argv("audit", "tail", "-n", "1", "-f"), stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.DEVNULL, env=clean_env())
    os.close(slave)
    seen = b""
    try:
        while b"\n" not in seen.split(b"RECORD", 1)[-1]:  # the header and the last record
            seen += os.read(master, 65536)
        assert mcp_guard("auth", "token", "create", "zed", "--home", str(world.home)).returncode == 0
        while b"caller.token" not in seen or not seen.endswith(b"\n"):
            seen += os.read(master, 65536)
    finally:
        tail.terminate()
        tail.wait(timeout=30)
        os.close(master)
    header, rows = rows_of(seen.decode().replace("\r\n", "\n"))
    kind, record = offsets(header, "KIND", "RECORD")
    later = next(r for r in rows if "caller.token" in r)
    assert later[kind:].startswith("caller.token ") and later[record:].startswith("by=")


def test_on_a_narrow_terminal_cells_are_cut_or_wrapped_to_its_width_and_stay_aligned(world) -> None:
    _, out, _ = on_terminal(world.argv("review", "list"), clean_env(), columns=60)
    header, (row, link) = rows_of(out)
    assert all(len(line) <= 60 for line in (COLOUR.sub("", header), row)) and "\u2026" in row
    assert link.lstrip().startswith("http://127.0.0.1:")  # a link is never cut
    tool, risk = offsets(header, "TOOL", "RISK")
    assert row[tool:].startswith("send") and row[risk:].startswith("high ")
    _, out, _ = on_terminal(world.argv("audit", "tail", "-n", "50"), clean_env(), columns=90)
    header, rows = rows_of(out)
    (record,) = offsets(header, "RECORD")
    assert all(len(line) <= 90 for line in rows)
    continued = [r for r in rows if not r[:6].strip()]
    assert continued and all(r[:record].strip() == "" and r[record] != " " for r in continued)


def test_no_color_keeps_the_table_on_a_terminal_but_without_any_escape_code(world) -> None:
    for listing in (("review", "list"), ("grants", "list"), ("auth", "token", "list"), ("audit", "tail")):
        code, out, _ = on_terminal(world.argv(*listing), clean_env(NO_COLOR="1"))
        assert code == 0 and "\x1b" not in out and out.split("\n", 1)[0].split()[0] in ("ID", "NAME", "SEQ"), listing


def test_tools_check_on_a_terminal_tabulates_each_finding_and_piped_keeps_its_lines(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # A guard lists the tools of a server whose description carries instructions to the model: pinned, scanned.
    tools, stderr = tools_through([PY, "-m", "mcp_guard", "run", "--home", str(home), "--", PY,
                                   str(FIXTURES / "changing_server.py")], {**clean_env(), "VARIANT": "poisoned"})
    assert tools, stderr
    argv = [PY, "-m", "mcp_guard", "tools", "check", "--home", str(home)]
    code, out, _ = on_terminal(argv, clean_env(), columns=120)
    assert code == 1 and only_colour_codes(out)
    header, rows = rows_of(out)
    assert COLOUR.sub("", header).split() == ["SERVER", "TOOL", "FINDING", "WHERE", "EVIDENCE"]
    finding, evidence = offsets(header, "FINDING", "EVIDENCE")
    starts = [r for r in rows if r.strip() and r[0] != " "]
    assert starts and all(r.startswith("changing_server  lookup  ") and r[finding] != " " for r in starts)
    assert all(r[evidence] in "'\"" for r in starts) and "\x1b[31m" in out
    pcode, pout, _ = piped(argv, clean_env())
    assert pcode == 1 and "\x1b" not in pout
    first, *findings = pout.splitlines()
    assert first == "changing_server/lookup:" and len(findings) == len(starts)
    assert all(re.fullmatch(r"  \S+ in \S+: ['\"].*['\"]", line) for line in findings)


def test_policy_show_on_a_terminal_sets_the_risk_sources_and_rules_as_tables_and_piped_keeps_its_text(
        tmp_path: Path) -> None:
    config = write_config(tmp_path, {"risky": risky()})
    argv = [PY, "-m", "mcp_guard", "policy", "show", "--config", str(config), "--server", "risky", "--tool", "send_email"]
    env = clean_env(MCP_GUARD_HOME=str(tmp_path / "home"))
    code, out, _ = on_terminal(argv, env, columns=160)
    assert code == 0 and only_colour_codes(out)
    lines = [COLOUR.sub("", line) for line in out.splitlines()]
    sources = next(i for i, line in enumerate(lines) if line.split() == ["SOURCE", "LEVEL", "FROM"])
    level = lines[sources].index("LEVEL")
    author = next(line for line in lines[sources:] if "author" in line)
    assert author.startswith("  *") and author[level:].startswith("high ") and "\x1b[31mhigh\x1b[0m" in out
    rules = next(i for i, line in enumerate(lines) if line.split() == ["ACTION", "RULE", "FROM", "APPLIES"])
    rule = lines[rules + 1]
    assert rule.startswith("  approve  high-risk-needs-your-approval  ") and rule.endswith("  always")
    assert "\x1b[33mapprove\x1b[0m" in out
    pcode, pout, _ = piped(argv, env)
    assert pcode == 0 and "\x1b" not in pout
    assert re.search(r"^  \* author      high     the tool's _meta \S+; sends mail in your name$", pout, re.M), pout
    assert re.search(r"^  approve  high-risk-needs-your-approval  \S+default\.yaml:\d+ rules\[0\]  \[always\]$", pout, re.M)

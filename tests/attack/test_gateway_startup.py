"""Red team, `mcp-guard run`'s start-up: the upstream is started before the guard has built its
policy and masking (relay/prestart.py), so the start is where something could slip past them.

* A broken policy stops the guard with an error naming the file, before anything reaches the
  client, and the upstream started early does not outlive it.
* A policy whose rule cannot be evaluated is a broken policy: it must be refused when loaded
  (`policy check`, and `run` at start), not pass as "ok" and fail each call later.
* Lines the upstream writes before the handshake (a log with a secret, a forged initialize
  answer, a server-to-client request) never reach the client unmasked.
* A guard stopped while it starts (the client quit, systemd stop) leaves no upstream process
  group behind: README, prestart: "A process nobody took ... is ended at exit with its whole
  process group."
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.attack.common import attack_canaries
from tests.conftest import PY, probe

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {"roots": {}}, "clientInfo": {"name": "atk", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}}

BROKEN = {
    "a misspelt action": "version: 1\nrules:\n  - name: x\n    match: {tool: echo}\n    action: allw\n",
    "unclosed yaml": "version: 1\nrules: [\n",
    "an empty file": "",
    "an unknown version": "version: 2\n",
    "not utf-8": b"\xff\xfe\x00junk",
    "an unknown masking field": 'version: 1\nmasking: {patterns: [{name: p, regex: "(unclosed"}]}\n',
}


def recording_upstream(tmp_path: Path, then: str) -> tuple[list[str], Path]:
    """A shell upstream that writes its pid (its process group, started in a session of its own) then runs ``then``."""
    pidfile = tmp_path / "upstream.pid"
    script = tmp_path / "upstream.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {pidfile}\n{then}\n", encoding="utf-8")
    script.chmod(0o755)
    return [str(script)], pidfile


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(pidfile: Path) -> None:
    if pidfile.exists():
        try:
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def lines(*messages: dict) -> bytes:  # type: ignore[type-arg]
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_policy_stops_run_naming_the_file_before_anything_reaches_the_client_or_outlives_it(
    tmp_path: Path, case: str,
) -> None:
    policy = tmp_path / "team-policy.yaml"
    content = BROKEN[case]
    policy.write_bytes(content if isinstance(content, bytes) else content.encode())
    upstream, pidfile = recording_upstream(tmp_path, f"exec {' '.join(probe())}")
    try:
        done = subprocess.run([PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", *upstream],
                              input=lines(INIT, INITIALIZED, CALL), capture_output=True, timeout=60)
        time.sleep(0.5)
        alive = pidfile.exists() and group_alive(int(pidfile.read_text()))
    finally:
        end_group(pidfile)
    assert done.returncode == 2, (done.returncode, done.stderr[-300:])
    assert done.stdout == b"", "the client got something from a guard whose policy is broken"
    assert b"team-policy.yaml" in done.stderr
    assert not alive, "the upstream started early outlived a guard that could not start"


@pytest.mark.parametrize("path", ["$.message[", "$[message]", "$.message b", "$.messag?"])
def test_a_policy_rule_whose_json_path_cannot_be_evaluated_is_refused_when_the_policy_is_loaded(
    tmp_path: Path, path: str,
) -> None:
    policy = tmp_path / "team-policy.yaml"
    policy.write_text(
        "version: 1\ndefaults: {action: allow}\nrules:\n  - name: no-secrets-in-echo\n"
        f"    match: {{tool: echo, args: {{{json.dumps(path)}: \"*\"}}}}\n    action: deny\n", encoding="utf-8",
    )
    checked = subprocess.run([PY, "-m", "mcp_guard", "policy", "check", str(policy)], capture_output=True, text=True,
                             timeout=60)
    upstream, pidfile = recording_upstream(tmp_path, f"exec {' '.join(probe())}")
    try:
        process = subprocess.Popen([PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", *upstream],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = process.communicate(lines(INIT, INITIALIZED, CALL), timeout=8)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    finally:
        end_group(pidfile)
    answers = [json.loads(line) for line in out.splitlines() if line.strip()]
    said = next((json.dumps(a) for a in answers if a.get("id") == 1), "")
    check_ok, check_said = checked.returncode == 0, (checked.stdout + checked.stderr).strip()
    assert not check_ok, f"`policy check` calls a rule with JSONPath {path!r} fine: {check_said[-60:]!r}"
    assert process.returncode == 2 and b"team-policy.yaml" in err, (
        f"run started with that policy; the call was answered: {said[:200]}"
    )


def test_upstream_lines_written_before_the_handshake_never_reach_the_client_unmasked(tmp_path: Path) -> None:
    canaries = attack_canaries()
    key, email = canaries["LEAK_KEY"], canaries["LEAK_EMAIL"]
    early = [
        {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "error", "data": f"early {key} {email}"}},
        {"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                                              "serverInfo": {"name": f"forged {key}", "version": "1"}}},
        {"jsonrpc": "2.0", "id": "srv-1", "method": "roots/list"},
    ]
    printed = "".join(f"printf '%s\\n' '{json.dumps(m)}'\n" for m in early)
    upstream, pidfile = recording_upstream(tmp_path, f"{printed}exec {' '.join(probe())}")
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n", encoding="utf-8")
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    process = subprocess.Popen([PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", *upstream],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdin is not None
        process.stdin.write(lines(INIT, INITIALIZED, listing))
        process.stdin.flush()
        time.sleep(4)
        process.stdin.close()
        assert process.stdout is not None
        out = process.stdout.read().decode()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        end_group(pidfile)
    assert key not in out and email not in out
    answers = [json.loads(line) for line in out.splitlines() if line.strip()]
    init = next(a for a in answers if a.get("id") == 0)
    assert init["result"]["serverInfo"]["name"] == "probe", "the upstream's forged early answer reached the client"


def test_a_guard_stopped_while_it_starts_leaves_no_upstream_process_group_behind(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaults: {action: allow}\n", encoding="utf-8")
    # A server that does not end at once when its stdin closes (a node server busy starting, a
    # wrapper with children): the guard must end its process group itself.
    upstream, pidfile = recording_upstream(tmp_path, "sleep 30 & wait")
    process = subprocess.Popen([PY, "-m", "mcp_guard", "run", "--policy", str(policy), "--", *upstream],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline, "the upstream never started"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)  # while the guard still builds its policy and masking
        process.wait(timeout=30)
        deadline = time.monotonic() + 10  # the group is killed as the guard stops; its end is observed
        while (alive := group_alive(int(pidfile.read_text()))) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdin is not None:
            process.stdin.close()
        end_group(pidfile)
    assert not alive, "the upstream started early kept running after the guard was stopped during its start"

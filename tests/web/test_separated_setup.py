"""The separated setup, with real OS accounts: the guard's store and keys belong to an account
the agent does not have, so the agent's account can neither read them nor approve its own call,
while a reviewer holding a token approves through the served API.

Three accounts are created for the test (it needs root for `useradd` and to start processes as
them): the guard's, the agent's and a reviewer's. The guard runs `mcp-guard serve` as its own
account with a 0700 home; everything the agent tries runs as the agent's account.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp import Client
from tests.conftest import ROOT, free_port, node_server

pytestmark = pytest.mark.anyio

POLICY = """version: 1
defaults: {timeout: 120}
groups: {secops: [alice]}
rules:
  - name: writes-are-reviewed
    match: {tool: write_file}
    action: approve
    approvers: reviewers
    group: secops
"""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int

    def run(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``argv`` as this account (its own uid and gid, no supplementary groups)."""
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=clean_env(env),
            user=self.uid, group=self.gid, extra_groups=[], cwd="/",
        )

    def guard(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(PY, "-m", "mcp_guard", *args, env=env)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: nothing of the test runner's (its MCP_GUARD_HOME above all) leaks in."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    return {**env, **PYTHON_ENV, **(extra or {})}


def _reachable(path: Path, itself: bool = True) -> bool:
    """Whether any account may reach ``path``: it (unless not ``itself``) and every directory above
    it are searchable by others."""
    real = Path(os.path.realpath(path))
    return all(p.stat().st_mode & 0o001 for p in ((real, *real.parents) if itself else real.parents))


@contextmanager
def _checkout_opened() -> Iterator[None]:
    """A clone made by ``mktemp -d`` is 0700: while the test runs, other accounts may read and
    traverse it (Python's importer lists the folders on its path), so they can import this checkout
    and its venv; then it is closed again."""
    real = Path(os.path.realpath(ROOT))
    mode = stat.S_IMODE(real.stat().st_mode)
    if mode & 0o005 != 0o005:
        real.chmod(mode | 0o005)
    try:
        yield
    finally:
        real.chmod(mode)


def _python() -> tuple[str, dict[str, str]]:
    """An interpreter the other accounts can run, with this checkout and its packages importable.

    The test's own interpreter may live under root's private home (pyenv); then the system's
    Python of the same minor version runs the same code from the worktree and the venv."""
    if _reachable(Path(sys.executable)):
        return sys.executable, {}
    system = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    if system is None or not _reachable(Path(system)):
        return "", {}
    paths = [str(ROOT), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    return system, {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


PY, PYTHON_ENV = _python()


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("creating OS accounts for the separated setup needs root (useradd); run as root to include it")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel are not installed")
    if not PY or not _reachable(ROOT, itself=False):
        pytest.skip(f"no Python that other accounts may run, or a folder above {ROOT} is private to root")


@pytest.fixture
def accounts() -> Iterator[dict[str, Account]]:
    need_root()
    tag = secrets.token_hex(3)
    made: dict[str, Account] = {}
    with _checkout_opened():
        yield from _made_accounts(tag, made)


def _made_accounts(tag: str, made: dict[str, Account]) -> Iterator[dict[str, Account]]:
    import pwd

    try:
        for role in ("guard", "agent", "reviewer"):
            name = f"mg{role[:3]}{tag}"
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                           capture_output=True, timeout=30)
            entry = pwd.getpwnam(name)
            made[role] = Account(name, entry.pw_uid, entry.pw_gid)
        yield made
    finally:
        for account in made.values():
            subprocess.run(["userdel", account.name], capture_output=True, timeout=30)


@pytest.fixture
def layout(accounts: dict[str, Account]) -> Iterator[dict[str, Path]]:
    """A world-traversable base (pytest's tmp_path is root's 0700) with one private corner per account."""
    base = Path(tempfile.mkdtemp(prefix="mcp-guard-separated-", dir="/tmp"))
    try:
        base.chmod(0o755)
        paths = {"base": base, "home": base / "guard-home", "work": base / "work", "reviewer": base / "reviewer"}
        for key, owner in (("home", "guard"), ("work", "guard"), ("reviewer", "reviewer")):
            paths[key].mkdir(mode=0o700)
            os.chown(paths[key], accounts[owner].uid, accounts[owner].gid)
            paths[key].chmod(0o700)
        paths["policy"] = base / "reviewed.yaml"
        paths["policy"].write_text(POLICY)
        paths["policy"].chmod(0o644)
        yield paths
    finally:
        shutil.rmtree(base, ignore_errors=True)


@asynccontextmanager
async def served(guard: Account, paths: dict[str, Path], port: int) -> AsyncIterator[str]:
    """`mcp-guard serve` as the guard's account; the agent is the requester."""
    argv = [PY, "-m", "mcp_guard", "serve", "--policy", str(paths["policy"]), "--home", str(paths["home"]), "--port", str(port),
            "--", *node_server("server-filesystem", str(paths["work"]))]
    process = await anyio.open_process(argv, env=clean_env({"MCP_GUARD_USER": "agent"}), user=guard.uid, group=guard.gid,
                                       extra_groups=[], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    base = f"http://127.0.0.1:{port}"
    try:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                while True:
                    try:
                        await http.get(f"{base}/healthz", timeout=1)
                        break
                    except httpx.HTTPError:
                        await anyio.sleep(0.05)
        yield base
    finally:
        process.terminate()
        with anyio.move_on_after(5, shield=True):
            await process.wait()
        if process.returncode is None:
            process.kill()


async def pending_id(reviewer: Account, base: str, token_file: Path) -> str:
    """The waiting request, as the reviewer sees it through the served API."""
    import json

    while True:
        listed = await anyio.to_thread.run_sync(
            lambda: reviewer.guard("review", "list", "--url", base, "--token-file", str(token_file), "--json")
        )
        assert listed.returncode == 0, listed.stderr
        items = json.loads(listed.stdout)
        if items:
            return str(items[0]["id"])
        await anyio.sleep(0.1)


def agent_attempts(agent: Account, paths: dict[str, Path], base: str, rid: str, token_file: Path) -> None:
    """Everything a shell-capable agent could try from its own account; each must fail."""
    home = str(paths["home"])
    for secret in ("guard.db", "web.key", "audit.key"):
        read = agent.run("cat", f"{home}/{secret}")
        assert read.returncode != 0 and "Permission denied" in read.stderr, (secret, read)
    assert agent.run("ls", home).returncode != 0
    assert agent.run("cat", str(token_file)).returncode != 0  # the reviewer's token file is the reviewer's
    listed = agent.guard("review", "list", "--home", home)
    assert listed.returncode != 0 and "cannot open the mcp-guard store" in listed.stderr, listed
    minted = agent.guard("review", "token", "create", "mallory", "--role", "admin", "--home", home)
    assert minted.returncode != 0 and "mgr_" not in minted.stdout
    typed = agent.guard("review", "approve", rid, "--as", "alice", "--home", home)
    assert typed.returncode == 2 and "reviewer token" in typed.stderr  # a name is no credential
    local = agent.guard("review", "approve", rid, "--home", home, env={"MCP_GUARD_REVIEW_TOKEN": "mgr_" + "A" * 43})
    assert local.returncode != 0
    remote = agent.guard("review", "approve", rid, "--url", base, env={"MCP_GUARD_REVIEW_TOKEN": "mgr_" + "A" * 43})
    assert remote.returncode == 1 and "reviewer token is required" in remote.stderr, remote
    stolen = agent.guard("review", "approve", rid, "--url", base, "--token-file", str(token_file))
    assert stolen.returncode == 2 and "cannot read it" in stolen.stderr


async def test_the_agents_account_cannot_approve_while_a_reviewer_with_a_token_can(
    accounts: dict[str, Account], layout: dict[str, Path]
) -> None:
    guard, agent, reviewer = accounts["guard"], accounts["agent"], accounts["reviewer"]
    made = guard.guard("review", "token", "create", "alice", "--role", "secops", "--home", str(layout["home"]))
    assert made.returncode == 0, made.stderr
    token_file = layout["reviewer"] / "token"
    token_file.write_text(made.stdout.strip() + "\n")
    os.chown(token_file, reviewer.uid, reviewer.gid)
    token_file.chmod(0o600)
    target = layout["work"] / "out.txt"
    result: list[Any] = []
    port = free_port()
    async with served(guard, layout, port) as base:
        with anyio.fail_after(90):
            async with Client(f"{base}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]

                async def call() -> None:
                    result.append(await client.call_tool("write_file", {"path": str(target), "content": "reviewed"}))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    rid = await pending_id(reviewer, base, token_file)
                    shown = reviewer.guard("review", "show", rid, "--url", base, "--token-file", str(token_file))
                    assert shown.returncode == 0 and str(target) in shown.stdout, shown  # decided on what was seen
                    await anyio.to_thread.run_sync(agent_attempts, agent, layout, base, rid, token_file)
                    assert await pending_id(reviewer, base, token_file) == rid  # still waiting: nothing was decided
                    done = await anyio.to_thread.run_sync(
                        lambda: reviewer.guard("review", "approve", rid, "--url", base, "--token-file", str(token_file))
                    )
                    assert done.returncode == 0, done.stderr
    assert not result[0].is_error, result[0]
    assert target.read_text() == "reviewed"
    assert target.stat().st_uid == guard.uid  # the upstream ran as the guard's account, not the agent's

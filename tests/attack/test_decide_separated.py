"""Red team, who decides, in the separated setup with real OS accounts: the guard's state stays
the guard's even when its home directory was left readable (as `useradd --create-home` or a
`mkdir` under umask 022 leave it): what the guard writes there is its own, like ssh's keys."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import pytest

from mcp import Client
from tests.conftest import free_port
from tests.web.test_separated_setup import Account, accounts, layout, served  # noqa: F401  (fixtures)

pytestmark = pytest.mark.anyio


async def test_the_guards_store_is_not_readable_by_the_agent_even_in_a_home_left_open(
    accounts: dict[str, Account],
    layout: dict[str, Path],  # noqa: F811
) -> None:
    guard, agent = accounts["guard"], accounts["agent"]
    home = layout["home"]
    home.chmod(0o755)  # the operator skipped README's `chmod 700`
    old = os.umask(0o022)
    try:
        made = guard.guard("review", "token", "create", "alice", "--role", "secops", "--home", str(home))
        assert made.returncode == 0, made.stderr
        port = free_port()
        async with served(guard, layout, port) as base:
            with anyio.fail_after(60):
                async with Client(f"{base}/mcp", mode="legacy", cache=None) as client:  # type: ignore[arg-type]
                    await client.list_tools()
            exposed = []
            for path in sorted(home.rglob("*")):
                if path.is_file() and path.stat().st_mode & (stat.S_IROTH | stat.S_IWOTH):
                    read = agent.run("dd", f"if={path}", "of=/dev/null", "count=1")
                    if read.returncode == 0:
                        exposed.append(path.name)
    finally:
        os.umask(old)
    assert exposed == [], f"the agent's account read the guard's {exposed}"

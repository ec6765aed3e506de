"""Two ``mcp-guard serve`` instances on one PostgreSQL store, behind a real HAProxy.

The load balancer runs the shipped example config (examples/deploy/haproxy.cfg): its
``defaults`` and ``backend`` sections as written, the guards' addresses and the public name
swapped for loopback ones, under a ``global`` and a plain-HTTP ``frontend`` of the test's own
(the example's frontend ends TLS on :443). So the stickiness, retry and health-check lines the
tests prove are the ones an operator deploys.

Each instance has its own home, as on two machines, sharing the audit key (the store's docs
ask for that). The upstream (fixtures/instance_server.py) inherits ``GUARD_INSTANCE`` from its
guard, so every answer says which instance ran it, and appends each ``run_once`` to one log.
Without HAProxy on the machine the tests skip with the install step.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx

from tests.conftest import FIXTURES, PY, ROOT, free_port, missing

EXAMPLE = ROOT / "examples" / "deploy" / "haproxy.cfg"
PUBLIC_NAME = "mcp.example.org"
# Starting a guard imports the SDK and opens the store: well under this on a loaded machine.
START_S = 60.0
# The example checks every 2 s; the tests take instances down and need HAProxy to notice soon.
# A killed instance refuses the check's connection at once (three in 0.6 s); a live one on a loaded
# machine may answer /healthz late, which must not take it out (its sessions would then get 404s).
CHECK_LINE = "default-server check inter 200ms fall 3 rise 1\n    timeout check 3s"


def haproxy() -> str:
    path = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.path.exists(p)), None)
    if path is None:
        missing("HAProxy", "apt-get install haproxy (Debian; .ci/run does)")
    return str(path)


@dataclass
class Instance:
    name: str
    home: Path
    port: int
    process: anyio.abc.Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> int:
        """SIGKILL, as a crash or the OOM killer would: nothing of the guard's shutdown runs."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        return self.process.pid


@dataclass
class Gateway:
    lb_port: int
    store_url: str
    run_log: Path
    lb_socket: Path
    instances: dict[str, Instance] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}/mcp"

    def runs(self) -> list[dict[str, str]]:
        import json

        return [json.loads(line) for line in self.run_log.read_text().splitlines()]

    def stick_entries(self) -> int:
        """How many session ids HAProxy's stick table holds (asked on its admin socket)."""
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.lb_socket))
            sock.sendall(b"show table mcp_guard\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        found = re.search(rb"used:(\d+)", answer)
        assert found, answer
        return int(found.group(1))

    def cli(self, instance: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``mcp-guard ARGS`` on the machine of ``instance`` (its home) against the shared store."""
        home = self.instances[instance].home
        argv = [PY, "-m", "mcp_guard", *args, "--home", str(home), "--store", self.store_url]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def lb_config(lb_port: int, servers: dict[str, int], socket_path: Path) -> str:
    """The example config made local: see the module docstring."""
    sections = _sections(EXAMPLE.read_text())
    backend = sections["backend mcp_guard"].replace(PUBLIC_NAME, f"127.0.0.1:{lb_port}")
    backend = re.sub(r"^\s*server .*\n", "", backend, flags=re.M)
    backend = re.sub(r"^\s*default-server .*$", f"    {CHECK_LINE}", backend, flags=re.M)
    backend += "".join(f"    server guard-{name} 127.0.0.1:{port}\n" for name, port in servers.items())
    head = f"global\n    nbthread 1\n    stats socket {socket_path} mode 600 level admin\n\n"
    front = f"frontend mcp\n    bind 127.0.0.1:{lb_port}\n    default_backend mcp_guard\n\n"
    return head + sections["defaults"] + "\n" + front + backend  # defaults apply to the sections after them


def _sections(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    name = ""
    for line in text.splitlines(keepends=True):
        if line.strip().startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            name = line.strip()
            found[name] = ""
        found[name] += line
    return found


async def _wait_ok(url: str, process: anyio.abc.Process, what: str, host: str | None = None) -> None:
    headers = {"Host": host} if host else {}
    with anyio.fail_after(START_S):
        async with httpx.AsyncClient() as http:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"{what} exited with status {process.returncode} before it answered")
                try:
                    if (await http.get(url, timeout=2, headers=headers)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await anyio.sleep(0.05)


@asynccontextmanager
async def _process(argv: list[str], env: dict[str, str], log: Path) -> AsyncIterator[anyio.abc.Process]:
    with log.open("wb") as err:
        process = await anyio.open_process(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=err)
        try:
            yield process
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    try:
                        process.terminate()
                    except ProcessLookupError:
                        pass
                    with anyio.move_on_after(10):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()


@asynccontextmanager
async def open_gateway(
    tmp_path: Path, store_url: str, policy: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Gateway]:
    """Two guards (``a``, ``b``) and HAProxy in front, all stopped on exit."""
    binary = haproxy()
    gateway = Gateway(free_port(), store_url, tmp_path / "runs.jsonl", tmp_path / "haproxy.sock")
    gateway.run_log.touch()
    # Instances sharing a store share its key files (the README's deployment copies them).
    keys = {name: os.urandom(32).hex() for name in ("audit.key", "web.key")}
    for name in ("a", "b"):
        home = tmp_path / f"home-{name}"
        home.mkdir()
        for file, key in keys.items():
            (home / file).write_text(key)
        gateway.instances[name] = Instance(name, home, free_port())
    async with AsyncExitStack() as stack:
        for instance in gateway.instances.values():
            argv = [
                PY, "-m", "mcp_guard", "serve", "--home", str(instance.home),
                "--policy", str(policy), "--port", str(instance.port), "--allowed-host", f"127.0.0.1:{gateway.lb_port}",
                "--", PY, str(FIXTURES / "instance_server.py"),
            ]
            # The store as the deployment gives it: in the environment (never argv, which `ps` shows).
            # And the review page's public address, which is not the address the instance binds.
            facts = {"GUARD_INSTANCE": instance.name, "RUN_LOG": str(gateway.run_log), "MCP_GUARD_USER": "carol",
                     "MCP_GUARD_STORE": store_url, "MCP_GUARD_INSTANCE": f"guard-{instance.name}",
                     "MCP_GUARD_REVIEW_URL": f"http://127.0.0.1:{gateway.lb_port}/review", **(env or {})}
            log = tmp_path / f"serve-{instance.name}.log"
            instance.process = await stack.enter_async_context(_process(argv, facts, log))
        for instance in gateway.instances.values():
            assert instance.process is not None
            await _wait_ok(f"{instance.base}/healthz", instance.process, f"serve {instance.name}")
        config = tmp_path / "haproxy.cfg"
        ports = {name: i.port for name, i in gateway.instances.items()}
        config.write_text(lb_config(gateway.lb_port, ports, gateway.lb_socket))
        lb = await stack.enter_async_context(_process([binary, "-db", "-f", str(config)], {}, tmp_path / "haproxy.log"))
        await _wait_ok(f"http://127.0.0.1:{gateway.lb_port}/healthz", lb, "haproxy")
        yield gateway


def text_of(result: Any) -> str:
    return str(result.content[0].text)

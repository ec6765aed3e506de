"""Many concurrent sessions through one real ``mcp-guard serve``: throughput, latency, memory, correctness.

    python benchmarks/serve_load.py [--sessions 200] [--calls 20] [--era legacy,modern]
                                    [--upstream isolated|shared] [--policy FILE] [--auth none|tokens|oidc]
    python benchmarks/serve_load.py --sessions 500 --calls 50          # the figure issue 17 asks for

Each of N sessions opens (handshake era: ``initialize``, ``notifications/initialized``; 2026-07-28:
no handshake, every request a stateless exchange), then all make M sequential ``tools/call echo``
at once, each echoing ``<session nonce>/<call number>``. Every answer is checked: an answer that
is missing, an error, or not exactly what that session sent is *lost*; one that carries another
session's nonce is *crossed*. Either makes the script exit 1.

The upstream is ``fixtures/echo_server.py``, a stdio server in plain Python without the SDK (a few
MB per process, microseconds per call), so the guard is what is measured. With the default
isolation each handshake-era session starts its own process (500 sessions: 500 processes, as a
real gateway with per-session isolation would run); ``--upstream shared`` declares it
``"isolation": "shared"`` instead, one process for everyone, which shows the front alone.
2026-07-28 exchanges share the guard's stateless hub, so they use one process either way.

The load generator (benchmarks/rawhttp.py: one keep-alive connection per session, asyncio on
uvloop, hand-written HTTP/1.1) runs in this process; its CPU per call is printed so its share of
the 2 cores is known. The baseline, measured in the same run against the same ``serve``, is one
session making calls one after another: the ratios say what concurrency does to per-call
latency and throughput. Printed per era: p50/p99 per call, calls/s, the guard's and the
generator's CPU per call, the guard's RSS growth per open session, and the upstream processes.

``--auth tokens`` starts ``serve --auth tokens`` and creates ``--callers`` guard tokens with
``mcp-guard auth token create``; sessions take them in turn, each request sends its caller's
``Authorization: Bearer``. ``--auth oidc`` starts the real OpenID provider of the tests
(fixtures/oidc/provider.mjs, npm oidc-provider) and ``serve --auth oidc`` against it, and mints
``--callers`` RS256 access tokens for this serve's resource: every request is a JWT checked
against the provider's keys (fetched once: the warm state). Either way the same run first
measures ``--auth none``, and prints what authentication added.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.procstat import children, cpu_s, free_port, proc_status, rss_mb  # noqa: E402
from benchmarks.rawhttp import Connection  # noqa: E402

MODERN = "2026-07-28"
NS = "io.modelcontextprotocol/"
ECHO = ROOT / "fixtures" / "echo_server.py"
# A call that takes longer than this is counted as lost (the guard's own upstream timeout is 60 s).
CALL_TIMEOUT_S = 60.0
ACCEPT = "application/json, text/event-stream"  # what the SDK clients send: answers come as SSE


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # ms per call
    lost: int = 0
    crossed: int = 0
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0


@dataclass
class LoadSession:
    """One client session of the load: its connection, nonce, session id and caller token."""

    index: int
    conn: Connection
    token: str | None
    nonce: str = field(default_factory=lambda: f"n{secrets.token_hex(6)}")
    sid: str | None = None
    rid: int = 0

    def headers(self, modern: bool, message: dict[str, Any] | None = None) -> dict[str, str]:
        out = {"Content-Type": "application/json", "Accept": ACCEPT}
        if modern:
            out["Mcp-Protocol-Version"] = MODERN
            if message is not None:  # 2026-07-28 mirrors the method (and a call's tool name) in headers
                out["Mcp-Method"] = message["method"]
                if message["method"] == "tools/call":
                    out["Mcp-Name"] = message["params"]["name"]
        elif self.sid:
            out["Mcp-Session-Id"] = self.sid
            out["Mcp-Protocol-Version"] = "2025-11-25"
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    def message(self, method: str, params: dict[str, Any] | None, modern: bool) -> dict[str, Any]:
        self.rid += 1
        if modern:
            meta = {NS + "protocolVersion": MODERN, NS + "clientCapabilities": {},
                    NS + "clientInfo": {"name": "serve-load", "version": "1"}}
            params = {**(params or {}), "_meta": meta}
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": self.rid, "method": method}
        if params is not None:
            out["params"] = params
        return out


async def open_session(s: LoadSession, modern: bool) -> None:
    """The handshake-era opening (a 2026-07-28 session has none)."""
    if modern:
        return
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "serve-load", "version": "1"}}
    answer = await s.conn.request("POST", "/mcp", s.message("initialize", init, False), s.headers(False))
    s.sid = answer.headers.get("mcp-session-id")
    if answer.status != 200 or not s.sid:
        raise RuntimeError(f"initialize answered {answer.status} without a session id")
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    answer = await s.conn.request("POST", "/mcp", note, s.headers(False))
    if answer.status != 202:
        raise RuntimeError(f"notifications/initialized answered {answer.status}")


async def one_call(s: LoadSession, number: int, modern: bool, nonces: dict[str, int], stats: Stats) -> None:
    text = f"{s.nonce}/{number}"
    message = s.message("tools/call", {"name": "echo", "arguments": {"message": text}}, modern)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            answer = await s.conn.request("POST", "/mcp", message, s.headers(modern, message))
    except (TimeoutError, OSError, ValueError) as exc:
        stats.lost += 1
        stats.errors.append(f"session {s.index} call {number}: {type(exc).__name__} {exc}")
        return
    stats.latencies.append((time.perf_counter() - t0) * 1000)
    reply = next((m for m in answer.messages if m.get("id") == message["id"] and "method" not in m), None)
    got = _echoed(reply)
    if got == text:
        return
    stats.lost += 1
    owner = nonces.get(got.split("/")[0]) if isinstance(got, str) else None
    if owner is not None and owner != s.index:
        stats.crossed += 1
    detail = json.dumps(reply)[:300] if reply is not None else f"HTTP {answer.status}, no answer"
    stats.errors.append(f"session {s.index} call {number}: {detail}")


def _echoed(reply: dict[str, Any] | None) -> str | None:
    if reply is None or not isinstance(reply.get("result"), dict):
        return None
    content = reply["result"].get("content") or [{}]
    return content[0].get("text") if isinstance(content[0], dict) else None


async def run_session(s: LoadSession, calls: int, modern: bool, start: asyncio.Event, nonces: dict[str, int],
                      stats: Stats) -> None:
    await start.wait()
    for number in range(calls):
        if isinstance(s, SdkSession):
            await sdk_call(s, number, nonces, stats)
        else:
            await one_call(s, number, modern, nonces, stats)


class SdkSession(LoadSession):
    """A session driven by the MCP SDK's own client (``--client sdk``), as applications would.

    Heavier than the raw generator (httpx and pydantic per call), which is the point: it shows
    how much of a measured figure is the generator's."""

    client: Any = None

    async def open(self, port: int, modern: bool) -> None:
        from mcp import Client

        self.client = Client(f"http://127.0.0.1:{port}/mcp", mode=MODERN if modern else "legacy", cache=None)
        await self.client.__aenter__()

    async def call(self, text: str) -> str | None:
        result = await self.client.call_tool("echo", {"message": text})
        return getattr(result.content[0], "text", None) if result.content else None

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.__aexit__(None, None, None)


async def sdk_call(s: SdkSession, number: int, nonces: dict[str, int], stats: Stats) -> None:
    text = f"{s.nonce}/{number}"
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            got = await s.call(text)
    except Exception as exc:  # the SDK raises its own errors for error answers
        stats.lost += 1
        stats.errors.append(f"session {s.index} call {number}: {type(exc).__name__} {exc}"[:300])
        return
    stats.latencies.append((time.perf_counter() - t0) * 1000)
    if got != text:
        stats.lost += 1
        owner = nonces.get(got.split("/")[0]) if isinstance(got, str) else None
        stats.crossed += owner is not None and owner != s.index
        stats.errors.append(f"session {s.index} call {number}: got {got!r}"[:300])


async def close_session(s: LoadSession) -> None:
    if isinstance(s, SdkSession):
        await s.aclose()
        return
    if s.sid:
        try:
            await s.conn.request("DELETE", "/mcp", None, s.headers(False))
        except OSError:
            pass
    await s.conn.close()


@dataclass
class Phase:
    sessions: int
    calls: int
    wall: float
    stats: Stats
    guard_cpu_ms: float
    gen_cpu_ms: float
    upstream_cpu_ms: float
    rss_before: float
    rss_open: float
    upstreams: int
    upstream_rss: float
    rss_after: float = 0.0  # once the calls are done, before the sessions close
    peak: float = 0.0  # the guard's peak RSS so far (VmHWM)


async def phase(port: int, pid: int, n: int, calls: int, modern: bool, tokens: list[str], sdk: bool = False) -> Phase:
    """Open ``n`` sessions, run ``calls`` calls in each at once, close them; measured between."""
    kind = SdkSession if sdk else LoadSession
    sessions = [kind(i, Connection("127.0.0.1", port), tokens[i % len(tokens)] if tokens else None) for i in range(n)]
    nonces = {s.nonce: s.index for s in sessions}
    rss_before, idle_children = rss_mb(pid), len(children(pid))
    if sdk:
        for s in sessions:  # the SDK client's task groups must be entered and left in one task
            await s.open(port, modern)  # type: ignore[attr-defined]
    else:
        await asyncio.gather(*(open_session(s, modern) for s in sessions))
    rss_open = rss_mb(pid)
    ups = children(pid)
    stats, start = Stats(), asyncio.Event()
    tasks = [asyncio.create_task(run_session(s, calls, modern, start, nonces, stats)) for s in sessions]
    await asyncio.sleep(0)  # every session waits at the start line
    cpu0, gen0, up0 = cpu_s(pid), time.process_time(), sum(cpu_s(c) for c in ups)
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    total = max(n * calls, 1)
    guard_cpu, gen_cpu = (cpu_s(pid) - cpu0) * 1000 / total, (time.process_time() - gen0) * 1000 / total
    up_cpu = (sum(cpu_s(c) for c in ups) - up0) * 1000 / total
    up_rss = sum(rss_mb(c) for c in ups)
    rss_after, peak = rss_mb(pid), proc_status(pid, "VmHWM:")
    stats.reconnects = sum(s.conn.reconnects for s in sessions)
    if sdk:
        for s in reversed(sessions):  # left in the task that entered them
            await close_session(s)
    else:
        await asyncio.gather(*(close_session(s) for s in sessions))
    if not modern:  # 2026-07-28 exchanges keep the stateless hub's process, and start none per session
        await settled(pid, before=idle_children)
    return Phase(n, calls, wall, stats, guard_cpu, gen_cpu, up_cpu, rss_before, rss_open, len(ups), up_rss,
                 rss_after, peak)


async def settled(pid: int, before: int) -> None:
    """Until the closed sessions' upstream processes are gone (at most 60 s), so they do not load the next phase."""
    deadline = time.monotonic() + 60
    while len(children(pid)) > before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def write_config(home: Path, shared: bool) -> Path:
    entry: dict[str, Any] = {"command": sys.executable, "args": [str(ECHO)]}
    if shared:
        entry["isolation"] = "shared"
    path = home / "serve-load.json"
    path.write_text(json.dumps({"mcpServers": {"echo": entry}}))
    return path


def create_tokens(env: dict[str, str], count: int) -> list[str]:
    """Guard tokens for ``count`` callers (``mcp-guard auth token create``: the token is printed once)."""
    tokens = []
    for i in range(count):
        done = subprocess.run([sys.executable, "-m", "mcp_guard", "auth", "token", "create", f"load-{i}"],
                              env=env, capture_output=True, text=True, check=False)
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"mcp-guard auth token create failed ({done.returncode}): {done.stderr.strip()[:500]}")
        tokens.append(lines[-1].split()[-1])
    return tokens


async def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(60):
        while True:
            if process.poll() is not None:
                raise SystemExit(f"serve exited with {process.returncode}")
            conn = Connection("127.0.0.1", port)
            try:
                answer = await conn.request("GET", "/healthz", None, {})
                if answer.status == 200:
                    return
            except OSError:
                pass
            finally:
                await conn.close()
            await asyncio.sleep(0.1)


# -- report ---------------------------------------------------------------------------------------------


def figures(p: Phase) -> dict[str, float]:
    times = sorted(p.stats.latencies) or [0.0]
    return {
        "p50": statistics.median(times),
        "p99": times[max(int(len(times) * 0.99) - 1, 0)],
        "rate": p.sessions * p.calls / p.wall if p.wall else 0.0,
    }


def report(era: str, base: Phase, load: Phase) -> None:
    b, f = figures(base), figures(load)
    print(f"\n{era}: {load.sessions} sessions x {load.calls} calls against a baseline of 1 session x {base.calls}")
    print(f"{'':<22}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}{'guard CPU ms/call':>19}{'generator CPU ms/call':>23}")
    for label, p, x in (("baseline (1 session)", base, b), (f"load ({load.sessions} sessions)", load, f)):
        print(f"{label:<22}{x['p50']:>9.2f}{x['p99']:>9.2f}{x['rate']:>9.0f}{p.guard_cpu_ms:>19.3f}{p.gen_cpu_ms:>23.3f}")
    print(f"ratios load/baseline: p50 {f['p50'] / b['p50']:.2f}x, p99 {f['p99'] / b['p99']:.2f}x, "
          f"calls/s {f['rate'] / b['rate']:.2f}x")
    grown = (load.rss_open - load.rss_before) / load.sessions
    print(f"guard RSS {load.rss_before:.0f} MB before, {load.rss_open:.0f} MB with the sessions open: "
          f"{grown * 1024:.0f} KB per session, {load.rss_after:.0f} MB after the calls (peak {load.peak:.0f} MB); "
          f"{load.upstreams} upstream processes, {load.upstream_rss:.0f} MB RSS in all, "
          f"{load.upstream_cpu_ms:.3f} ms upstream CPU per call")
    s = load.stats
    print(f"answers: {len(s.latencies)} of {load.sessions * load.calls} came back; lost {s.lost + base.stats.lost}, "
          f"crossed {s.crossed + base.stats.crossed}, stale keep-alive reconnects {s.reconnects}")
    for line in (base.stats.errors + s.errors)[:5]:
        print(f"  {line}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--baseline-calls", type=int, default=400, help="sequential calls of the one-session baseline")
    parser.add_argument("--era", default="legacy,modern", help="legacy (handshake era), modern (2026-07-28), or both")
    parser.add_argument("--upstream", choices=("isolated", "shared"), default="isolated")
    parser.add_argument("--policy", help="a policy file (default: --no-policy, the relay and front alone)")
    parser.add_argument("--auth", choices=("none", "tokens", "oidc"), default="none")
    parser.add_argument("--callers", type=int, default=20, help="distinct callers (tokens) with --auth tokens or oidc")
    parser.add_argument("--client", choices=("raw", "sdk"), default="raw",
                        help="the load generator: raw HTTP/1.1 (light) or the MCP SDK's Client (without --auth)")
    parser.add_argument("--serve-arg", action="append", default=[], help="one more argument for serve (repeatable)")
    args = parser.parse_args()
    if args.auth != "none" and args.client == "sdk":
        parser.error("--auth needs the raw client (it sends each caller's Authorization header)")
    home = Path(tempfile.mkdtemp(prefix="serve-load-"))
    extra = os.environ.get("PYTHONPATH")
    env = {**os.environ, "MCP_GUARD_HOME": str(home), "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), extra]))}
    runs = {"none": await measure_serve(args, home, env, "none", [])}
    # The same run without authentication first: the figures to compare with.
    if args.auth == "tokens":
        runs["tokens"] = await measure_serve(args, home, env, "tokens", create_tokens(env, args.callers))
    elif args.auth == "oidc":
        from tests.oidc_provider import start_provider

        port = free_port()
        audience = f"http://127.0.0.1:{port}/mcp"
        with start_provider() as provider:
            tokens = [provider.token(f"load-{i}", audience) for i in range(args.callers)]
            oidc = ["--issuer", provider.issuer, "--audience", audience]
            runs["oidc"] = await measure_serve(args, home, env, "oidc", tokens, oidc, port)
    if len(runs) > 1:
        compare_auth(runs["none"], runs[args.auth], args.auth)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; serve's stderr: {home}/serve-*.log")
    lost = [p.stats.lost + p.stats.crossed for run in runs.values() for pair in run.values() for p in pair]
    return 1 if any(lost) else 0


async def measure_serve(args: argparse.Namespace, home: Path, env: dict[str, str], auth: str, tokens: list[str],
                        auth_args: list[str] | None = None, port: int | None = None) -> dict[str, tuple[Phase, Phase]]:
    """Start one serve, run the baseline and the load in each era, stop it; (baseline, load) by era."""
    port = port or free_port()
    argv = [sys.executable, "-m", "mcp_guard", "serve", "--config", str(write_config(home, args.upstream == "shared")),
            "--port", str(port), *(["--policy", args.policy] if args.policy else ["--no-policy"]),
            *(["--auth", auth, *(auth_args or [])] if auth != "none" else []), *args.serve_arg]
    if tokens:  # each caller holds its share of the sessions at once: above serve's default cap when few callers
        argv += ["--max-sessions-per-caller", str(max(50, -(-args.sessions // len(tokens))))]
    with open(home / f"serve-{auth}.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
    out: dict[str, tuple[Phase, Phase]] = {}
    try:
        await wait_healthy(port, process)
        print(f"\nserve pid {process.pid}; load average before: {os.getloadavg()[0]:.2f}; command: {' '.join(argv[1:])}")
        for era in filter(None, args.era.split(",")):
            modern, sdk = era == "modern", args.client == "sdk"
            base = await phase(port, process.pid, 1, args.baseline_calls, modern, tokens, sdk)
            load = await phase(port, process.pid, args.sessions, args.calls, modern, tokens, sdk)
            report(f"{era}, --auth {auth}", base, load)
            out[era] = (base, load)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    return out


def compare_auth(plain: dict[str, tuple[Phase, Phase]], authed: dict[str, tuple[Phase, Phase]], auth: str) -> None:
    """What authentication added, era by era: the one-session p50 is the cleanest per-call figure."""
    print(f"\n--auth {auth} against --auth none, in this run:")
    for era, (base, load) in authed.items():
        pbase, pload = plain[era]
        b, pb, f, pf = figures(base), figures(pbase), figures(load), figures(pload)
        print(f"{era}: one session p50 {b['p50'] - pb['p50']:+.3f} ms ({pb['p50']:.3f} -> {b['p50']:.3f}); "
              f"guard CPU per call {base.guard_cpu_ms - pbase.guard_cpu_ms:+.3f} ms (one session), "
              f"{load.guard_cpu_ms - pload.guard_cpu_ms:+.3f} ms (under load); "
              f"calls/s under load {f['rate'] / pf['rate']:.2f}x")


def _run() -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


if __name__ == "__main__":
    sys.exit(_run())

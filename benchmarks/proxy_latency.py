"""Added latency of mcp-guard over a direct connection, measured in one run.

    python benchmarks/proxy_latency.py [-n 500] [--rounds 3] [--only a,b] [--mcp-proxy PATH | --setup-mcp-proxy]

Client: the MCP Python SDK, handshake era, N sequential ``tools/call echo`` after warm-up. Each call's
message carries its own counter (``--args distinct``, the default), so no cache on the guard's path can
answer from an earlier call; ``--args same`` sends one constant text, the figure a cache flatters.
Targets, all against server-everything (installed by ``npm ci``):
  direct-stdio     the client spawns the server itself (the baseline)
  bytecopy         client -> benchmarks/bytecopy_relay.py -> server: the floor for any stdio proxy
  guard-run        client -> mcp-guard run (stdio) -> server (stdio)
  guard-default    guard-run with the shipped default policy (policies/default.yaml)
  direct-http      client -> server-everything's own streamable HTTP
  guard-serve      client -> mcp-guard serve (HTTP) -> server (stdio)
  guard-policy50   guard-run with a 50-rule policy that allows the call: the whole default chain
                   (integrity, masking, policy, approval check, two audit records)
  guard-nomask50   the same policy with masking turned off (shows masking's share)
  guard-policy0    the same whole chain with a policy of no rules (shows the rules' own share)
  mcp-proxy-http   client -> sparfenyuk's mcp-proxy (HTTP -> stdio bridge) -> server, when it is
                   installed (--mcp-proxy PATH, or --setup-mcp-proxy makes bench-out/venv-mcp-proxy:
                   it pins mcp<2, so it cannot share our environment)
Then what one `serve` session costs: the time from `initialize` to the first `tools/list` answer
for a new session (its own upstream process), and the guard's and that process's RSS.
Rounds are interleaved so that machine noise hits every target alike. Prints p50/p99, calls/s,
the proxy process's RSS (VmHWM) and CPU per call (the guard, the byte-copy relay, mcp-proxy), and
the added p50 as a difference and a ratio. On a loaded machine wall times swing from run to run;
CPU per call of the proxy process is the steadier figure, so the proxies are also compared by it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import background  # noqa: E402  (starts a server, waits until it answers)

EVERYTHING = ROOT / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}


def policy_with_rules(count: int) -> str:
    """A policy of ``count`` rules, none of which stops ``echo`` (a read-only tool: low risk)."""
    lines = ["version: 1", "defaults: {risk: medium, action: allow}", "rules:"]
    for i in range(count):
        kind = i % 5
        if kind == 0:
            lines += [f"  - name: deny-{i}", f"    match: {{tool: 'tool_{i}_*'}}", "    action: deny"]
        elif kind == 1:
            lines += [f"  - name: approve-{i}", f"    match: {{server: 'srv{i}', risk: high}}", "    action: approve"]
        elif kind == 2:
            lines += [f"  - name: args-{i}", f"    match: {{tool: 'echo', args: {{'$.message': 'forbidden-{i}*'}}}}", "    action: deny"]
        elif kind == 3:
            lines += [f"  - name: user-{i}", f"    match: {{user: 'nobody-{i}', tool: '*'}}", "    action: deny"]
        else:
            lines += [f"  - name: allow-{i}", "    match: {risk: '<=medium'}", "    action: allow"]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MB, CPU seconds) of one process."""
    hwm = 0.0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm, (int(fields[11]) + int(fields[12])) / ticks


def child_pid(parent: int, marker: bytes) -> int | None:
    """The child of ``parent`` whose command line holds ``marker`` (the proxy being measured)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                    argv = cmd.read().split(b"\0")
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == parent and marker in b" ".join(argv):
                return int(entry)
    return None


# The message of call number i: "distinct" reaches the detectors every time, "same" is answered from caches.
MESSAGES: dict[str, Callable[[int], str]] = {"same": lambda i: "hello", "distinct": lambda i: f"hello {i}"}


async def measure(client: Client, n: int, warmup: int, pid: int | None, text: Callable[[int], str]) -> dict[str, float]:
    for i in range(warmup):
        await client.call_tool("echo", {"message": text(-1 - i)})
    before = proc_stats(pid)[1] if pid else 0.0
    times = []
    start = time.perf_counter()
    for i in range(n):
        message = text(i)
        t0 = time.perf_counter()
        await client.call_tool("echo", {"message": message})
        times.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - start
    times.sort()
    out = {"p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1], "rate": n / wall}
    if pid:
        rss, cpu = proc_stats(pid)
        out["rss"], out["cpu_ms"] = rss, (cpu - before) * 1000 / n
    return out


async def run_stdio(argv: list[str], n: int, warmup: int, marker: bytes | None, text: Callable[[int], str]) -> dict[str, float]:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=ENV)
    t0 = time.perf_counter()
    async with Client(params, mode="legacy", cache=None) as client:
        await client.list_tools()
        startup = (time.perf_counter() - t0) * 1000
        pid = child_pid(os.getpid(), marker) if marker else None
        out = await measure(client, n, warmup, pid, text)
        out["startup"] = startup
        return out


async def run_http(
    server_argv: list[str], url: str, n: int, warmup: int, is_proxy: bool, text: Callable[[int], str]
) -> dict[str, float]:
    async with background(server_argv, url) as process, Client(url, mode="legacy", cache=None) as client:
        return await measure(client, n, warmup, process.pid if is_proxy else None, text)


def mcp_proxy_path(args: argparse.Namespace) -> str | None:
    if args.mcp_proxy:
        return str(args.mcp_proxy)
    venv = ROOT / "bench-out" / "venv-mcp-proxy"
    exe = venv / "bin" / "mcp-proxy"
    if args.setup_mcp_proxy and not exe.exists():
        import subprocess

        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "mcp-proxy==0.13.0"], check=True)
    return str(exe) if exe.exists() else None


async def session_cost(serve_argv: list[str], port: int, sessions: int) -> dict[str, float]:
    """Open ``sessions`` sessions one after another on one `serve`; time and memory per session."""
    url = f"http://127.0.0.1:{port}/mcp"
    async with background(serve_argv, url) as process:
        base_rss = proc_stats(process.pid)[0]
        times, clients = [], []
        try:
            for _ in range(sessions):
                t0 = time.perf_counter()
                client = Client(url, mode="legacy", cache=None)
                await client.__aenter__()
                clients.append(client)
                await client.list_tools()
                times.append((time.perf_counter() - t0) * 1000)
            children = [int(c) for c in _children(process.pid)]
            upstream_rss = [proc_stats(pid)[0] for pid in children]
            guard_rss = proc_stats(process.pid)[0]
        finally:
            for client in reversed(clients):
                await client.__aexit__(None, None, None)
    return {
        "startup_ms": statistics.median(times),
        "guard_mb_per_session": (guard_rss - base_rss) / sessions,
        "upstream_mb": statistics.median(upstream_rss) if upstream_rss else 0.0,
        "upstreams": len(children),
    }


def _children(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated targets (default: all)")
    parser.add_argument("--sessions", type=int, default=5, help="serve sessions opened to measure a session's cost")
    parser.add_argument("--args", choices=sorted(MESSAGES), default="distinct",
                        help="distinct: a counter in each call's text, so no cache answers (default); same: one constant text")
    parser.add_argument("--mcp-proxy", help="path of sparfenyuk's mcp-proxy executable")
    parser.add_argument("--setup-mcp-proxy", action="store_true", help="install mcp-proxy 0.13.0 in bench-out/ first")
    args = parser.parse_args()
    text = MESSAGES[args.args]
    server = ["node", str(EVERYTHING), "stdio"]
    py_guard = [sys.executable, "-m", "mcp_guard"]
    policy = Path(tempfile.mkdtemp()) / "policy50.yaml"
    policy.write_text(policy_with_rules(50))
    no_mask = policy.with_name("policy50-nomask.yaml")
    no_mask.write_text(policy_with_rules(50).replace("version: 1\n", "version: 1\nmasking: {enabled: false}\n", 1))
    no_rules = policy.with_name("policy0.yaml")
    no_rules.write_text(policy_with_rules(0).replace("rules:\n", "rules: []\n"))
    default = ROOT / "policies" / "default.yaml"
    os.environ.setdefault("MCP_GUARD_HOME", tempfile.mkdtemp())
    ENV["MCP_GUARD_HOME"] = os.environ["MCP_GUARD_HOME"]
    proxy = mcp_proxy_path(args)

    stdio_targets = {
        "direct-stdio": (server, None),
        "bytecopy": ([sys.executable, str(ROOT / "benchmarks" / "bytecopy_relay.py"), "--", *server],
                     b"bytecopy_relay"),
        "guard-run": ([*py_guard, "run", "--no-policy", "--", *server], b"mcp_guard"),
        "guard-default": ([*py_guard, "run", "--policy", str(default), "--", *server], b"mcp_guard"),
        "guard-policy50": ([*py_guard, "run", "--policy", str(policy), "--", *server], b"mcp_guard"),
        "guard-nomask50": ([*py_guard, "run", "--policy", str(no_mask), "--", *server], b"mcp_guard"),
        "guard-policy0": ([*py_guard, "run", "--policy", str(no_rules), "--", *server], b"mcp_guard"),
    }

    def http_targets(port: int) -> dict[str, tuple[list[str], bool]]:  # (argv, measure its CPU and RSS)
        targets = {
            "direct-http": (["env", f"PORT={port}", "node", str(EVERYTHING), "streamableHttp"], False),
            "guard-serve": ([*py_guard, "serve", "--no-policy", "--port", str(port), "--", *server], True),
        }
        if proxy:
            targets["mcp-proxy-http"] = ([proxy, "--port", str(port), "--", *server], True)
        return targets

    wanted = set(filter(None, args.only.split(",")))
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for label, (argv, marker) in stdio_targets.items():
            if not wanted or label in wanted or label == "direct-stdio":
                results.setdefault(label, []).append(await run_stdio(argv, args.n, args.warmup, marker, text))
        for label in http_targets(0):
            if wanted and label not in wanted and label != "direct-http":
                continue
            port = free_port()
            argv, is_proxy = http_targets(port)[label]
            url = f"http://127.0.0.1:{port}/mcp"
            results.setdefault(label, []).append(await run_http(argv, url, args.n, args.warmup, is_proxy, text))
    report(results, args)
    if args.sessions and (not wanted or "guard-serve" in wanted):
        port = free_port()
        cost = await session_cost([*py_guard, "serve", "--no-policy", "--port", str(port), "--", *server], port, args.sessions)
        print(f"a serve session ({args.sessions} opened in turn, medians): {cost['startup_ms']:.0f} ms from initialize to the "
              f"first tools/list answer; {cost['upstreams']} upstream processes of {cost['upstream_mb']:.0f} MB RSS each; "
              f"the guard grew {cost['guard_mb_per_session']:.1f} MB per session")


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    def med(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    base = med("direct-stdio", "p50")
    print(f"{args.rounds} rounds x {args.n} sequential echo calls ({args.args} arguments), medians of rounds; baseline direct stdio p50 {base:.3f} ms")
    print(f"{'target':<15}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}{'added p50':>11}{'ratio':>7}"
          f"{'proxy RSS MB':>14}{'CPU ms/call':>13}")
    for label in results:
        p50 = med(label, "p50")
        rss = f"{med(label, 'rss'):.1f}" if "rss" in results[label][0] else "-"
        cpu = f"{med(label, 'cpu_ms'):.2f}" if "cpu_ms" in results[label][0] else "-"
        print(f"{label:<15}{p50:>9.3f}{med(label, 'p99'):>9.3f}{med(label, 'rate'):>9.0f}{p50 - base:>+11.3f}{p50 / base:>7.2f}{rss:>14}{cpu:>13}")
    if "guard-run" in results:
        start_base, start_guard = med("direct-stdio", "startup"), med("guard-run", "startup")
        print(f"startup to first tools/list answer: direct {start_base:.0f} ms, guard-run {start_guard:.0f} ms "
              f"(added {start_guard - start_base:+.0f} ms)")
    if "bytecopy" in results:
        floor = med("bytecopy", "p50") - base
        for label in ("guard-run", "guard-default"):
            if label in results:
                added = med(label, "p50") - base
                print(f"{label} adds {added:+.3f} ms p50 over direct stdio; the byte-copy relay adds {floor:+.3f} ms: "
                      f"{added / floor:.2f}x the floor" if floor > 0 else f"{label} adds {added:+.3f} ms")
    pairs = (("guard-run", "bytecopy"), ("guard-default", "bytecopy"), ("guard-serve", "mcp-proxy-http"))
    for label, floor_label in pairs:
        if label in results and floor_label in results and "cpu_ms" in results[floor_label][0]:
            cpu, floor_cpu = med(label, "cpu_ms"), med(floor_label, "cpu_ms")
            print(f"CPU per call: {label} {cpu:.3f} ms, {floor_label} {floor_cpu:.3f} ms ({cpu / floor_cpu:.2f}x)")
    if "guard-policy50" in results and "guard-policy0" in results:
        print(f"the 50 rules: guard-policy50 vs guard-policy0 (the same chain, no rules) added p50 "
              f"{med('guard-policy50', 'p50') - med('guard-policy0', 'p50'):+.3f} ms")
    if "direct-http" in results:
        http_base = med("direct-http", "p50")
        for label in ("guard-serve", "mcp-proxy-http"):
            if label in results:
                print(f"{label} vs direct-http: added p50 {med(label, 'p50') - http_base:+.3f} ms "
                      f"(ratio {med(label, 'p50') / http_base:.2f})")


if __name__ == "__main__":
    anyio.run(main)

"""Added latency of mcp-guard over a direct connection, measured in one run.

    python benchmarks/proxy_latency.py [-n 500] [--rounds 3]

Client: the MCP Python SDK, handshake era, N sequential ``tools/call echo`` after warm-up.
Targets, all against server-everything (installed by ``npm ci``):
  direct-stdio     the client spawns the server itself (the baseline)
  guard-run        client -> mcp-guard run (stdio) -> server (stdio)
  direct-http      client -> server-everything's own streamable HTTP
  guard-serve      client -> mcp-guard serve (HTTP) -> server (stdio)
  guard-policy50   guard-run with a 50-rule policy that allows the call: the whole default chain
                   (integrity, masking, policy, approval check, two audit records)
  guard-nomask50   the same policy with masking turned off (shows masking's share)
  guard-policy0    the same whole chain with a policy of no rules (shows the rules' own share)
Rounds are interleaved so that machine noise hits every target alike. Prints p50/p99, calls/s,
the guard's RSS (VmHWM) and CPU per call, and the added p50 as a difference and a ratio.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
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


def guard_pid(parent: int) -> int | None:
    """The mcp-guard process among the children of ``parent``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                    argv = cmd.read().split(b"\0")
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == parent and b"mcp_guard" in b" ".join(argv):
                return int(entry)
    return None


async def measure(client: Client, n: int, warmup: int, pid: int | None) -> dict[str, float]:
    for _ in range(warmup):
        await client.call_tool("echo", {"message": "hello"})
    before = proc_stats(pid)[1] if pid else 0.0
    times = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        await client.call_tool("echo", {"message": "hello"})
        times.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - start
    times.sort()
    out = {"p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1], "rate": n / wall}
    if pid:
        rss, cpu = proc_stats(pid)
        out["rss"], out["cpu_ms"] = rss, (cpu - before) * 1000 / n
    return out


async def run_stdio(argv: list[str], n: int, warmup: int, is_guard: bool) -> dict[str, float]:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=ENV)
    t0 = time.perf_counter()
    async with Client(params, mode="legacy", cache=None) as client:
        await client.list_tools()
        startup = (time.perf_counter() - t0) * 1000
        pid = guard_pid(os.getpid()) if is_guard else None
        out = await measure(client, n, warmup, pid)
        out["startup"] = startup
        return out


async def run_http(server_argv: list[str], url: str, n: int, warmup: int, is_guard: bool) -> dict[str, float]:
    async with background(server_argv, url) as process, Client(url, mode="legacy", cache=None) as client:
        return await measure(client, n, warmup, process.pid if is_guard else None)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = ["node", str(EVERYTHING), "stdio"]
    guard = [sys.executable, "-m", "mcp_guard", "run", "--no-policy", "--", *server]
    policy = Path(tempfile.mkdtemp()) / "policy50.yaml"
    policy.write_text(policy_with_rules(50))
    with_policy = [sys.executable, "-m", "mcp_guard", "run", "--policy", str(policy), "--", *server]
    no_mask = policy.with_name("policy50-nomask.yaml")
    no_mask.write_text(policy_with_rules(50).replace("version: 1\n", "version: 1\nmasking: {enabled: false}\n", 1))
    without_masking = [sys.executable, "-m", "mcp_guard", "run", "--policy", str(no_mask), "--", *server]
    no_rules = policy.with_name("policy0.yaml")
    no_rules.write_text(policy_with_rules(0).replace("rules:\n", "rules: []\n"))
    with_no_rules = [sys.executable, "-m", "mcp_guard", "run", "--policy", str(no_rules), "--", *server]
    os.environ.setdefault("MCP_GUARD_HOME", tempfile.mkdtemp())
    ENV["MCP_GUARD_HOME"] = os.environ["MCP_GUARD_HOME"]
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        results.setdefault("direct-stdio", []).append(await run_stdio(server, args.n, args.warmup, False))
        results.setdefault("guard-run", []).append(await run_stdio(guard, args.n, args.warmup, True))
        results.setdefault("guard-policy50", []).append(await run_stdio(with_policy, args.n, args.warmup, True))
        results.setdefault("guard-nomask50", []).append(await run_stdio(without_masking, args.n, args.warmup, True))
        results.setdefault("guard-policy0", []).append(await run_stdio(with_no_rules, args.n, args.warmup, True))
        port = free_port()
        direct_http = ["env", f"PORT={port}", "node", str(EVERYTHING), "streamableHttp"]
        results.setdefault("direct-http", []).append(await run_http(direct_http, f"http://127.0.0.1:{port}/mcp", args.n, args.warmup, False))
        port = free_port()
        serve = [sys.executable, "-m", "mcp_guard", "serve", "--no-policy", "--port", str(port), "--", *server]
        results.setdefault("guard-serve", []).append(await run_http(serve, f"http://127.0.0.1:{port}/mcp", args.n, args.warmup, True))

    def med(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    base = med("direct-stdio", "p50")
    print(f"{args.rounds} rounds x {args.n} sequential echo calls, medians of rounds; baseline direct stdio p50 {base:.3f} ms")
    print(f"{'target':<14}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}{'added p50':>11}{'ratio':>7}{'guard RSS MB':>14}{'CPU ms/call':>13}")
    for label in results:
        p50 = med(label, "p50")
        rss = f"{med(label, 'rss'):.1f}" if "rss" in results[label][0] else "-"
        cpu = f"{med(label, 'cpu_ms'):.2f}" if "cpu_ms" in results[label][0] else "-"
        print(f"{label:<14}{p50:>9.3f}{med(label, 'p99'):>9.3f}{med(label, 'rate'):>9.0f}{p50 - base:>+11.3f}{p50 / base:>7.2f}{rss:>14}{cpu:>13}")
    start_base = med("direct-stdio", "startup")
    start_guard = med("guard-run", "startup")
    print(f"startup to first tools/list answer: direct {start_base:.0f} ms, guard-run {start_guard:.0f} ms (added {start_guard - start_base:+.0f} ms)")
    print(f"the 50 rules: guard-policy50 vs guard-policy0 (the same chain, no rules) added p50 "
          f"{med('guard-policy50', 'p50') - med('guard-policy0', 'p50'):+.3f} ms")
    print(f"policy cost: guard-policy50 vs guard-run added p50 {med('guard-policy50', 'p50') - med('guard-run', 'p50'):+.3f} ms"
          f" (without masking {med('guard-nomask50', 'p50') - med('guard-run', 'p50'):+.3f} ms)")
    http_base = med("direct-http", "p50")
    print(f"guard-serve vs direct-http: added p50 {med('guard-serve', 'p50') - http_base:+.3f} ms (ratio {med('guard-serve', 'p50') / http_base:.2f})")


if __name__ == "__main__":
    anyio.run(main)

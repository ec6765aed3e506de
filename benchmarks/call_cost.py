"""What one relayed call costs the guard, counted rather than timed: Python function calls per call.

    python benchmarks/call_cost.py [-n 1000] [--only no-policy,default,...]

Wall times on a shared machine swing by more than the differences between policies (see
proxy_latency.py); the number of Python function calls the guard makes per relayed call does
not. Each target runs `mcp-guard run` under cProfile in front of server-everything twice, with
``--small`` and ``-n`` sequential ``echo`` calls; the difference of the two runs divided by the
difference of the calls is the cost of one call, start-up and shutdown cancelled out. Also
printed: each hook's share (profiled microseconds per call, inflated by the profiler alike for
every target, so compare them with each other, not with proxy_latency.py's figures).
"""

from __future__ import annotations

import argparse
import os
import pstats
import sys
import tempfile
from pathlib import Path

import anyio

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.proxy_latency import EVERYTHING, policy_with_rules  # noqa: E402

# A hook's share: the cumulative profiled time of its request, response and finish.
ENTRY = {"request", "response", "finish"}


async def drive(argv: list[str], calls: int, env: dict[str, str]) -> None:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
    async with Client(params, mode="legacy", cache=None) as client:
        await client.list_tools()
        for _ in range(calls):
            await client.call_tool("echo", {"message": "hello"})


def profiled(policy: list[str], calls: int, env: dict[str, str], out: Path) -> pstats.Stats:
    server = ["node", str(EVERYTHING), "stdio"]
    argv = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "mcp_guard", "run", *policy, "--", *server]
    anyio.run(drive, argv, calls, env)
    return pstats.Stats(str(out))


def per_hook(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative profiled seconds of each hook module's request/response/finish."""
    out: dict[str, float] = {}
    for (path, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "/mcp_guard/hooks/" in path and name in ENTRY:
            module = Path(path).stem
            out[module] = out.get(module, 0.0) + cumulative
    return out


def total_calls(stats: pstats.Stats) -> int:
    return int(stats.total_calls)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    (work / "policy50.yaml").write_text(policy_with_rules(50))
    (work / "policy0.yaml").write_text(policy_with_rules(0).replace("rules:\n", "rules: []\n"))
    (work / "nomask50.yaml").write_text(policy_with_rules(50).replace("version: 1\n", "version: 1\nmasking: {enabled: false}\n", 1))
    targets = {
        "no-policy": ["--no-policy"],
        "default": ["--policy", str(ROOT / "policies" / "default.yaml")],
        "policy50": ["--policy", str(work / "policy50.yaml")],
        "policy0": ["--policy", str(work / "policy0.yaml")],
        "nomask50": ["--policy", str(work / "nomask50.yaml")],
    }
    wanted = set(filter(None, args.only.split(",")))
    calls = args.n - args.small
    print(f"per relayed call, from runs of {args.small} and {args.n} echo calls (difference of {calls})")
    print(f"{'target':<12}{'py calls':>10}  hooks, profiled us per call")
    for label, policy in targets.items():
        if wanted and label not in wanted:
            continue
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "MCP_GUARD_HOME": tempfile.mkdtemp()}
        small = profiled(policy, args.small, env, work / f"{label}-small.prof")
        large = profiled(policy, args.n, env, work / f"{label}-large.prof")
        count = (total_calls(large) - total_calls(small)) / calls
        hooks_small, hooks_large = per_hook(small), per_hook(large)
        shares = {m: (hooks_large[m] - hooks_small.get(m, 0.0)) * 1e6 / calls for m in sorted(hooks_large)}
        shown = "  ".join(f"{m} {us:.0f}" for m, us in shares.items())
        print(f"{label:<12}{count:>10.0f}  {shown}", flush=True)


if __name__ == "__main__":
    main()

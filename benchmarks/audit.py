"""What the audit trail adds to each allowed call, with SQLite and with PostgreSQL, in one run.

    python benchmarks/audit.py [-n 5000] [--rounds 3]

The guard's whole default chain (integrity, masking, a 50-rule policy, approval check) runs
in-process on an allowed ``echo`` call, as the proxy runs it: request, response, then finish.
Targets, interleaved per round:
  no-audit          the chain without the audit hook (the baseline)
  sqlite            + the audit hook, records spooled and chained by the writer thread (as shipped)
  sqlite-direct     + the audit hook writing each record in its own transaction (no spool)
  postgresql        + the audit hook on a PostgreSQL store, spooled (skipped without PostgreSQL)
  postgresql-direct + each record in its own PostgreSQL transaction
For each: microseconds per call on the call's path (request + response), the finish step
(after the answer is sent), and the added path cost over no-audit. Then the records are
flushed and the chain verified, so the work counted is work that reached the store.
The IPC-level figure (the proxy's added p50 with the whole chain) is in proxy_latency.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ["MCP_GUARD_HOME"] = tempfile.mkdtemp(prefix="mcp-guard-bench-")

import anyio  # noqa: E402

from mcp_guard.audit import Audit  # noqa: E402
from mcp_guard.hooks import default_hooks  # noqa: E402
from mcp_guard.hooks.policy import PolicySource  # noqa: E402
from mcp_guard.pipeline import Call, Pipeline  # noqa: E402
from mcp_guard.store import open_store  # noqa: E402
from proxy_latency import policy_with_rules  # noqa: E402

TOOL = {
    "name": "echo", "description": "Echoes back the input",
    "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}}, "annotations": {"readOnlyHint": True},
}


async def _lookup() -> dict[str, Any]:
    return TOOL


async def measure(pipeline: Pipeline, n: int) -> tuple[float, float]:
    path = finish = 0.0
    for i in range(n):
        call = Call("tools/call", "everything", {"name": "echo", "arguments": {"message": f"hello {i}"}}, session_id="s1", user="me")
        call.lookup_tool = _lookup
        call.started = time.monotonic()
        call.outcome = "error"
        t0 = time.perf_counter()
        await pipeline.run_request(call)
        call.result = {"content": [{"type": "text", "text": f"Echo: hello {i}"}]}
        await pipeline.run_response(call)
        t1 = time.perf_counter()
        call.outcome = "completed"
        await pipeline.run_finish(call)
        t2 = time.perf_counter()
        assert call.verdict is None, call.verdict
        path += t1 - t0
        finish += t2 - t1
    return path / n * 1e6, finish / n * 1e6


def build(source: PolicySource, audit: Audit | None) -> Pipeline:
    return Pipeline(default_hooks(source, None, (), audit))


def postgres_url() -> tuple[str | None, Any]:
    from tests.postgres import Cluster, _bindir

    if importlib.util.find_spec("psycopg") is None:
        return None, None
    bindir = _bindir()
    if bindir is None:
        return None, None
    cluster = Cluster(bindir)
    try:
        cluster.start()
    except (RuntimeError, OSError):
        cluster.stop()
        return None, None
    return cluster.new_database(), cluster


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    policy = Path(os.environ["MCP_GUARD_HOME"]) / "policy50.yaml"
    policy.write_text(policy_with_rules(50))
    source = PolicySource.from_file(str(policy))
    url, cluster = postgres_url()
    try:
        stores: dict[str, Any] = {"sqlite": open_store()}
        if url:
            stores["postgresql"] = open_store(url)
        targets: dict[str, tuple[Pipeline, Audit | None]] = {"no-audit": (build(source, None), None)}
        for name, store in stores.items():
            spooled = Audit(store)
            spooled.start_spool()
            targets[name] = (build(source, spooled), spooled)
            direct = Audit(store)
            targets[f"{name}-direct"] = (build(source, direct), direct)
        for pipeline, _ in targets.values():
            await measure(pipeline, 300)  # warm-up: caches, compiled policy, first transactions
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (pipeline, _) in targets.items():
                results[name].append(await measure(pipeline, args.n))
        for _, audit in targets.values():
            if audit is not None and audit.spool is not None:
                assert audit.spool.flush(60), "the writer did not catch up"
        for name, store in stores.items():
            problem = Audit(store).verify()
            assert problem is None, problem
        base = statistics.median(r[0] for r in results["no-audit"])
        print(f"{args.rounds} rounds x {args.n} allowed calls, medians of rounds; whole default chain, 50-rule policy")
        print(f"{'target':<20}{'path us/call':>14}{'added':>10}{'ratio':>8}{'finish us/call':>16}")
        for name, rows in results.items():
            path = statistics.median(r[0] for r in rows)
            finish = statistics.median(r[1] for r in rows)
            print(f"{name:<20}{path:>14.1f}{path - base:>+10.1f}{path / base:>8.2f}{finish:>16.1f}")
        if not url:
            print("postgresql: skipped (no PostgreSQL binaries or psycopg here: apt-get install postgresql; pip install 'mcp-guard[postgres]')")
        for _, audit in targets.values():
            if audit is not None:
                audit.close()
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    anyio.run(main)

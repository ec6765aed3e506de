"""What the guard adds to a stdio server's start: spawn to the first answer, with and without it.

    python benchmarks/startup.py [--rounds 15] [--server tiny|probe|everything] [--pyc] [--installed]

Each round starts, interleaved, the server alone and the server behind ``mcp-guard run`` (with
the shipped default policy, as a wrapped config runs it, and with ``--no-policy``), sends
``initialize`` and waits for its answer, then ``tools/list`` and its answer (the guard answers
``initialize`` only once the upstream has). Printed: the median of each, and the guard's added
milliseconds over the server alone in the same run (the target is at most 150 ms).

``tiny`` is a minimal JSON-RPC server on the bare interpreter (its own start is ~20 ms, so the
figure is nearly all the guard's); ``probe`` is the Python SDK server of the tests;
``everything`` the reference server on node (from ``npm ci``), a typical slow start.

With ``PYTHONDONTWRITEBYTECODE`` set (as in some shells and CI), an editable checkout's modules
are compiled from source at every start, which an installed guard (pip writes its .pyc) never
does; ``--pyc`` measures as installed: the children keep their bytecode in a temporary folder.
An editable checkout also loads setuptools' editable finder at every start (~10 ms, with the
modules it imports); ``--installed`` measures the guard as ``pip install .`` leaves it: built as
a wheel, installed into a fresh virtual environment whose other packages are this one's (the
tiny and probe servers run on that interpreter too, so the baseline is the same).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TINY = r"""
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg["method"] == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "tiny", "version": "1"}}
    elif msg["method"] == "tools/list":
        result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    else:
        result = {}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\n")
    sys.stdout.flush()
"""

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def server(kind: str, python: str) -> list[str]:
    if kind == "tiny":
        return [python, "-c", TINY]
    if kind == "everything":
        return [str(ROOT / "node_modules" / ".bin" / "mcp-server-everything")]
    return [python, str(ROOT / "fixtures" / "probe_server.py")]


def installed_python() -> str:
    """An interpreter that imports mcp-guard from an installed wheel (no editable finder), with
    this environment's packages for its dependencies."""
    base = Path(tempfile.mkdtemp(prefix="mcp-guard-bench-installed-"))
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(base / "wheel"), str(ROOT)], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    site = next((base / "venv" / "lib").glob("python*/site-packages"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), *map(str, (base / "wheel").glob("*.whl"))], check=True)
    # A path listed in a .pth file is added as it is: its own .pth files (the editable finder's) are not run.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(base / "venv" / "bin" / "python")


def once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn to the initialize answer, and to the tools/list answer."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write((json.dumps(INIT) + "\n").encode())
        proc.stdin.flush()
        _answer(proc, 1)
        first = time.perf_counter() - start
        proc.stdin.write((json.dumps(INITIALIZED) + "\n" + json.dumps(LIST) + "\n").encode())
        proc.stdin.flush()
        _answer(proc, 2)
        return first, time.perf_counter() - start
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _answer(proc: subprocess.Popen[bytes], want: int) -> None:
    assert proc.stdout
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the process ended before answering request {want}")
        if json.loads(line).get("id") == want:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default: 15)")
    parser.add_argument("--server", choices=("tiny", "probe", "everything"), default="tiny", help="the upstream (default: tiny)")
    parser.add_argument("--pyc", action="store_true", help="let the children keep bytecode (in a temporary folder)")
    parser.add_argument("--installed", action="store_true", help="run the guard from a wheel installed in a fresh environment")
    args = parser.parse_args()
    python = installed_python() if args.installed else sys.executable
    if args.installed:
        os.chdir(tempfile.mkdtemp(prefix="mcp-guard-bench-cwd-"))  # `-m mcp_guard` would find the checkout here
    env = {**os.environ, "MCP_GUARD_HOME": tempfile.mkdtemp(prefix="mcp-guard-bench-")}
    if args.pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="mcp-guard-bench-pyc-")
    elif env.get("PYTHONDONTWRITEBYTECODE"):
        print("(PYTHONDONTWRITEBYTECODE is set: the guard compiles its modules at every start; see --pyc)")
    upstream = server(args.server, python)
    guard = [python, "-m", "mcp_guard", "run", "--name", "bench"]
    targets = {
        "server alone": upstream,
        "guard, default policy": [*guard, "--", *upstream],
        "guard, --no-policy": [*guard, "--no-policy", "--", *upstream],
    }
    once(targets["guard, default policy"], env)  # warm the page cache and the store
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for _ in range(args.rounds):
        for name, argv in targets.items():
            times[name].append(once(argv, env))
    base_init = statistics.median(t[0] for t in times["server alone"])
    base_list = statistics.median(t[1] for t in times["server alone"])
    print(f"{args.server} server, {args.rounds} rounds, medians (ms){', installed guard' if args.installed else ''}")
    print(f"{'target':<24} {'initialize':>10} {'+tools/list':>12} {'added':>8}")
    for name, samples in times.items():
        init = statistics.median(t[0] for t in samples)
        listed = statistics.median(t[1] for t in samples)
        added = "" if name == "server alone" else f"{(init - base_init) * 1000:+8.0f}"
        print(f"{name:<24} {init * 1000:>10.0f} {listed * 1000:>12.0f} {added}")
    print(f"(tools/list answer, added over the server alone: default policy "
          f"{(statistics.median(t[1] for t in times['guard, default policy']) - base_list) * 1000:+.0f} ms)")


if __name__ == "__main__":
    main()

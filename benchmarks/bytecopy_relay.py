"""The floor for a stdio proxy: one more process that copies bytes both ways, parsing nothing.

    python benchmarks/bytecopy_relay.py -- CMD ARGS...

The latency benchmark measures mcp-guard's added cost against what this adds, in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading


def pump(source: int, sink: int) -> None:
    while chunk := os.read(source, 65536):
        os.write(sink, chunk)
    os.close(sink)


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    threading.Thread(target=pump, args=(0, child.stdin.fileno()), daemon=True).start()
    pump(child.stdout.fileno(), 1)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())

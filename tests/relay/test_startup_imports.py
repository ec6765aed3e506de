"""`run` loads only what it needs before its first answer: a server's start waits for the guard's.

Each test drives a real `mcp-guard run` over stdio in front of a real stdio server (initialize,
then tools/list, then EOF) and reads which modules the guard process had loaded when it ended.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import pytest

from mcp_guard.masking.patterns import lazy
from tests.conftest import PY

SERVER = r"""
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    result = {"tools": [{"name": "echo", "description": "says jane@example.com back", "inputSchema": {"type": "object"}}]}
    if msg["method"] == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "tiny", "version": "1"}}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\n")
    sys.stdout.flush()
"""

# The guard as its console script runs it, noting sys.modules at exit.
NOTED_GUARD = (
    "import atexit, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules))))\n"
    "sys.argv[0] = 'mcp-guard'\n"
    "runpy.run_module('mcp_guard', run_name='__main__')\n"
)

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def loaded_by_run(tmp_path: Path, *options: str) -> tuple[set[str], list[dict]]:  # type: ignore[type-arg]
    """The modules a guard had loaded after answering initialize and tools/list, and its answers."""
    noted = tmp_path / "modules.txt"
    guard = subprocess.Popen(
        [PY, "-c", NOTED_GUARD, str(noted), "run", *options, "--", PY, "-c", SERVER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    client = [INIT, {"jsonrpc": "2.0", "method": "notifications/initialized"}, LIST]
    out, err = guard.communicate("".join(json.dumps(m) + "\n" for m in client).encode(), timeout=60)
    assert guard.returncode == 0, err.decode()[-2000:]
    answers = [json.loads(line) for line in out.splitlines()]
    return set(noted.read_text().split()), answers


def test_run_without_a_policy_loads_neither_pydantic_nor_the_masking_engine_nor_other_commands(tmp_path: Path) -> None:
    modules, answers = loaded_by_run(tmp_path, "--no-policy")
    assert [a["id"] for a in answers] == [1, 2]
    assert "mcp_guard.relay.hub" in modules  # the relay did run in this process
    for heavy in ("pydantic", "mcp_guard.policy.model", "mcp_guard.masking.detect", "starlette", "mcp_guard.doctor"):
        assert heavy not in modules, f"{heavy} was imported by run --no-policy"


def test_run_under_the_default_policy_does_not_load_the_web_stack_when_nothing_notifies(tmp_path: Path) -> None:
    modules, answers = loaded_by_run(tmp_path)
    assert "mcp_guard.hooks.mask" in modules and "mcp_guard.policy.model" in modules  # the policy is in force
    # ...and its masking ran on the listed tools: the description's address did not get through.
    assert "jane@example.com" not in json.dumps(answers[1])
    for heavy in ("starlette", "mcp_guard.web.slack", "standardwebhooks", "mcp_guard.doctor", "mcp_guard.policy.show",
                  "mcp_guard.catalog"):
        assert heavy not in modules, f"{heavy} was imported by run with nothing to notify"


def test_a_lazy_pattern_matches_as_the_compiled_one_does() -> None:
    pattern = lazy(r"(?i)key=(\w+)")
    compiled = re.compile(r"(?i)key=(\w+)")
    text = "KEY=abc, key=def"
    assert [m.group(1) for m in pattern.finditer(text)] == [m.group(1) for m in compiled.finditer(text)]
    assert pattern.sub("-", text) == compiled.sub("-", text)
    assert pattern.pattern == compiled.pattern and pattern.flags == compiled.flags


def test_a_bad_lazy_pattern_fails_on_first_use_with_the_regex_error() -> None:
    pattern = lazy(r"(unclosed")
    with pytest.raises(re.error):
        pattern.search("x")


def test_a_lazy_pattern_first_used_by_many_threads_at_once_gives_each_the_same_answers() -> None:
    pattern = lazy(r"\d{3}-\d{2}-\d{4}")
    found: list[list[str]] = []
    start = threading.Barrier(8)

    def use() -> None:
        start.wait()
        found.append(pattern.findall("ssn 123-45-6789 and 987-65-4321"))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [["123-45-6789", "987-65-4321"]] * 8

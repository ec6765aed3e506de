"""Masking end to end: secrets from real servers never reach the client; placeholders go back
only to the server the value came from."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tests.conftest import ERAS, PY, connect, everything, guard, node_server

pytestmark = pytest.mark.anyio

# Test values built at run time, so no file in the repository holds a token-shaped string.
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
GITHUB = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"

ALLOW_ALL = "version: 1\ndefaults: {action: allow}\n"


def policy_file(tmp_path: Path, text: str = ALLOW_ALL) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("mode", ERAS)
async def test_secrets_in_a_servers_environment_reach_the_client_only_as_placeholders(tmp_path: Path, mode: str) -> None:
    env = {"AWS_SECRET_ACCESS_KEY": AWS_SECRET, "GITHUB_TOKEN": GITHUB, "OWNER_EMAIL": EMAIL}
    argv = guard("env", *[f"{k}={v}" for k, v in env.items()], *everything(), policy=policy_file(tmp_path))
    with anyio.fail_after(30):
        async with connect(argv, mode) as client:
            result = await client.call_tool("get-env", {})
    text = json.dumps(result.model_dump(mode="json", by_alias=True))
    for value in env.values():
        assert value not in text
    assert "<SECRET_1>" in text and "<SECRET_2>" in text and "<EMAIL_1>" in text


async def test_a_placeholder_goes_back_to_its_own_server_and_stays_masked_toward_another(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "customer.txt").write_text(f"name: Jane\nemail: {EMAIL}\ncard: {CARD}\n")
    fs = node_server("server-filesystem")
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {
        "one": {"command": fs[0], "args": [*fs[1:], str(one)]},
        "two": {"command": fs[0], "args": [*fs[1:], str(two)]},
    }}))
    argv = [PY, "-m", "mcp_guard", "run", "--policy", policy_file(tmp_path), "--config", str(config)]
    with anyio.fail_after(30):
        async with connect(argv) as client:
            read = await client.call_tool("one__read_text_file", {"path": str(one / "customer.txt")})
            seen = read.content[0].text  # type: ignore[union-attr]
            assert EMAIL not in seen and CARD not in seen
            assert "<EMAIL_1>" in seen and "<CREDIT_CARD_1>" in seen
            await client.call_tool("one__write_file", {"path": str(one / "reply.txt"), "content": "to: <EMAIL_1>"})
            await client.call_tool("two__write_file", {"path": str(two / "leak.txt"), "content": "to: <EMAIL_1>"})
            again = await client.call_tool("one__read_text_file", {"path": str(one / "reply.txt")})
    assert (one / "reply.txt").read_text() == f"to: {EMAIL}"
    assert (two / "leak.txt").read_text() == "to: <EMAIL_1>"
    assert again.content[0].text == "to: <EMAIL_1>"  # type: ignore[union-attr]


async def test_raw_values_the_model_writes_are_seen_by_policy_rules(tmp_path: Path) -> None:
    policy = policy_file(tmp_path, ALLOW_ALL + "rules:\n  - name: no-cards-out\n    match: {labels: [CREDIT_CARD]}\n    action: deny\n"
                         "  - name: mask-emails\n    match: {labels: [EMAIL]}\n    action: mask\n")
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=policy)
    with anyio.fail_after(30):
        async with connect(argv) as client:
            denied = await client.call_tool("write_file", {"path": str(tmp_path / "a.txt"), "content": f"card {CARD}"})
            masked = await client.call_tool("write_file", {"path": str(tmp_path / "b.txt"), "content": f"mail {EMAIL}"})
    assert denied.is_error and "no-cards-out" in denied.content[0].text  # type: ignore[union-attr]
    assert not (tmp_path / "a.txt").exists()
    assert not masked.is_error
    assert (tmp_path / "b.txt").read_text() == "mail <EMAIL_1>"


async def test_a_rule_on_labels_sees_values_that_only_their_keys_name(tmp_path: Path) -> None:
    """A bare SSN or a name says what it is only by its key: the rules see it as masking does."""
    from tests.conftest import FIXTURES

    policy = policy_file(tmp_path, ALLOW_ALL + "rules:\n  - name: no-ssn-out\n    match: {labels: [US_SSN]}\n    action: deny\n"
                         "  - name: no-names-out\n    match: {labels: [PERSON]}\n    action: deny\n")
    argv = guard(PY, str(FIXTURES / "echo_server.py"), policy=policy)
    with anyio.fail_after(30):
        async with connect(argv) as client:
            ssn = await client.call_tool("echo", {"message": "hi", "patient": {"ssn": "219099999", "dob": "1980"}})
            name = await client.call_tool("echo", {"message": "hi", "patient": {"given": ["Maren"], "full_name": "Maren Tovalis"}})
            plain = await client.call_tool("echo", {"message": "hi", "patient": {"id": "219099999", "name": "lookup"}})
    assert ssn.is_error and "no-ssn-out" in ssn.content[0].text  # type: ignore[union-attr]
    assert name.is_error and "no-names-out" in name.content[0].text  # type: ignore[union-attr]
    assert not plain.is_error


async def test_a_result_over_the_token_budget_is_cut_with_a_notice(tmp_path: Path) -> None:
    from tests.conftest import probe

    policy = policy_file(tmp_path, ALLOW_ALL + "masking:\n  max_result_tokens: 50\n")
    with anyio.fail_after(30):
        async with connect(guard(*everything(), policy=policy)) as client:
            result = await client.call_tool("echo", {"message": "word " * 400})
        async with connect(guard(*probe(), policy=policy)) as client:
            structured = await client.call_tool("echo", {"message": "word " * 400})
    # A structured result cannot be cut and still match its schema: it is refused whole.
    assert structured.is_error and "over the limit of 50" in structured.content[0].text  # type: ignore[union-attr]
    texts = [block.text for block in result.content]  # type: ignore[union-attr]
    assert len(texts[0].split()) <= 50
    assert re.search(r"cut to 50 of 40\d tokens", texts[-1])  # "Echo: " and 400 words


async def test_no_secret_reaches_the_guards_logs_even_at_debug_level(tmp_path: Path) -> None:
    from tests.rawclient import RawClient, open_raw

    argv = [PY, "-m", "mcp_guard", "--log-level", "debug", *guard("env", f"GITHUB_TOKEN={GITHUB}", *everything(), policy=policy_file(tmp_path))[3:]]
    process = await open_raw(argv)
    try:
        with anyio.fail_after(30):
            client = RawClient(process)
            await client.initialize()
            reply = await client.request(1, "tools/call", {"name": "get-env", "arguments": {}})
            await client.request(2, "tools/call", {"name": "echo", "arguments": {"message": f"token {GITHUB}"}})
            assert GITHUB not in json.dumps(reply)
            assert process.stdin is not None
            await process.stdin.aclose()
            await process.wait()
        assert process.stderr is not None
        logs = (await process.stderr.receive(1 << 20)).decode(errors="replace") if process.stderr else ""
    finally:
        if process.returncode is None:
            process.kill()
    assert "mcp_guard" in logs  # debug logging was on
    assert GITHUB not in logs


def test_scan_jsonl_reports_spans_in_code_points_and_masks(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": 1, "text": f"Écrivez à {EMAIL} ✓"}),
        "not json",
        json.dumps({"id": "b", "text": "nothing here"}),
        json.dumps({"id": 3}),
    ]
    done = subprocess.run([sys.executable, "-m", "mcp_guard", "scan", "--jsonl"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert out[0]["id"] == 1
    start = f"Écrivez à {EMAIL} ✓".index(EMAIL)
    assert out[0]["spans"] == [{"start": start, "end": start + len(EMAIL), "label": "EMAIL"}]
    assert out[0]["masked"] == "Écrivez à <EMAIL_1> ✓"
    assert "error" in out[1] and out[1]["id"] is None
    assert out[2] == {"id": "b", "spans": [], "masked": "nothing here"}
    assert "error" in out[3] and out[3]["id"] == 3




async def test_masking_in_a_worker_thread_and_checks_on_the_event_loop_never_collide() -> None:
    """A large result is masked in a thread while the loop keeps checking other calls'
    arguments: the detectors' shared scan space must serve both, one at a time."""
    from mcp_guard.hooks.mask import MaskHook
    from mcp_guard.pipeline import Call
    from mcp_guard.policy.model import Masking

    hook = MaskHook(Masking())
    rows = "\n".join(f"row {i}: mail user{i % 40}@example.com, card {CARD}" for i in range(30_000))
    big = Call("tools/call", "a", {"name": "t"}, session_id="s1")
    big.result = {"content": [{"type": "text", "text": rows}]}
    done = anyio.Event()
    checked = 0

    async def mask_big() -> None:
        await hook.response(big)
        done.set()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mask_big)
            while not done.is_set():
                arguments = {"note": f"to {EMAIL} " + "x " * 400}
                small = Call("tools/call", "a", {"name": "t", "arguments": arguments}, session_id="s2")
                await hook.request(small)
                assert small.labels == frozenset({"EMAIL"})
                checked += 1
                await anyio.lowlevel.checkpoint()
    assert checked > 1, "the loop was not free while the large result was masked"
    assert "@example.com" not in big.result["content"][0]["text"]

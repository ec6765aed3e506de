"""The review API reads a decision's body with care: malformed, oversized, too deep or half-sent
bodies are answered with a one-line JSON error (or nothing, to a client that left), never a
traceback and never a vote; a reviewer's repeated vote is refused, on every channel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
import anyio
import httpx
import pytest

from mcp_guard.approvals import Approvals
from mcp_guard.store import open_store
from tests.conftest import PY, background, free_port
from tests.hooks.test_decisions_audited import records
from tests.reviewing import review, reviewer_token

pytestmark = pytest.mark.anyio


class Served:
    def __init__(self, base: str, approvals: Approvals, home: Path) -> None:
        self.base, self.approvals, self.home = base, approvals, home

    def open(self, quorum: int = 2) -> str:
        """A pending request by carol for the secops group, waiting on this (live) process."""
        return self.approvals.open(
            user="carol", session="s", server="fs", tool="write_file", binding=f"b{quorum}-{len(self.approvals.pending())}",
            rule="writes-are-reviewed", risk="high", preview="write_file x.txt", max_scope="once", lifetime=600,
            approvers="reviewers", quorum=quorum, group="secops",
        ).id

    def untouched(self, rid: str) -> bool:
        request = self.approvals.get(rid)
        return request is not None and request.state == "pending" and not self.approvals.votes(rid)

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {reviewer_token(self.home, name)}"}


@asynccontextmanager
async def review_serve(tmp_path: Path, home: Path) -> AsyncIterator[tuple[Served, Path]]:
    """`mcp-guard review serve` on this home; yields it and the file its stderr goes to."""
    reviewer_token(home, "alice")
    reviewer_token(home, "bob")
    store = open_store(str(home / "guard.db"))
    port = free_port()
    log = tmp_path / "serve.stderr"
    try:
        with log.open("wb") as err:
            argv = [PY, "-m", "mcp_guard", "review", "serve", "--port", str(port), "--home", str(home)]
            async with background(argv, f"http://127.0.0.1:{port}/healthz", stderr=err):
                yield Served(f"http://127.0.0.1:{port}", Approvals(store), home), log
    finally:
        store.close()


def quiet(log: Path) -> bool:
    text = log.read_text(errors="replace")
    return "Traceback" not in text and "Exception in ASGI" not in text


async def test_garbage_bodies_are_a_400_with_a_json_error_and_decide_nothing(tmp_path: Path, guard_home: Path) -> None:
    bodies = {
        b"{bad": "JSON object",
        b"[1,2]": "JSON object",
        b'"approve"': "JSON object",
        b'{"reason": NaN}': "JSON object",
        b'{"reason": Infinity}': "JSON object",
        b"\xff\xfe{": "JSON object",
        b"[" * 30_000 + b"]" * 30_000: "JSON object",  # within the size limit, far too deep to parse
        b'{"reason": {"a": 1}}': "'reason' must be a string",
        b'{"reason": null}': "'reason' must be a string",
        b'{"scope": ["session"]}': "'scope' must be a string",
        json.dumps({"reason": "x" * 2001}).encode(): "at most 2000 characters",
    }
    async with review_serve(tmp_path, guard_home) as (served, log):
        rid = served.open()
        async with httpx.AsyncClient() as http:
            for body, said in bodies.items():
                sent = await http.post(f"{served.base}/api/review/{rid}/approve", headers=served.bearer("alice"), content=body)
                assert sent.status_code == 400, (body[:40], sent.status_code, sent.text[:200])
                assert said in sent.json()["error"], sent.json()
                assert served.untouched(rid), body[:40]
            deepest = b"[" * 100_000 + b"]" * 100_000
            sent = await http.post(f"{served.base}/api/review/{rid}/approve", headers=served.bearer("alice"), content=deepest)
            assert sent.status_code == 413 and served.untouched(rid)
            fine = await http.post(f"{served.base}/api/review/{rid}/approve", headers=served.bearer("alice"),
                                   json={"reason": "x" * 2000})
            assert fine.status_code == 200 and served.approvals.votes(rid)[0]["reason"] == "x" * 2000
    assert quiet(log), log.read_text()


async def test_an_empty_body_still_decides_without_a_reason(tmp_path: Path, guard_home: Path) -> None:
    async with review_serve(tmp_path, guard_home) as (served, log):
        rid = served.open(quorum=1)
        async with httpx.AsyncClient() as http:
            sent = await http.post(f"{served.base}/api/review/{rid}/approve", headers=served.bearer("alice"))
        assert sent.status_code == 200 and sent.json()["state"] == "approved" and not sent.json()["reason"]


async def test_a_body_over_64_kib_is_a_413_whether_declared_or_streamed(tmp_path: Path, guard_home: Path) -> None:
    big = json.dumps({"reason": "ok", "pad": "x" * 70_000}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    async with review_serve(tmp_path, guard_home) as (served, log):
        rid = served.open()
        async with httpx.AsyncClient() as http:
            url = f"{served.base}/api/review/{rid}/approve"
            declared = await http.post(url, headers=served.bearer("alice"), content=big)
            streamed = await http.post(url, headers=served.bearer("alice"), content=chunks())  # chunked: no length
        for sent in (declared, streamed):
            assert sent.status_code == 413 and "at most 65536 bytes" in sent.json()["error"], sent.text
        assert served.untouched(rid)
    assert quiet(log), log.read_text()


async def raw(base: str, head: str, body: bytes, answer: bool) -> bytes:
    """Send ``head`` and part of a body over a plain socket, read the answer if ``answer``, then go away."""
    host, port = base.removeprefix("http://").split(":")
    with anyio.fail_after(20):
        async with await anyio.connect_tcp(host, int(port)) as sock:
            await sock.send(head.encode() + body)
            return await sock.receive() if answer else b""


async def test_a_client_that_declares_a_huge_body_or_leaves_mid_body_decides_nothing_and_leaves_no_traceback(
    tmp_path: Path, guard_home: Path
) -> None:
    async with review_serve(tmp_path, guard_home) as (served, log):
        rid = served.open()
        token = reviewer_token(guard_home, "alice")

        def head(length: int) -> str:
            return (f"POST /api/review/{rid}/approve HTTP/1.1\r\nHost: {served.base[7:]}\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n")

        answered = await raw(served.base, head(99_999_999), b'{"reason": "', answer=True)
        assert answered.startswith(b"HTTP/1.1 413"), answered[:200]
        await raw(served.base, head(99_999_999), b"", answer=False)
        await raw(served.base, head(1000), b'{"reason": "', answer=False)  # within the limit, then gone
        async with httpx.AsyncClient() as http:  # the server goes on answering
            listed = await http.get(f"{served.base}/api/review/pending", headers=served.bearer("bob"))
        assert [r["id"] for r in listed.json()] == [rid] and served.untouched(rid)
    assert quiet(log), log.read_text()


async def test_a_reviewers_repeated_approval_is_refused_on_the_api_and_the_cli_and_recorded_once(
    tmp_path: Path, guard_home: Path
) -> None:
    async with review_serve(tmp_path, guard_home) as (served, log):
        rid = served.open()
        url = f"{served.base}/api/review/{rid}/approve"
        async with httpx.AsyncClient() as http:
            first = await http.post(url, headers=served.bearer("alice"), json={"reason": "fine"})
            assert first.status_code == 200 and first.json()["state"] == "pending"
            for _ in range(4):
                again = await http.post(url, headers=served.bearer("alice"), json={"reason": "fine"})
                assert again.status_code == 409, again.text
                assert again.json()["error"] == f"you already approved request {rid}; it waits for another reviewer"
            cli = review(guard_home, "approve", rid, token=reviewer_token(guard_home, "alice"))
            assert cli.returncode == 1 and "you already approved" in cli.stderr and "Traceback" not in cli.stderr
            assert served.approvals.get(rid).state == "pending"  # type: ignore[union-attr]
            changed = await http.post(f"{served.base}/api/review/{rid}/deny", headers=served.bearer("alice"), json={"reason": "no"})
            assert changed.status_code == 200 and changed.json()["state"] == "denied"  # a change of mind stays allowed
    chain = [r["body"] for r in records(guard_home) if r["body"].get("request") == rid]
    assert [(r["by"], r["decision"]) for r in chain] == [("alice", "approve"), ("alice", "deny")]


async def test_a_lookalike_spelling_of_an_earlier_voter_cannot_repeat_their_approval(tmp_path: Path, guard_home: Path) -> None:
    async with review_serve(tmp_path, guard_home) as (served, log):
        rid = served.open()
        assert review(guard_home, "approve", rid, "--as", "bob").returncode == 0
        # A Cyrillic "о": the name another channel (an identity provider, Slack) might hand over for bob.
        for spelling in ("BOB", "b\u043eb"):
            with pytest.raises(ValueError, match=f"you already approved request {rid}"):
                served.approvals.decide(rid, approve=True, by=spelling, channel="slack")
        assert len(served.approvals.votes(rid)) == 1 and served.approvals.get(rid).state == "pending"  # type: ignore[union-attr]


def test_a_reason_over_2000_characters_is_refused_by_the_cli_and_nothing_is_decided(guard_home: Path) -> None:
    reviewer_token(guard_home, "bob")
    store = open_store(str(guard_home / "guard.db"))
    try:
        served = Served("", Approvals(store), guard_home)
        rid = served.open(quorum=1)
        tried = review(guard_home, "deny", rid, "--as", "bob", "--reason", "x" * 2001)
        assert tried.returncode == 1 and "a reason is at most 2000 characters (this one has 2001)" in tried.stderr, tried.stderr
        assert served.untouched(rid)
        assert review(guard_home, "deny", rid, "--as", "bob", "--reason", "x" * 2000).returncode == 0
    finally:
        store.close()

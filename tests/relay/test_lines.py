"""The pipe reader and the masking jobs' lock, on both event loops the relay runs on.

Real pipes (``os.pipe``) and the real event loop; no timing: the loop is turned by hand and
what it did is counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from mcp_guard.masking.outbound import off_loop
from mcp_guard.relay import lines


LOOPS = [pytest.param(("asyncio", {}), id="asyncio"), pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]


@pytest.fixture(params=LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def wakeups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry for each time a pipe's readiness woke the loop."""
    woken: list[int] = []
    original = lines.Readiness._ready

    def counted(self: lines.Readiness) -> None:
        woken.append(1)
        original(self)

    monkeypatch.setattr(lines.Readiness, "_ready", counted)
    return woken


@pytest.mark.anyio
async def test_a_pipe_with_unread_data_does_not_wake_the_loop_while_its_reader_is_busy(
    pipe: tuple[int, int], wakeups: list[int]
) -> None:
    read_end, write_end = pipe
    chunks = lines.read_fd_chunks(read_end)
    os.write(write_end, b"first\n")
    with anyio.fail_after(5):
        assert await chunks.__anext__() == b"first\n"
    # The consumer is now busy elsewhere while more data waits in the pipe.
    os.write(write_end, b"second\n")
    before = len(wakeups)
    for _ in range(200):
        await anyio.sleep(0)
    assert len(wakeups) - before <= 1, "the reader kept waking the loop while nobody read"
    with anyio.fail_after(5):
        assert await chunks.__anext__() == b"second\n"
    os.close(write_end)
    with anyio.fail_after(5):
        with pytest.raises(StopAsyncIteration):
            await chunks.__anext__()


@pytest.mark.anyio
async def test_a_reader_cancelled_while_waiting_leaves_nothing_watching_its_fd(
    pipe: tuple[int, int], wakeups: list[int]
) -> None:
    read_end, write_end = pipe
    started = anyio.Event()

    async def read() -> None:
        started.set()
        async for _ in lines.read_fd_chunks(read_end):
            pass

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await started.wait()
            await anyio.sleep(0)
            tg.cancel_scope.cancel()
    # Data arriving now must wake nothing: no reader is left registered on the fd.
    os.write(write_end, b"late\n")
    for _ in range(50):
        await anyio.sleep(0)
    assert not wakeups


@pytest.mark.anyio
async def test_a_pipe_whose_owner_closed_its_readiness_is_neither_watched_nor_read_again(
    pipe: tuple[int, int], wakeups: list[int]
) -> None:
    read_end, write_end = pipe
    readiness = lines.Readiness.open(read_end)
    assert readiness is not None
    chunks = lines.read_fd_chunks(read_end, readiness=readiness)
    os.write(write_end, b"first\n")
    with anyio.fail_after(5):
        assert await chunks.__anext__() == b"first\n"
    readiness.close()  # as a transport does before it closes the pipe (whose number may be reused)
    before = len(wakeups)
    os.write(write_end, b"not ours any more\n")
    for _ in range(50):
        await anyio.sleep(0)
    assert len(wakeups) == before, "a closed readiness still watched the fd"
    with anyio.fail_after(5):
        with pytest.raises(StopAsyncIteration):
            await chunks.__anext__()
    assert os.read(read_end, 100) == b"not ours any more\n", "the reader read past its owner's close"


@pytest.mark.anyio
async def test_every_chunk_of_a_large_write_arrives_in_order(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the pipe holds and than one read takes
    received = bytearray()

    async def write() -> None:
        writer = lines.FdWriter(write_end)
        await writer.write(payload)
        writer.close()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            async for chunk in lines.read_fd_chunks(read_end):
                received += chunk
    assert bytes(received) == payload


@pytest.mark.anyio
async def test_a_small_masking_job_waits_while_a_heavy_one_holds_the_lock() -> None:
    lock = anyio.Lock()
    ran: list[str] = []
    holding, release = anyio.Event(), anyio.Event()

    async def heavy() -> None:
        async with lock:  # as off_loop holds it around a job in a worker thread
            holding.set()
            await release.wait()
            ran.append("heavy")

    async def small() -> None:
        await off_loop(lock, False, ran.append, "small")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(heavy)
            await holding.wait()
            tg.start_soon(small)
            for _ in range(20):
                await anyio.sleep(0)
            assert ran == [], "the small job ran while the heavy one held the vault"
            release.set()
    assert ran == ["heavy", "small"]


@pytest.mark.anyio
async def test_a_small_masking_job_on_a_free_lock_runs_without_yielding() -> None:
    lock = anyio.Lock()
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await off_loop(lock, False, order.append, "job")
        order.append("after job")
    assert order[:2] == ["job", "after job"]

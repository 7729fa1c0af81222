"""Group commit: the Batcher, driven by gated flush functions so batching is asserted by counting."""

from __future__ import annotations

import asyncio

import pytest

from sweeps.engine.batching import Batcher
from tests.engine.fakes import until


def settle(awaitable, timeout: float = 2.0):
    """Await with a deadline, so a batcher that loses a waiter fails the test instead of hanging it."""
    return asyncio.wait_for(awaitable, timeout)


class GatedFlush:
    """A flush function that records each batch and waits until the test opens its gate."""

    def __init__(self, *, fail_when=None, auto: bool = False) -> None:
        self.batches: list[list] = []
        self.gates: list[asyncio.Event] = []
        self.fail_when = fail_when
        self.auto = auto  # open every gate at once (no waiting)

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        gate = asyncio.Event()
        self.gates.append(gate)
        if not self.auto:
            await gate.wait()
        if self.fail_when is not None and self.fail_when(items):
            raise ValueError(f"flush failed for {items}")
        return [f"done:{item}" for item in items]

    def open(self, index: int) -> None:
        self.gates[index].set()

    @property
    def flushed(self) -> list:
        return [item for batch in self.batches for item in batch]


async def test_an_idle_batcher_flushes_a_single_item_at_once():
    calls = []

    async def flush(items):
        calls.append(list(items))
        return [item * 2 for item in items]

    batcher = Batcher(flush)
    assert await asyncio.wait_for(batcher.submit(21), 1) == 42
    assert calls == [[21]]
    # Idle again: the next item is its own batch, answered at once too.
    assert await asyncio.wait_for(batcher.submit(5), 1) == 10
    assert calls == [[21], [5]]


async def test_items_submitted_during_a_flush_go_together_in_the_next_one():
    flush = GatedFlush()
    batcher = Batcher(flush)
    first = asyncio.create_task(batcher.submit("a"))
    await until(lambda: flush.batches == [["a"]])

    later = [asyncio.create_task(batcher.submit(x)) for x in "bcd"]
    await asyncio.sleep(0.01)
    assert flush.batches == [["a"]], "one flush at a time"
    assert not any(t.done() for t in later)

    flush.open(0)
    assert await settle(first) == "done:a"
    await until(lambda: len(flush.batches) == 2)
    assert flush.batches[1] == ["b", "c", "d"]
    flush.open(1)
    assert await settle(asyncio.gather(*later)) == ["done:b", "done:c", "done:d"]


async def test_concurrent_submits_are_grouped_and_each_caller_gets_its_own_result():
    batches = []

    async def flush(items):
        batches.append(list(items))
        await asyncio.sleep(0.002)
        return [f"result-{item}" for item in reversed(items)][::-1]  # built out of order, returned in order

    batcher = Batcher(flush)
    submitted = list(range(200))

    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in submitted)), 10)

    assert results == [f"result-{i}" for i in submitted]
    assert len(batches) < len(submitted) // 4, f"{len(batches)} flushes for {len(submitted)} submits"
    assert [item for batch in batches for item in batch] == submitted  # each once, in submit order


async def test_submits_arriving_over_time_are_grouped_under_load():
    batches = []

    async def flush(items):
        batches.append(len(items))
        await asyncio.sleep(0.005)
        return items

    batcher = Batcher(flush)

    async def client(n):
        out = []
        for i in range(10):
            out.append(await batcher.submit((n, i)))
        return out

    results = await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(20))), 20)

    assert results == [[(n, i) for i in range(10)] for n in range(20)]
    assert sum(batches) == 200
    assert len(batches) < 100  # 20 clients share flushes
    assert max(batches) > 1


@pytest.mark.parametrize("max_batch", [1, 3, 7])
async def test_max_batch_is_respected(max_batch):
    flush = GatedFlush()
    batcher = Batcher(flush, max_batch=max_batch)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(20)]

    while not all(t.done() for t in tasks):
        await until(lambda: len(flush.batches) > sum(g.is_set() for g in flush.gates) or all(t.done() for t in tasks))
        for gate in flush.gates:
            gate.set()

    assert [t.result() for t in tasks] == [f"done:{i}" for i in range(20)]
    assert all(1 <= len(batch) <= max_batch for batch in flush.batches)
    assert max(len(batch) for batch in flush.batches) == max_batch  # full batches under load
    assert flush.flushed == list(range(20))


async def test_an_exception_in_flush_reaches_every_waiter_of_that_batch_and_later_batches_work():
    flush = GatedFlush(fail_when=lambda items: "b" in items)
    batcher = Batcher(flush)
    first = asyncio.create_task(batcher.submit("a"))
    await until(lambda: len(flush.batches) == 1)
    doomed = [asyncio.create_task(batcher.submit(x)) for x in "bcd"]
    await asyncio.sleep(0)

    flush.open(0)
    await until(lambda: len(flush.batches) == 2)
    flush.open(1)
    errors = await settle(asyncio.gather(*doomed, return_exceptions=True))

    assert await settle(first) == "done:a"
    assert all(isinstance(e, ValueError) for e in errors)
    assert len({id(e) for e in errors}) == 1  # the one failure, delivered to each waiter
    assert "flush failed" in str(errors[0])

    later = asyncio.create_task(batcher.submit("e"))
    await until(lambda: len(flush.batches) == 3)
    assert flush.batches[2] == ["e"]
    flush.open(2)
    assert await asyncio.wait_for(later, 1) == "done:e"


async def test_a_failing_batch_does_not_block_the_batches_queued_behind_it():
    flush = GatedFlush(fail_when=lambda items: "bad" in items, auto=True)
    batcher = Batcher(flush, max_batch=2)
    items = ["ok0", "bad", "ok2", "ok3", "ok4"]

    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(x) for x in items), return_exceptions=True), 2)

    assert flush.batches == [["ok0", "bad"], ["ok2", "ok3"], ["ok4"]]
    assert isinstance(results[0], ValueError) and isinstance(results[1], ValueError)
    assert results[2:] == ["done:ok2", "done:ok3", "done:ok4"]


async def test_drain_waits_for_everything_submitted():
    flushed = []

    async def flush(items):
        await asyncio.sleep(0.003)
        flushed.extend(items)
        return [None] * len(items)

    batcher = Batcher(flush, max_batch=4)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(23)]
    await asyncio.sleep(0)  # the submits have queued their items

    await asyncio.wait_for(batcher.drain(), 5)

    assert sorted(flushed) == list(range(23))
    await asyncio.sleep(0)  # let the waiters see their results
    assert all(t.done() and t.result() is None for t in tasks)


async def test_drain_with_nothing_submitted_returns_at_once():
    async def flush(items):
        raise AssertionError("nothing to flush")

    await asyncio.wait_for(Batcher(flush).drain(), 1)


async def test_drain_waits_for_a_flush_in_progress_and_survives_its_failure():
    flush = GatedFlush(fail_when=lambda items: True)
    batcher = Batcher(flush)
    waiter = asyncio.create_task(batcher.submit("x"))
    await until(lambda: flush.batches)
    draining = asyncio.create_task(batcher.drain())
    await asyncio.sleep(0.01)
    assert not draining.done()

    flush.open(0)
    await asyncio.wait_for(draining, 1)  # the failure belongs to the waiter, not to drain()
    with pytest.raises(ValueError):
        await settle(waiter)


async def test_a_cancelled_waiter_does_not_disturb_the_others():
    flush = GatedFlush()
    batcher = Batcher(flush)
    first = asyncio.create_task(batcher.submit("a"))
    await until(lambda: len(flush.batches) == 1)
    b, c, d = (asyncio.create_task(batcher.submit(x)) for x in "bcd")
    await asyncio.sleep(0)
    c.cancel()

    flush.open(0)
    await until(lambda: len(flush.batches) == 2)
    flush.open(1)

    assert await settle(first) == "done:a"
    assert await settle(b) == "done:b" and await settle(d) == "done:d"
    assert c.cancelled()
    later = asyncio.create_task(batcher.submit("e"))
    await until(lambda: len(flush.batches) == 3)
    flush.open(2)
    assert await asyncio.wait_for(later, 1) == "done:e"


async def test_a_flush_returning_the_wrong_number_of_results_fails_its_waiters_instead_of_hanging():
    gate = asyncio.Event()
    calls = []

    async def flush(items):
        calls.append(list(items))
        if "a" in items:
            await gate.wait()
            return ["only one"]  # contract broken: 3 items, 1 result
        return [f"done:{i}" for i in items]

    batcher = Batcher(flush)
    broken = [asyncio.create_task(batcher.submit(x)) for x in "abc"]
    await until(lambda: calls == [["a", "b", "c"]])
    queued_behind = asyncio.create_task(batcher.submit("d"))  # submitted while the broken flush runs
    await asyncio.sleep(0)
    gate.set()

    done, pending = await asyncio.wait([*broken, queued_behind], timeout=1)
    for task in pending:
        task.cancel()
    worker = getattr(batcher, "_worker", None)  # retrieve the worker's crash, only to keep the log quiet
    if isinstance(worker, asyncio.Task) and worker.done() and not worker.cancelled():
        worker.exception()
    assert not pending, f"{len(pending)} waiter(s) never answered"
    assert isinstance(broken[1].exception(), Exception) and isinstance(broken[2].exception(), Exception)
    assert queued_behind.result() == "done:d"


async def test_min_interval_spaces_flushes_and_still_flushes_an_idle_item_at_once():
    flushes: list[tuple[float, list[int]]] = []
    loop = asyncio.get_running_loop()

    async def flush(items):
        flushes.append((loop.time(), list(items)))
        return [i * 10 for i in items]

    batcher = Batcher(flush, min_interval=0.05)
    start = loop.time()
    assert await batcher.submit(1) == 10
    assert flushes[0][0] - start < 0.04  # nothing queued before: no waiting

    async def steady(i):
        await asyncio.sleep(i * 0.002)
        return await batcher.submit(i)

    results = await asyncio.gather(*(steady(i) for i in range(2, 102)))

    assert results == [i * 10 for i in range(2, 102)]
    starts = [t for t, _ in flushes[1:]]
    assert all(b - a >= 0.045 for a, b in zip(starts, starts[1:]))  # spaced by min_interval
    assert len(flushes) <= 1 + 0.2 / 0.05 + 3  # ~0.2 s of submits: a handful of batches, not 100

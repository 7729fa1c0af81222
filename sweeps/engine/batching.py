"""Group commit: many coroutines submit items, one flush at a time handles all that queued up.

While a flush runs, new items wait and then go together in the next one, so batches grow
with load on their own and an idle system still answers at once (no timer to wait for).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], max_batch: int = 500, min_interval: float = 0.0
    ) -> None:
        """min_interval: seconds between the starts of two flushes; for work nobody waits on,
        it trades a little latency for fewer, larger batches (fewer transactions)."""
        self._flush = flush
        self._max_batch = max_batch
        self._min_interval = min_interval
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None
        self._last_start = float("-inf")

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def drain(self) -> None:
        """Wait until everything submitted so far has been flushed."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if (wait := self._last_start + self._min_interval - loop.time()) > 0:
                await asyncio.sleep(wait)  # more items join this batch meanwhile
            self._last_start = loop.time()
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                results = await self._flush([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"flush returned {len(results)} results for {len(batch)} items")
            except BaseException as e:  # every waiter learns of the failure, none hangs
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                if not isinstance(e, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

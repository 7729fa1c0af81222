"""A thread that owns one database connection and runs ORM calls for an event loop.

Calls run one at a time, most urgent first: a cache write that a sample is waiting on goes
ahead of a batch of results that nobody waits on.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from django.db import connections

T = TypeVar("T")
URGENT, NORMAL = 0, 1


class DbThread:
    def __init__(self, name: str) -> None:
        self._jobs: queue.PriorityQueue[tuple[int, int, Callable[[], None] | None]] = queue.PriorityQueue()
        self._order = itertools.count()  # FIFO among calls of equal priority
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.submit(NORMAL, fn, *args, **kwargs)

    async def urgent(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.submit(URGENT, fn, *args, **kwargs)

    async def submit(self, priority: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        future: Future[T] = Future()

        def job() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as e:
                    future.set_exception(e)

        self._jobs.put((priority, next(self._order), job))
        return await asyncio.wrap_future(future)

    async def close(self) -> None:
        await self(connections.close_all)
        self._jobs.put((NORMAL + 1, next(self._order), None))
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def _serve(self) -> None:
        while (job := self._jobs.get()[2]) is not None:
            job()

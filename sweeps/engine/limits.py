"""Per-provider limits on calls: rate limits (requests and tokens per minute) and adaptive concurrency.

Rate limits follow GCRA (the generic cell rate algorithm), as the Redis limiter shared by worker
processes does: each call reserves its place in the provider's request and token schedules and
learns how long to wait before it may go. Reserving, instead of polling until allowed, keeps
waiting calls in order and costs one step per call.

Adaptive concurrency is AIMD, as TCP does it: a provider that answers 429 (too many requests)
gets half as many concurrent calls, and one more after a run of successes, so a sweep settles
just below what the provider accepts instead of hammering it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from sweeps.engine.provider import ProviderError

# A limit of N per minute lets calls worth N/12 (5 seconds' worth) go at once, then N/60 a second.
BURST_SECONDS = 5.0

# Sums of fractional intervals are inexact: a "wait" this short is rounding, not a wait.
FLOAT_NOISE = 1e-9

# 429 is "too many requests"; Anthropic answers 529 when it is overloaded.
THROTTLE_STATUSES = frozenset({429, 529})


class RateLimiter(Protocol):
    async def acquire(self, provider: str, tokens: int) -> float:
        """Count one call of `tokens` tokens; return the seconds it must wait before it goes (0 = now)."""
        ...


class LocalRateLimiter:
    """Rate limits within one process (the embedded mode), shared by the sweeps of all its threads.

    limits: provider name -> (requests per minute, tokens per minute); None means unlimited.
    """

    def __init__(
        self,
        limits: Mapping[str, tuple[int | None, int | None]],
        *,
        burst_seconds: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {name: (rpm, tpm) for name, (rpm, tpm) in limits.items() if rpm or tpm}
        self._burst = burst_seconds
        self._clock = clock
        # When each schedule is next free (its theoretical arrival time), per (provider, "requests"|"tokens").
        self._free_at: dict[tuple[str, str], float] = {}
        # Sweeps in other threads run other event loops: a lock keeps the schedules consistent.
        self._lock = threading.Lock()

    async def acquire(self, provider: str, tokens: int) -> float:
        limit = self._limits.get(provider)
        if limit is None:
            return 0.0
        rpm, tpm = limit
        with self._lock:
            now = self._clock()
            wait = 0.0
            for schedule, per_minute, cost in (("requests", rpm, 1), ("tokens", tpm, max(1, tokens))):
                if per_minute:
                    key = (provider, schedule)
                    free_at = max(self._free_at.get(key, now), now) + cost * 60 / per_minute
                    self._free_at[key] = free_at
                    wait = max(wait, free_at - self._burst - now)
            return wait if wait > FLOAT_NOISE else 0.0


class AdaptiveLimit:
    """How many calls to one provider may run at once, adapted to sustained 429s (AIMD).

    Outcomes are judged a round at a time, a round being as many calls as the limit: a round in
    which more than a quarter of the calls were throttled halves the limit (never below 1); a
    round with no throttle at all adds one, up to `ceiling` (the sweep's max_concurrency).
    Scattered 429s, which their Retry-After already paces, leave it where it is: halving on each
    of them would starve a provider that is merely busy now and then.
    """

    SUSTAINED = 0.25  # the share of throttled calls in a round that means "too many of us"

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self.active = 0
        self._round = 0  # calls judged in the current round
        self._throttled = 0  # of which throttled
        self._waiters: deque[asyncio.Future[None]] = deque()

    def has_room(self) -> bool:
        return self.active < self.limit

    async def room(self) -> None:
        """Return when a call may have room again (check has_room() again: another may take it first)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def start(self) -> None:
        self.active += 1

    def finish(self, *, ok: bool, throttled: bool = False) -> None:
        """The call ended: a success, a throttle (429) or another failure, which says nothing."""
        self.active -= 1
        if ok or throttled:
            self._round += 1
            self._throttled += throttled
            if self._round >= self.limit:
                if self._throttled > self.SUSTAINED * self._round:
                    self.limit = max(1, self.limit // 2)
                elif not self._throttled:
                    self.limit = min(self.ceiling, self.limit + 1)
                self._round = self._throttled = 0
        room = self.limit - self.active
        while room > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(None)
                room -= 1


class AdaptiveConcurrency:
    """One AdaptiveLimit per provider, each starting at (and bounded by) the sweep's max_concurrency."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency
        self._limits: dict[str, AdaptiveLimit] = {}

    def of(self, provider: str) -> AdaptiveLimit:
        limit = self._limits.get(provider)
        if limit is None:
            limit = self._limits[provider] = AdaptiveLimit(self.max_concurrency)
        return limit


def is_throttle(error: ProviderError) -> bool:
    """The provider asked us to slow down (not: the account is out of credit)."""
    return error.status in THROTTLE_STATUSES and not error.quota_exhausted

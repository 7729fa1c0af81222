"""Per-provider limits: the in-process GCRA rate limiter and AIMD adaptive concurrency."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sweeps.engine.limits import (
    AdaptiveConcurrency,
    AdaptiveLimit,
    LocalRateLimiter,
    is_throttle,
)
from sweeps.engine.provider import ProviderError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------
# LocalRateLimiter
# ---------------------------------------------------------------------------------------------


async def test_requests_per_minute_allow_a_burst_then_pace_calls():
    limiter = LocalRateLimiter({"p": (600, None)}, burst_seconds=0.5, clock=Clock())  # 10/s, burst 5

    waits = [await limiter.acquire("p", 1) for _ in range(15)]

    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1 * k for k in range(1, 11)])  # each call waits its turn


async def test_capacity_comes_back_as_time_passes():
    clock = Clock()
    limiter = LocalRateLimiter({"p": (60, None)}, burst_seconds=2.0, clock=clock)  # 1/s, burst 2
    assert [await limiter.acquire("p", 1) for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])

    clock.now += 1.5  # the third call's turn came 0.5 s ago; one more second's worth is free
    assert await limiter.acquire("p", 1) == pytest.approx(0.5)

    clock.now += 60.0  # idle for long: back to a full burst, not more
    assert [await limiter.acquire("p", 1) for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])


async def test_tokens_per_minute_count_the_tokens_of_each_call():
    limiter = LocalRateLimiter({"p": (None, 6000)}, burst_seconds=1.0, clock=Clock())  # 100 tokens/s, burst 100

    assert await limiter.acquire("p", 100) == 0.0
    assert await limiter.acquire("p", 100) == pytest.approx(1.0)
    assert await limiter.acquire("p", 50) == pytest.approx(1.5)


async def test_with_both_limits_a_call_waits_for_the_stricter():
    limiter = LocalRateLimiter({"p": (60, 60_000)}, burst_seconds=1.0, clock=Clock())  # 1 request/s, 1000 tokens/s

    assert await limiter.acquire("p", 10) == 0.0
    assert await limiter.acquire("p", 10) == pytest.approx(1.0)  # requests: 1/s
    assert await limiter.acquire("p", 5000) == pytest.approx(4.02)  # tokens: 5020 of them, 1000/s, 1000 of burst


async def test_unlimited_and_unknown_providers_never_wait():
    limiter = LocalRateLimiter({"p": (None, None), "q": (1, 1)}, clock=Clock())
    assert [await limiter.acquire(name, 10**6) for name in ("p", "other")] == [0.0, 0.0]


async def test_providers_have_separate_schedules():
    limiter = LocalRateLimiter({"p": (60, None), "q": (60, None)}, burst_seconds=1.0, clock=Clock())
    assert [await limiter.acquire(name, 1) for name in ("p", "q", "p", "q")] == pytest.approx([0.0, 0.0, 1.0, 1.0])


def test_sweeps_on_other_threads_share_one_schedule():
    """One limiter serves every sweep thread of the process, each on its own event loop:
    every call gets its own turn, none two the same."""
    limiter = LocalRateLimiter({"p": (6000, None)}, burst_seconds=0.0, clock=Clock())  # a turn each 10 ms
    waits: list[float] = []

    def sweep_thread() -> None:
        async def calls() -> list[float]:
            return [await limiter.acquire("p", 1) for _ in range(200)]

        waits.extend(asyncio.run(calls()))

    threads = [threading.Thread(target=sweep_thread) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == pytest.approx([0.01 * k for k in range(1, 1201)])


# ---------------------------------------------------------------------------------------------
# AdaptiveLimit (AIMD)
# ---------------------------------------------------------------------------------------------


OK, THROTTLED, FAILED = "ok", "429", "500"  # a success, a throttle, another failure (a 500, a timeout)


def start(limit: AdaptiveLimit, n: int) -> None:
    for _ in range(n):
        assert limit.has_room()
        limit.start()


def end(limit: AdaptiveLimit, outcome: str) -> None:
    limit.finish(ok=outcome == OK, throttled=outcome == THROTTLED)


def one_by_one(limit: AdaptiveLimit, outcomes) -> list[int]:
    """Each call starts and ends before the next; the limit after each."""
    seen = []
    for outcome in outcomes:
        start(limit, 1)
        end(limit, outcome)
        seen.append(limit.limit)
    assert limit.active == 0
    return seen


def throttled_round(limit: AdaptiveLimit) -> None:
    """One round in which every call was throttled: the limit halves."""
    before = limit.limit
    one_by_one(limit, [THROTTLED] * before)
    assert limit.limit == max(1, before // 2)


def test_starts_at_the_ceiling_and_has_room_until_it_is_reached():
    limit = AdaptiveLimit(3)
    start(limit, 3)
    assert limit.limit == 3 and limit.active == 3 and not limit.has_room()
    end(limit, FAILED)
    assert limit.active == 2 and limit.has_room()


def test_sustained_throttling_halves_the_limit_once_per_round_down_to_one():
    limit = AdaptiveLimit(16)

    seen = one_by_one(limit, [THROTTLED] * 36)

    # A round is as many calls as the limit: 16 calls at 16, then 8 at 8, 4 at 4, 2 at 2, 1 at 1.
    assert seen == [16] * 15 + [8] + [8] * 7 + [4] + [4] * 3 + [2] + [2] + [1] + [1] * 6


def test_calls_that_were_all_running_together_make_one_round():
    limit = AdaptiveLimit(16)
    start(limit, 16)
    for _ in range(15):  # the verdict waits for the whole round, however throttled it looks
        end(limit, THROTTLED)
        assert limit.limit == 16
    end(limit, OK)
    assert limit.limit == 8 and limit.active == 0

    start(limit, 8)
    assert not limit.has_room()
    for _ in range(8):
        end(limit, THROTTLED)
    assert limit.limit == 4  # the next round: one more halving, not eight


@pytest.mark.parametrize(
    "throttles, after",
    [
        (0, 9),  # a clean round: one more
        (1, 8),  # 1 in 8: scattered, it stays
        (2, 8),  # exactly a quarter: still not "more than a quarter"
        (3, 4),  # more than a quarter: halved
        (8, 4),
    ],
)
def test_a_round_is_judged_by_its_share_of_throttled_calls(throttles, after):
    limit = AdaptiveLimit(16)
    throttled_round(limit)  # 16 -> 8, below the ceiling: it may grow or shrink
    outcomes = [OK] * (8 - throttles) + [THROTTLED] * throttles

    seen = one_by_one(limit, outcomes)

    assert seen == [8] * 7 + [after]  # judged at the round's end, not before


@pytest.mark.parametrize("phase", range(10))
def test_scattered_throttles_never_change_the_limit(phase):
    """1 call in 10 throttled, wherever it falls in the round: the limit stays put, round after round."""
    limit = AdaptiveLimit(20)
    throttled_round(limit)  # 20 -> 10: room to grow, and to shrink
    outcomes = [THROTTLED if i % 10 == phase else OK for i in range(500)]

    assert one_by_one(limit, outcomes) == [10] * 500


def test_scattered_throttles_among_concurrent_calls_never_change_the_limit():
    limit = AdaptiveLimit(20)
    throttled_round(limit)
    for n in range(50):
        start(limit, 10)
        assert not limit.has_room()
        for i in range(10):
            end(limit, THROTTLED if i == n % 10 else OK)
        assert limit.limit == 10 and limit.active == 0


def test_clean_rounds_add_one_per_round_back_to_the_ceiling():
    limit = AdaptiveLimit(4)
    throttled_round(limit)  # 4 -> 2
    throttled_round(limit)  # 2 -> 1

    seen = one_by_one(limit, [OK] * 14)

    # +1 after each round of `limit` successes (1, then 2, then 3), then capped at 4.
    assert seen == [2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4]


def test_growth_from_one_to_a_large_ceiling_takes_one_round_per_step():
    limit = AdaptiveLimit(32)
    while limit.limit > 1:
        throttled_round(limit)

    seen = one_by_one(limit, [OK] * 600)

    expected = [n + 1 if i == n - 1 else n for n in range(1, 32) for i in range(n)]
    assert seen == expected + [32] * (600 - len(expected))


def test_each_round_is_judged_on_its_own_calls():
    limit = AdaptiveLimit(8)
    throttled_round(limit)  # 8 -> 4

    seen = one_by_one(limit, [THROTTLED, THROTTLED, OK, OK] + [OK, OK] + [OK, OK, OK])

    # Half of the first round throttled: 2. The next round, clean, is not blamed for it: 3.
    assert seen == [4, 4, 4, 2] + [2, 3] + [3, 3, 4]


def test_other_failures_are_not_judged():
    limit = AdaptiveLimit(8)
    throttled_round(limit)  # 8 -> 4

    # Not the provider asking for less: they neither end a round nor dilute its throttles.
    seen = one_by_one(limit, [OK] + [FAILED] * 6 + [OK, OK] + [FAILED] * 3 + [OK])
    assert seen == [4] * 12 + [5]  # the round ends with the fourth success

    seen = one_by_one(limit, [THROTTLED, THROTTLED] + [FAILED] * 10 + [OK, OK, OK])
    assert seen == [5] * 14 + [2]  # 2 throttled of 5 judged: halved, as if the failures were not there

    seen = one_by_one(limit, [FAILED] * 50)
    assert seen == [2] * 50 and limit.active == 0


def test_the_limit_never_leaves_one_to_the_ceiling():
    limit = AdaptiveLimit(1)
    assert one_by_one(limit, [THROTTLED] * 5 + [OK] * 5 + [FAILED] * 5) == [1] * 15


async def test_waiters_are_woken_as_room_frees_up():
    limit = AdaptiveLimit(2)
    start(limit, 2)
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await limit.room()
        woken.append(n)
        limit.start()  # as a caller does once it has room

    waiters = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert woken == []

    end(limit, FAILED)
    await asyncio.sleep(0)
    assert woken == [0]  # one free place: one waiter, the first
    end(limit, FAILED)
    await asyncio.sleep(0)
    assert woken == [0, 1]
    assert limit.active == 2 and limit.limit == 2
    waiters[2].cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


async def test_a_round_that_raises_the_limit_wakes_a_waiter_for_the_new_place_too():
    limit = AdaptiveLimit(4)
    throttled_round(limit)  # 4 -> 2
    start(limit, 2)
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await limit.room()
        woken.append(n)
        limit.start()

    waiters = [asyncio.create_task(waiter(n)) for n in range(4)]
    await asyncio.sleep(0)

    end(limit, OK)  # half a round: one place, one waiter
    await asyncio.sleep(0)
    assert woken == [0] and limit.limit == 2
    end(limit, OK)  # a clean round: limit 3, with one running: two places
    await asyncio.sleep(0)
    assert woken == [0, 1, 2] and limit.limit == 3 and limit.active == 3
    waiters[3].cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


async def test_after_a_halving_waiters_wait_until_the_calls_running_fall_below_the_limit():
    limit = AdaptiveLimit(4)
    start(limit, 4)
    for _ in range(3):
        end(limit, THROTTLED)
    start(limit, 3)  # the round is not over: the limit is still 4
    woken = asyncio.create_task(limit.room())
    await asyncio.sleep(0)

    end(limit, THROTTLED)  # the round ends, all throttled: limit 2, with 3 still running
    await asyncio.sleep(0)
    assert limit.limit == 2 and limit.active == 3 and not limit.has_room() and not woken.done()
    end(limit, OK)
    await asyncio.sleep(0)
    assert limit.active == 2 and not woken.done()
    end(limit, FAILED)  # one running, limit 2: room
    await asyncio.sleep(0)
    assert woken.done() and limit.has_room()


async def test_a_cancelled_waiter_does_not_take_a_wakeup():
    limit = AdaptiveLimit(1)
    start(limit, 1)
    first = asyncio.create_task(limit.room())
    second = asyncio.create_task(limit.room())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)

    end(limit, OK)
    await asyncio.wait_for(second, 1)
    assert first.cancelled()


def test_each_provider_adapts_on_its_own():
    adaptive = AdaptiveConcurrency(8)
    assert adaptive.of("a") is adaptive.of("a")
    throttled_round(adaptive.of("a"))
    assert (adaptive.of("a").limit, adaptive.of("b").limit) == (4, 8)
    assert adaptive.of("b").ceiling == 8


@pytest.mark.parametrize(
    "error, throttle",
    [
        (ProviderError("too many", status=429), True),
        (ProviderError("overloaded", status=529), True),
        (ProviderError("out of credit", status=429, quota_exhausted=True), False),
        (ProviderError("server error", status=503), False),
        (ProviderError("timed out"), False),
    ],
)
def test_what_counts_as_a_throttle(error, throttle):
    assert is_throttle(error) is throttle

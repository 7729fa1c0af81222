from __future__ import annotations

import asyncio
import random

import pytest

from sweeps.engine.budget import Budget, estimate_tokens


async def test_reserve_refuses_what_would_exceed_the_token_limit():
    budget = Budget(max_tokens=100, max_cost_usd=None)

    assert await budget.reserve(60, 0.0) is not None
    assert await budget.reserve(41, 0.0) is None
    assert budget.exhausted_reason == "token_budget"
    assert budget.reserved_tokens == 60


async def test_reserve_may_use_the_limit_exactly():
    budget = Budget(max_tokens=100, max_cost_usd=1.0)

    assert await budget.reserve(100, 1.0) is not None
    assert budget.exhausted_reason is None


async def test_reserve_refuses_what_would_exceed_the_cost_limit():
    budget = Budget(max_tokens=None, max_cost_usd=1.0)

    assert await budget.reserve(10, 0.75) is not None
    assert await budget.reserve(10, 0.5) is None
    assert budget.exhausted_reason == "cost_budget"
    assert budget.reserved_cost == pytest.approx(0.75)


async def test_refused_reservation_holds_nothing():
    budget = Budget(max_tokens=100, max_cost_usd=1.0)
    await budget.reserve(90, 0.1)

    await budget.reserve(20, 0.1)

    assert (budget.reserved_tokens, budget.reserved_cost) == (90, pytest.approx(0.1))


async def test_what_was_spent_before_counts_against_the_limit():
    budget = Budget(max_tokens=100, max_cost_usd=None, spent_tokens=95)

    assert await budget.reserve(6, 0.0) is None
    assert await budget.reserve(5, 0.0) is not None


async def test_settle_replaces_the_estimate_by_the_actual_usage():
    budget = Budget(max_tokens=100, max_cost_usd=1.0)
    reservation = await budget.reserve(50, 0.5)

    await budget.settle(reservation, 20, 0.125)

    assert (budget.spent_tokens, budget.spent_cost) == (20, 0.125)
    assert (budget.reserved_tokens, budget.reserved_cost) == (0, 0.0)
    assert await budget.reserve(80, 0.875) is not None  # the unused estimate is free again


async def test_release_frees_the_estimate_and_spends_nothing():
    budget = Budget(max_tokens=100, max_cost_usd=None)
    reservation = await budget.reserve(100, 0.0)
    assert await budget.reserve(1, 0.0) is None

    await budget.release(reservation)

    assert (budget.spent_tokens, budget.reserved_tokens) == (0, 0)
    assert await budget.reserve(100, 0.0) is not None


async def test_a_reservation_closes_only_once():
    budget = Budget(max_tokens=100, max_cost_usd=None)
    reservation = await budget.reserve(10, 0.0)
    await budget.settle(reservation, 10, 0.0)

    with pytest.raises(RuntimeError):
        await budget.release(reservation)
    assert budget.reserved_tokens == 0


async def test_without_limits_every_reservation_is_granted():
    budget = Budget(max_tokens=None, max_cost_usd=None)

    for _ in range(100):
        await budget.settle(await budget.reserve(10**9, 10**6), 10**9, 10**6)

    assert budget.spent_tokens == 10**11
    assert budget.exhausted_reason is None


async def test_actual_usage_above_the_estimate_is_spent_and_stops_the_next_reservation():
    budget = Budget(max_tokens=100, max_cost_usd=None)
    reservation = await budget.reserve(90, 0.0)

    await budget.settle(reservation, 130, 0.0)

    assert budget.spent_tokens == 130
    assert await budget.reserve(1, 0.0) is None


async def _spend(budget: Budget, rng: random.Random, *, overshoot: int, check) -> int:
    """One worker's loop: reserve an estimate, 'call', settle what was used. Returns calls made."""
    calls = 0
    while True:
        estimate_tokens, estimate_cost = rng.randint(5, 40), rng.randint(1, 8) / 64
        reservation = await budget.reserve(estimate_tokens, estimate_cost)
        check()
        if reservation is None:
            return calls
        await asyncio.sleep(rng.random() / 1000)
        if rng.random() < 0.1:
            await budget.release(reservation)
        else:
            actual_tokens = rng.randint(1, estimate_tokens + overshoot)
            await budget.settle(reservation, actual_tokens, estimate_cost * rng.random())
        calls += 1
        check()


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", ["token", "cost"])
async def test_concurrent_calls_never_hold_more_than_the_limit(limit):
    budget = Budget(
        max_tokens=5_000 if limit == "token" else None,
        max_cost_usd=20.0 if limit == "cost" else None,
    )
    worst = {"tokens": 0, "cost": 0.0}

    def check():
        worst["tokens"] = max(worst["tokens"], budget.spent_tokens + budget.reserved_tokens)
        worst["cost"] = max(worst["cost"], budget.spent_cost + budget.reserved_cost)

    rngs = [random.Random(i) for i in range(32)]
    calls = await asyncio.gather(*(_spend(budget, rng, overshoot=0, check=check) for rng in rngs))

    assert sum(calls) > 100  # the limit was reached by many calls, not by the first few
    assert budget.exhausted_reason == f"{limit}_budget"
    if limit == "token":
        assert budget.spent_tokens > 4_000  # near the limit, it did not give up early
        assert worst["tokens"] <= 5_000
    else:
        assert worst["cost"] <= 20.0 + 1e-9
    assert budget.reserved_tokens == 0


@pytest.mark.asyncio
async def test_overshoot_is_bounded_by_the_calls_in_flight():
    budget = Budget(max_tokens=5_000, max_cost_usd=None)
    workers, overshoot = 16, 5

    rngs = [random.Random(100 + i) for i in range(workers)]
    await asyncio.gather(*(_spend(budget, rng, overshoot=overshoot, check=lambda: None) for rng in rngs))

    # Each call in flight when the limit is reached may use up to `overshoot` more than it held.
    assert budget.exhausted_reason == "token_budget"
    assert budget.spent_tokens <= 5_000 + workers * overshoot


def test_estimate_tokens_is_about_four_characters_per_token_and_never_zero():
    assert estimate_tokens("") == 1
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("a" * 400) == 100
    assert estimate_tokens("a" * 401) == 101

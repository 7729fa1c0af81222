"""The budget ledger that every worker of a sweep shares, against a real Redis.

Several RedisBudget objects on one scope stand for several worker processes of one sweep: each
has its own connection and its own holder name, exactly as each worker's ledger does.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid

import pytest
from redis import Redis

from sweeps.runner.budget import RedisBudget
from tests.engine.test_budget import _spend

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
async def ledgers():
    """ledgers(n, **limits): n workers' ledgers of one new sweep; all closed after the test."""
    made: list[RedisBudget] = []
    scope = f"test-{uuid.uuid4().hex}"

    def make(n: int = 1, **kwargs) -> list[RedisBudget]:
        kwargs.setdefault("max_tokens", None)
        kwargs.setdefault("max_cost_usd", None)
        new = [RedisBudget(REDIS_URL, scope=scope, holder=f"worker-{len(made) + i}", **kwargs) for i in range(n)]
        made.extend(new)
        return new

    yield make
    for ledger in made:
        await ledger.aclose()
    client = Redis.from_url(REDIS_URL)
    if keys := client.keys(f"promptlooper:budget:{scope}:*"):
        client.delete(*keys)
    client.close()


async def test_a_reservation_counts_what_the_other_workers_hold(ledgers):
    a, b = ledgers(2, max_tokens=100)

    assert await a.reserve(60, 0.0) is not None
    assert await b.reserve(41, 0.0) is None  # 60 held by a: 41 more would exceed 100
    assert b.exhausted_reason == "token_budget" and a.exhausted_reason is None
    assert await b.reserve(40, 0.0) is not None  # the limit may be used exactly


async def test_the_cost_limit_is_shared_too(ledgers):
    a, b, c = ledgers(3, max_cost_usd=1.0)

    assert await a.reserve(1, 0.5) is not None
    assert await b.reserve(1, 0.25) is not None
    assert await c.reserve(1, 0.5) is None
    assert c.exhausted_reason == "cost_budget"


async def test_settle_spends_what_was_used_for_every_worker_and_frees_the_rest(ledgers):
    a, b = ledgers(2, max_tokens=100, max_cost_usd=1.0)
    reservation = await a.reserve(90, 0.5)
    assert await b.reserve(20, 0.0) is None

    await a.settle(reservation, 30, 0.125)

    assert await b.spent() == (30, 0.125)
    assert await b.reserve(70, 0.875) is not None  # 30 spent + 70 = the limit
    assert await a.reserve(1, 0.0) is None


async def test_release_frees_the_estimate_and_spends_nothing(ledgers):
    a, b = ledgers(2, max_tokens=100)
    reservation = await a.reserve(100, 0.0)

    await a.release(reservation)

    assert await b.spent() == (0, 0.0)
    assert await b.reserve(100, 0.0) is not None
    with pytest.raises(RuntimeError):
        await a.release(reservation)


async def test_what_the_database_recorded_as_spent_counts_against_the_limit(ledgers):
    (a,) = ledgers(1, max_tokens=100, max_cost_usd=1.0, spent_tokens=95, spent_cost=0.5)

    assert await a.reserve(6, 0.0) is None
    assert await a.reserve(5, 0.0) is not None
    (b,) = ledgers(1, max_tokens=100, max_cost_usd=1.0, spent_tokens=0, spent_cost=0.0)  # an older figure
    assert await b.reserve(0, 0.51) is None  # it never lowers what the sweep spent


async def test_the_reservations_of_a_killed_worker_come_back_after_the_lease(ledgers):
    (dead,) = ledgers(1, max_tokens=100, ttl_seconds=0.3)
    (alive,) = ledgers(1, max_tokens=100)
    await dead.reserve(100, 0.0)
    dead._renewer.cancel()  # what SIGKILL does: nobody renews or releases its reservations again

    assert await alive.reserve(1, 0.0) is None
    for _ in range(100):
        if await alive.reserve(100, 0.0) is not None:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the dead worker's reservation never came back")


async def test_a_call_longer_than_the_lease_keeps_its_reservation(ledgers):
    (busy,) = ledgers(1, max_tokens=100, ttl_seconds=0.2)
    (other,) = ledgers(1, max_tokens=100)
    reservation = await busy.reserve(100, 0.0)

    await asyncio.sleep(1.0)  # five leases: the holder renews while its call is in flight

    assert await other.reserve(1, 0.0) is None
    await busy.settle(reservation, 100, 0.0)
    assert await other.spent() == (100, 0.0)


async def test_a_settle_after_the_reservation_expired_spends_without_freeing_others(ledgers):
    (slow,) = ledgers(1, max_tokens=100, ttl_seconds=0.2)
    (other,) = ledgers(1, max_tokens=100)
    late = await slow.reserve(60, 0.0)
    slow._renewer.cancel()  # stalled: the lease ran out
    await asyncio.sleep(0.4)
    held = await slow.reserve(30, 0.0)  # the worker comes back and reserves anew

    await slow.settle(late, 60, 0.0)

    assert held is not None and await other.spent() == (60, 0.0)
    assert await other.reserve(11, 0.0) is None  # 60 spent + 30 still held


async def test_reservations_made_together_go_in_one_round_trip(ledgers):
    (a,) = ledgers(1, max_tokens=1_000)
    scripts = 0
    script = a._reserve_script

    async def counting(*args, **kwargs):
        nonlocal scripts
        scripts += 1
        return await script(*args, **kwargs)

    a._reserve_script = counting
    granted = await asyncio.gather(*(a.reserve(30, 0.0) for _ in range(50)))

    assert sum(r is not None for r in granted) == 33  # 33 x 30 <= 1000: the guard still holds per call
    assert scripts == 1


@pytest.mark.parametrize("limit", ["token", "cost"])
async def test_workers_spending_at_once_never_exceed_the_limit_together(ledgers, limit):
    workers = ledgers(3, max_tokens=3_000 if limit == "token" else None, max_cost_usd=12.0 if limit == "cost" else None)

    rngs = [random.Random(i) for i in range(24)]
    calls = await asyncio.gather(
        *(_spend(workers[i % 3], rng, overshoot=0, check=lambda: None) for i, rng in enumerate(rngs))
    )

    tokens, cost = await workers[0].spent()
    assert sum(calls) > 50
    if limit == "token":
        assert 2_500 < tokens <= 3_000
    else:
        assert 10.0 < cost <= 12.0 + 1e-9
    assert {w.exhausted_reason for w in workers} <= {f"{limit}_budget", None}


async def test_every_worker_shares_the_ledger_when_there_is_redis_and_a_limit(settings):
    from django.utils import timezone

    from sweeps.engine.budget import Budget
    from sweeps.models import Sweep
    from sweeps.runner.budget import sweep_budget

    sweep = Sweep(pk=1, max_tokens=100, tokens_in=30, tokens_out=10, cost_usd=0.0, created_at=timezone.now())
    settings.REDIS_URL = ""  # embedded mode: one process, its own ledger
    assert isinstance(sweep_budget(sweep, "w"), Budget)
    settings.REDIS_URL = REDIS_URL
    unlimited = Sweep(pk=2, tokens_in=0, tokens_out=0, cost_usd=0.0, created_at=timezone.now())
    assert isinstance(sweep_budget(unlimited, "w"), Budget)  # nothing to guard: no round trip
    a, b = sweep_budget(sweep, "worker-a"), sweep_budget(sweep, "worker-b")
    try:
        assert isinstance(a, RedisBudget)
        assert await a.reserve(60, 0.0) is not None  # 40 recorded as spent + 60 = the limit
        assert await b.reserve(1, 0.0) is None
    finally:
        await a.aclose()
        await b.aclose()
        client = Redis.from_url(REDIS_URL)
        client.delete(*client.keys(f"promptlooper:budget:1:{int(sweep.created_at.timestamp() * 1_000_000)}:*"))
        client.close()

"""A sweep's budget holds for the whole sweep, however many real rqworker processes execute it."""

from __future__ import annotations

import pytest
from redis import Redis

from sweeps.engine.budget import estimate_tokens
from sweeps.models import RunSample
from sweeps.services import ServiceError
from sweeps.services.experiments import experiment_create, experiment_update
from sweeps.services.sweeps import sweep_resume, sweep_start
from tests.conftest import wait_for, wait_for_sweep
from tests.integration.test_rq_workers import (  # noqa: F401
    RQ_REDIS_URL,
    rq_redis,
    rqworkers,
    use_queue,
)

pytestmark = pytest.mark.django_db(transaction=True)

MAX_TOKENS_OUT = 40
# Words of about 7 characters: the reservation's estimate (4 characters a token) is above what
# the mock provider counts (1.3 tokens a word), so no call uses more than it reserved and the
# budget may not be overshot at all. Each call reserves about 85 tokens and uses about 80.
ROW = " ".join(f"word{j} alpha beta" for j in range(10))


def budget_spec(budget: dict, rows: int = 300) -> dict:
    return {
        "name": "budget across workers",
        "pipeline": [{"name": "a", "prompt": "Answer: {{ t }}", "model": "mock/echo",
                      "params": {"max_tokens": MAX_TOKENS_OUT}}],
        "dataset": [{"t": f"{i} {ROW}"} for i in range(rows)],
        "max_concurrency": 64,  # every worker could start far more calls than the budget pays for
        "budget": budget,
    }  # fmt: skip


def calls_used_at_most_their_estimates(sweep) -> bool:
    stages = [
        s for stages in RunSample.objects.filter(sweep=sweep).values_list("stages", flat=True) for s in stages or []
    ]
    return bool(stages) and all(
        s["cached"] or (s["tokens_in"] <= estimate_tokens(s["prompt"]) and s["tokens_out"] <= MAX_TOKENS_OUT)
        for s in stages
    )


def settle(sweep):
    """The sweep paused, and every worker has recorded or released what it held."""
    sweep = wait_for_sweep(sweep, timeout=60)
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status="running").exists(), timeout=30)
    sweep.refresh_from_db()
    return sweep


@pytest.fixture
def budget_keys():
    """The shared ledgers' keys live beside RQ's in the workers' Redis: removed after the test."""
    yield
    redis = Redis.from_url(RQ_REDIS_URL)
    if keys := list(redis.scan_iter("promptlooper:budget:*")):
        redis.delete(*keys)
    redis.close()


def test_two_workers_share_one_token_budget_and_a_raised_one_after_resume(user, rq_redis, budget_keys, settings,
                                                                          mock_latency):  # fmt: skip
    use_queue(settings)
    mock_latency(300)
    experiment = experiment_create(owner=user, data=budget_spec({"max_tokens": 3000}))
    with rqworkers(2, rq_redis):
        sweep = settle(sweep_start(experiment=experiment))

        assert sweep.status == "paused" and sweep.stopped_reason == "token_budget"
        spent = sweep.tokens_in + sweep.tokens_out
        # Each call in flight used no more than it reserved, so nothing may go beyond the budget.
        # With a budget per worker this was about 2 x 3,000.
        assert calls_used_at_most_their_estimates(sweep)
        assert 2000 < spent <= 3000
        with pytest.raises(
            ServiceError, match=rf"{spent:,} spent \+ what the calls in flight .* max_tokens 3,000 \(reservations count"
        ):
            sweep_resume(sweep=sweep)

        experiment_update(
            experiment=experiment, data={**experiment.parsed_spec().to_dict(), "budget": {"max_tokens": 6000}}
        )
        experiment.refresh_from_db()
        sweep = settle(sweep_resume(sweep=sweep))

    assert sweep.status == "paused" and sweep.stopped_reason == "token_budget"
    # Both workers started again from what the sweep had spent, not each from zero.
    assert calls_used_at_most_their_estimates(sweep)
    assert 5000 < sweep.tokens_in + sweep.tokens_out <= 6000


def test_three_workers_share_one_cost_budget(user, rq_redis, budget_keys, settings, mock_latency):
    use_queue(settings)
    mock_latency(300)  # priced at $0.15 / $0.60 per million tokens in / out: about $0.00004 a call
    max_cost = 0.0012
    experiment = experiment_create(owner=user, data=budget_spec({"max_cost_usd": max_cost}))
    with rqworkers(3, rq_redis):
        sweep = settle(sweep_start(experiment=experiment))

    assert sweep.status == "paused" and sweep.stopped_reason == "cost_budget"
    assert calls_used_at_most_their_estimates(sweep)
    assert 0.0008 < sweep.cost_usd <= max_cost + 1e-12  # a budget per worker spent about 3 x as much
    with pytest.raises(
        ServiceError,
        match=rf"cost budget: \${sweep.cost_usd:.4f} spent \+ what the calls in flight .* max_cost_usd \$0\.0012 \(reservations count",
    ):
        sweep_resume(sweep=sweep)

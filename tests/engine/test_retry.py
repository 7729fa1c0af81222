"""Backoff with full jitter (bounds, growth, cap); Retry-After, waited for with up to 10 % of jitter, never less."""

from __future__ import annotations

import random

import pytest

from sweeps.engine.retry import RetryPolicy


def draws(policy: RetryPolicy, attempt: int, retry_after: float | None = None, n: int = 2000) -> list[float]:
    rng = random.Random(attempt)
    return [policy.delay(attempt, retry_after, rng) for _ in range(n)]


def test_defaults():
    assert RetryPolicy() == RetryPolicy(max_attempts=5, base=0.5, cap=30.0, max_wait=300.0)


@pytest.mark.parametrize(
    "retry_after, waits", [(None, True), (0.0, True), (300.0, True), (300.5, False), (86_400, False)]
)
def test_a_retry_after_is_waited_for_up_to_max_wait(retry_after, waits):
    assert RetryPolicy(max_wait=300.0).waits_for(retry_after) is waits


@pytest.mark.parametrize("attempt, bound", [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (200, 30.0)])
def test_the_bound_doubles_from_base_up_to_the_cap(attempt, bound):
    waits = draws(RetryPolicy(base=0.5, cap=30.0), attempt)
    assert all(0.0 <= w <= bound for w in waits)
    # Full jitter: the draws spread over the whole range, not around the bound.
    assert min(waits) < 0.05 * bound and max(waits) > 0.95 * bound
    assert 0.4 * bound < sum(waits) / len(waits) < 0.6 * bound


@pytest.mark.parametrize("retry_after", [0.2, 3.0, 60.0])
def test_retry_after_is_a_floor_with_at_most_ten_percent_of_jitter(retry_after):
    waits = draws(RetryPolicy(base=1.0, cap=4.0), 3, retry_after=retry_after)
    assert all(retry_after <= w <= 1.1 * retry_after for w in waits)  # beyond the cap too: the server knows
    # Uniform over the whole 10 %: the calls turned away together do not come back together.
    assert min(waits) < 1.005 * retry_after and max(waits) > 1.095 * retry_after
    assert 1.045 * retry_after < sum(waits) / len(waits) < 1.055 * retry_after
    assert len(set(waits)) == len(waits)


@pytest.mark.parametrize("attempt", [1, 2, 5, 200])
def test_retry_after_replaces_the_backoff_whatever_the_attempt(attempt):
    """No exponential term: a short Retry-After is not stretched to the backoff's bound."""
    policy = RetryPolicy(base=10.0, cap=30.0)  # the backoff alone would wait up to 10..30 s
    waits = draws(policy, attempt, retry_after=1.0)
    assert all(1.0 <= w <= 1.1 for w in waits)
    # The same draws at any attempt, under any policy: only Retry-After and the jitter count.
    same_seed = random.Random(attempt)
    assert waits == [RetryPolicy(base=0.5, cap=1.0).delay(1, 1.0, same_seed) for _ in waits]


def test_a_zero_retry_after_means_retry_at_once():
    assert draws(RetryPolicy(base=1.0, cap=4.0), 3, retry_after=0.0, n=20) == [0.0] * 20


def test_no_retry_after_means_backoff_only():
    assert draws(RetryPolicy(base=0.0, cap=0.0), 3, retry_after=None, n=5) == [0.0] * 5


def test_the_same_seed_gives_the_same_waits():
    policy = RetryPolicy()
    assert draws(policy, 2) == draws(policy, 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"base": -1.0}, "base"),
        ({"base": 10.0, "cap": 1.0}, "cap"),
        ({"max_wait": -1.0}, "max_wait"),
    ],
)
def test_invalid_policies_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)

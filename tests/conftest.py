"""Shared fixtures. Integration tests use the real database configured by DATABASE_URL
(PostgreSQL in CI, SQLite otherwise) and the embedded worker thread, as `make run` does."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

PASSWORDS = {"alice": "pw-alice-123", "bob": "pw-bob-123"}  # of the `user` and `other_user` fixtures


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORDS["alice"])


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password=PASSWORDS["bob"])


def logged_in(user, **client_options):
    """A test client signed in as `user` (one of the fixtures' users) with its password, through
    the authentication backend as a person signs in."""
    from django.test import Client

    client = Client(**client_options)
    assert client.login(username=user.username, password=PASSWORDS[user.username])
    return client


@pytest.fixture
def mock_latency(db):
    """The built-in mock provider, with simulated latency (ms) set by calling this; 0 at first.
    (Transactional tests flush tables, so the row the migration made may be gone.)"""
    from sweeps.models import Provider

    def set_latency(ms: float, jitter: float = 0.0) -> None:
        Provider.objects.update_or_create(
            name="mock",
            defaults={"kind": "mock", "price_in_per_mtok": 0.15, "price_out_per_mtok": 0.60,
                      "options": {"latency_ms": ms, "jitter": jitter}},
        )  # fmt: skip

    set_latency(0)
    return set_latency


@pytest.fixture(autouse=True)
def empty_cache():
    """Every test starts with an empty Django cache, as a fresh process does. Cached values are
    keyed by primary keys, which SQLite hands out again after a test's rollback: a verdict cached
    by one test would otherwise be served to the next one's different runs."""
    from django.core.cache import cache, caches

    cache.clear()
    if caches["throttle"].__class__.__name__ == "LocMemCache":  # never flush a Redis
        caches["throttle"].clear()  # failed sign-ins of one test never throttle the next


@pytest.fixture(autouse=True)
def join_sweep_threads():
    """No embedded sweep thread may outlive its test (it would write into the next one)."""
    yield
    for thread in threading.enumerate():
        if thread.name.startswith("sweep-"):
            thread.join(timeout=30)
            assert not thread.is_alive(), f"{thread.name} still running after its test"


@pytest.fixture
def provider_calls(monkeypatch):
    """Counts real calls into the mock provider (cache hits never reach it)."""
    from sweeps.providers.mock import MockProvider

    calls: list[Any] = []
    original = MockProvider.complete

    async def counting(self, request):
        calls.append(request)
        return await original(self, request)

    monkeypatch.setattr(MockProvider, "complete", counting)
    return calls


def spec(**overrides: Any) -> dict[str, Any]:
    """A small valid spec: 2 models x 2 temperatures over 3 rows (12 samples, 2 stages each)."""
    data: dict[str, Any] = {
        "name": "Test experiment",
        "pipeline": [
            {"name": "summarize", "prompt": "Summarize this ticket: {{ ticket }}", "model": "mock/echo"},
            {"name": "label", "prompt": "Label: {{ summarize }}"},
        ],
        "dataset": [
            {"ticket": "billing charged twice", "expected": "billing"},
            {"ticket": "login broken", "expected": "login"},
            {"ticket": "parcel lost in shipping", "expected": "shipping"},
        ],
        "scorers": [{"type": "icontains", "value": "{{ expected }}"}],
        "sweep": {"type": "grid", "params": {"model": ["mock/echo", "mock/upper"], "params.temperature": [0.0, 1.0]}},
        "max_concurrency": 4,
    }
    data.update(overrides)
    return data


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_for_sweep(sweep, *, timeout: float = 30.0, until=("completed", "paused", "stopped", "failed")):
    def ended():
        sweep.refresh_from_db()
        return sweep.status in until

    wait_for(ended, timeout)
    return sweep

"""Two worker processes, each executing its own sweep, share one provider's rate limit through
Redis: the fake provider sees their combined requests within the limit, not twice it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
import redis

from sweeps.models import Provider
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests import servers
from tests.fakes.llm_server import FakeLLMServer

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# RedisRateLimiter's default prefix, which execute_sweep uses: only these keys are ours to delete.
LIMITER_KEYS = "promptlooper:ratelimit:openai:*"
KEY = f"sk-workers-{uuid.uuid4().hex}"

RATE_PER_MINUTE = 1200  # 20 requests a second, shared by both workers
BURST_SECONDS = 1  # so 20 may go at once
ROWS = 80  # per sweep: 160 requests, 140 paced at 20/s (7 s together); one worker alone would
# need 3 s, far more than the skew of two processes starting, so their calls overlap
PER_SECOND = RATE_PER_MINUTE / 60
BURST = PER_SECOND * BURST_SECONDS
# The limiter decides when a call may start; the server sees it a little later, the first calls
# of a worker most (they also make its HTTP client and open its connections). Requests allowed
# within any span of time so reach the server within that span plus this lag. On a loaded
# machine it passed 0.25 s; two per-process limits would still break it by 20 requests and more.
LAG = 0.4

# Each worker says when Django is up, then waits for the word, so both start calling together:
# otherwise one might finish before the other starts and a per-process limit would pass too.
WORKER = """
import sys
import django
django.setup()
import asyncio
from sweeps.runner.execution import execute_sweep
print("ready", flush=True)
sys.stdin.readline()
print(asyncio.run(execute_sweep(int(sys.argv[1]))), flush=True)
"""


def delete_limiter_keys() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        if keys := list(client.scan_iter(LIMITER_KEYS)):
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def limiter_keys():
    delete_limiter_keys()
    yield
    delete_limiter_keys()


def worst_window(times: list[float]) -> tuple[int, float, float]:
    """The window of request times that exceeds the limit most: (count, allowed, seconds)."""
    times = sorted(times)
    worst = (0, 0.0, 0.0)
    for i in range(len(times)):
        for j in range(i, len(times)):
            count, seconds = j - i + 1, times[j] - times[i]
            allowed = BURST + PER_SECOND * (seconds + LAG) + 1  # +1: a request on the edge
            if count - allowed > worst[0] - worst[1]:
                worst = (count, allowed, seconds)
    return worst


def sweep_spec(tag: str) -> dict[str, Any]:
    return {
        "name": f"Shared limit {tag}",
        "pipeline": [{"name": "answer", "prompt": "Answer {{ ticket }}", "model": "openai/gpt-4o-mini"}],
        "dataset": [{"ticket": f"{tag}-{i}"} for i in range(ROWS)],
        "scorers": [{"type": "contains", "value": "{{ ticket }}"}],
        "max_concurrency": 8,
    }


def test_two_worker_processes_share_one_provider_rate_limit(user, monkeypatch, limiter_keys):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(
        "sweeps.services.sweeps.dispatch_sweep", lambda sweep, **kwargs: []
    )  # the subprocesses run them
    with FakeLLMServer() as server:
        Provider.objects.update_or_create(
            name="openai",
            defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY", "enabled": True,
                      "requests_per_minute": RATE_PER_MINUTE, "tokens_per_minute": None, "options": {}},
        )  # fmt: skip
        sweeps = {
            tag: sweep_start(experiment=experiment_create(owner=user, data=sweep_spec(tag))) for tag in ("a", "b")
        }
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "promptlooper.settings_test",
            "DATABASE_URL": servers.session_database_url(),
            "REDIS_URL": REDIS_URL,
            "OPENAI_API_KEY": KEY,
            "PROMPTLOOPER_RATE_BURST_SECONDS": str(BURST_SECONDS),
        }
        env.pop("OPENAI_BASE_URL", None)
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(sweep.pk)],
                cwd=servers.ROOT,
                env=env,
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            for sweep in sweeps.values()
        ]
        try:
            for worker in workers:
                assert worker.stdout.readline().strip() == "ready", worker.communicate(timeout=30)
            for worker in workers:
                worker.stdin.write("go\n")
                worker.stdin.flush()
            results = [worker.communicate(timeout=60) for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        requests = list(server.requests)

    for worker, (out, err) in zip(workers, results):
        assert worker.returncode == 0 and out.strip() == "drained", err
    for sweep in sweeps.values():
        sweep.refresh_from_db()
        assert (sweep.status, sweep.completed, sweep.failed) == ("completed", ROWS, 0), sweep.error

    assert len(requests) == 2 * ROWS and {r.status for r in requests} == {200}
    times = sorted(r.received for r in requests)
    by_sweep = {tag: [r.received for r in requests if r.json["messages"][0]["content"].startswith(f"Answer {tag}-")]
                for tag in sweeps}  # fmt: skip
    # Both were calling at once (else this test could not tell a shared limit from two).
    overlap = min(max(t) for t in by_sweep.values()) - max(min(t) for t in by_sweep.values())
    assert overlap > 0, "the two workers never called at the same time"

    count, allowed, seconds = worst_window(times)
    assert count <= allowed, f"{count} requests within {seconds:.3f} s; the shared limit allows {allowed:.1f}"
    # And they were really held back: beyond the burst, the rest came at no more than the rate.
    assert times[-1] - times[0] >= (len(times) - BURST) / PER_SECOND - LAG

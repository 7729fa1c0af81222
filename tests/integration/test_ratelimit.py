"""The shared rate limiter against a real Redis, from one and from several processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from sweeps.runner.ratelimit import RedisRateLimiter
from tests.servers import ROOT

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def within_rate(times: list[float], per_second: float, burst: float) -> bool:
    """No window [a, b] of the call times holds more calls than the burst plus the rate allows."""
    times = sorted(times)
    return all(
        j - i + 1 <= burst + per_second * (times[j] - times[i]) + 1
        for i in range(len(times))
        for j in range(i, len(times))
    )


async def paced_calls(limiter: RedisRateLimiter, provider: str, n: int, tokens: int = 1) -> list[float]:
    times = []
    for _ in range(n):
        await asyncio.sleep(await limiter.acquire(provider, tokens))
        times.append(time.time())
    return times


async def test_requests_per_minute_allow_a_burst_then_pace_calls():
    prefix = f"test-{uuid.uuid4().hex}"
    limiter = RedisRateLimiter(REDIS_URL, {"p": (600, None)}, prefix=prefix, burst_seconds=0.5)  # 10/s, burst 5
    try:
        waits = [await limiter.acquire("p", 1) for _ in range(15)]
    finally:
        await limiter.aclose()
    assert waits[:5] == [0.0] * 5  # the burst goes at once
    assert all(b > a for a, b in zip(waits[5:], waits[6:]))  # then each waits its turn, 0.1 s apart
    assert waits[-1] == pytest.approx(1.0, abs=0.05)


async def test_tokens_per_minute_count_the_tokens_of_each_call():
    limiter = RedisRateLimiter(REDIS_URL, {"p": (None, 6000)}, prefix=f"test-{uuid.uuid4().hex}", burst_seconds=1)
    try:
        first = await limiter.acquire("p", 100)  # 100 of the 100-token burst
        second = await limiter.acquire("p", 100)  # must wait for 100 more tokens at 100 tokens/s
    finally:
        await limiter.aclose()
    assert first == 0.0 and second == pytest.approx(1.0, abs=0.05)


async def test_unlimited_providers_never_touch_redis():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", {"p": (None, None)})  # nothing listens there
    assert await limiter.acquire("p", 10) == 0.0 and await limiter.acquire("other", 10) == 0.0
    await limiter.aclose()


WORKER = """
import asyncio, json, sys
from sweeps.runner.ratelimit import RedisRateLimiter
from tests.integration.test_ratelimit import paced_calls

async def main(url, prefix, n):
    limiter = RedisRateLimiter(url, {"shared": (1200, None)}, prefix=prefix, burst_seconds=0.25)
    try:
        print(json.dumps(await paced_calls(limiter, "shared", n)))
    finally:
        await limiter.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_processes_sharing_a_limit_stay_within_it_together():
    prefix = f"test-{uuid.uuid4().hex}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, REDIS_URL, prefix, "20"], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    times = [t for w in workers for t in json.loads(w.communicate(timeout=60)[0])]
    assert all(w.returncode == 0 for w in workers)

    assert len(times) == 60
    assert within_rate(times, per_second=20, burst=5)  # 1200/min shared, not per process
    assert max(times) - min(times) >= (60 - 5) / 20 * 0.95  # and they really were held back

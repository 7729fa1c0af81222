"""How long to wait before retrying a failed provider call: exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential bound) spreads the retries of many
calls that failed together, so they do not hit the provider again all at the same moment.
When the provider said how long to wait (Retry-After), the wait is never shorter than that; when it
asks for longer than `max_wait` (a daily quota, say), the call gives up instead of holding its
sample, lease and budget reservation for hours.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # attempts per call in total, the first one included
    base: float = 0.5  # seconds: the bound on the wait after the first failure
    cap: float = 30.0  # seconds: the bound never grows beyond this
    max_wait: float = 300.0  # seconds: a Retry-After longer than this is not waited for

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 <= self.base <= self.cap:
            raise ValueError(f"need 0 <= base <= cap, got base {self.base}, cap {self.cap}")
        if self.max_wait < 0:
            raise ValueError(f"max_wait must be at least 0, got {self.max_wait}")

    def waits_for(self, retry_after: float | None) -> bool:
        """Whether a retry is worth the wait the server asked for."""
        return retry_after is None or retry_after <= self.max_wait

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after the `attempt`-th attempt (counted from 1) failed.

        When the server said when (`retry_after`), that, plus up to 10 % so that the calls it
        turned away together do not all come back at the same instant; never earlier. Otherwise
        uniform in [0, min(cap, base * 2**(attempt - 1))]: up to `base` after the first failure,
        twice that after the second, and so on (exponential backoff with full jitter).
        """
        if retry_after is not None:
            return retry_after * rng.uniform(1.0, 1.1)
        bound = min(self.cap, self.base * 2 ** min(attempt - 1, 62))  # the exponent is bounded: no overflow
        return rng.uniform(0.0, bound)

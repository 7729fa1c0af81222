"""Provider rate limits shared by every worker process, through Redis.

GCRA (the generic cell rate algorithm) in one Lua script: each call reserves its place in
the provider's request and token schedules atomically and learns how long to wait before it
may go. Reserving (instead of polling until allowed) keeps waiters in order and costs one
round trip per call; Redis's own clock is used, so workers on different machines agree.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as redis

BURST_SECONDS = 5.0  # a limit of N per minute lets up to N/12 calls go at once, then N/60 per second

# KEYS: one schedule per limit. ARGV: per key, its rate (units per ms) and cost (units).
# Returns the milliseconds to wait before this call may go; the call is counted either way.
GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + tonumber(now_parts[2]) / 1000
local burst_ms = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local cost = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost / rate
  local allowed_at = new_tat - burst_ms
  if allowed_at - now > wait then wait = allowed_at - now end
  redis.call('SET', key, tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
return tostring(wait)
"""


class RedisRateLimiter:
    """limits: provider name -> (requests per minute, tokens per minute); None = unlimited."""

    def __init__(
        self,
        url: str,
        limits: Mapping[str, tuple[int | None, int | None]],
        *,
        prefix: str = "promptlooper",
        burst_seconds: float = BURST_SECONDS,
    ) -> None:
        self.limits = {name: lim for name, lim in limits.items() if any(lim)}
        self.prefix, self.burst_ms = prefix, burst_seconds * 1000
        self._client = redis.Redis.from_url(url) if self.limits else None
        self._script = self._client.register_script(GCRA) if self._client else None

    async def acquire(self, provider: str, tokens: int) -> float:
        rpm, tpm = self.limits.get(provider, (None, None))
        if self._script is None or not (rpm or tpm):
            return 0.0
        keys, args = [], [self.burst_ms]
        for suffix, per_minute, cost in (("requests", rpm, 1), ("tokens", tpm, max(1, tokens))):
            if per_minute:
                keys.append(f"{self.prefix}:ratelimit:{provider}:{suffix}")
                args += [per_minute / 60_000, cost]
        return max(0.0, float(await self._script(keys=keys, args=args)) / 1000)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

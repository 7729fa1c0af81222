"""A sweep's budget shared by every worker process, through Redis.

Each worker's ledger (a "holder") reserves, settles and releases in one Lua script per batch, so
the guard `spent + held + estimate <= limit` is checked atomically against what every worker of
the sweep holds: overshoot stays within the calls in flight cluster-wide, however many workers.

Keys, under `<prefix>:budget:<scope>` (scope names one sweep):
- `spent`: hash {tokens, cost} of what the sweep's calls actually used. Every reservation raises
  it to at least what the database recorded when the worker started (`seed`), so a sweep resumed
  after Redis lost its data still counts what it spent before.
- `holders`: set of the holders that hold, or held, reservations.
- `held:<holder>`: hash {tokens, cost, r:<id>...} of one holder's open reservations. It expires
  `ttl` after the holder last touched it; a holder renews it while it holds anything, so the
  reservations of a killed worker come back after about a lease and nobody else's ever do.

Reservations requested while a script runs go together in the next one (sweeps.engine.batching),
so the hot path costs about one round trip per batch of calls, not per call.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sweeps.engine.batching import Batcher
from sweeps.engine.budget import Budget, BudgetLedger, Reservation

if TYPE_CHECKING:
    from sweeps.models import Sweep

log = logging.getLogger(__name__)

SPENT_TTL_S = 30 * 24 * 3600  # what a sweep spent outlives any pause a user would resume from

# KEYS: spent, holders, this holder's held key. ARGV: max_tokens, max_cost (-1: none), ttl ms,
# held-key prefix, seed tokens, seed cost, spent ttl s, then (id, tokens, cost) per request.
# Returns one entry per request: "" when granted, else the reason it was refused.
RESERVE = """
local spent_key, holders_key, mine = KEYS[1], KEYS[2], KEYS[3]
local max_t, max_c, ttl, held_prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local seed_t, seed_c = tonumber(ARGV[5]), tonumber(ARGV[6])
local spent_t = tonumber(redis.call('HGET', spent_key, 'tokens') or '0')
local spent_c = tonumber(redis.call('HGET', spent_key, 'cost') or '0')
if seed_t > spent_t then spent_t = seed_t; redis.call('HSET', spent_key, 'tokens', seed_t) end
if seed_c > spent_c then spent_c = seed_c; redis.call('HSET', spent_key, 'cost', ARGV[6]) end
redis.call('EXPIRE', spent_key, tonumber(ARGV[7]))
local held_t, held_c = 0, 0
for _, holder in ipairs(redis.call('SMEMBERS', holders_key)) do
  local v = redis.call('HMGET', held_prefix .. holder, 'tokens', 'cost')
  if v[1] then
    held_t = held_t + tonumber(v[1]); held_c = held_c + tonumber(v[2] or '0')
  else
    redis.call('SREM', holders_key, holder)  -- expired: that worker died, its reservations are free
  end
end
local results = {}
for i = 8, #ARGV, 3 do
  local t, c = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if max_t >= 0 and spent_t + held_t + t > max_t then
    results[#results + 1] = 'token_budget'
  elseif max_c >= 0 and spent_c + held_c + c > max_c then
    results[#results + 1] = 'cost_budget'
  else
    held_t = held_t + t; held_c = held_c + c
    redis.call('HINCRBY', mine, 'tokens', t)
    redis.call('HINCRBYFLOAT', mine, 'cost', ARGV[i + 2])
    redis.call('HSET', mine, 'r:' .. ARGV[i], 1)
    results[#results + 1] = ''
  end
end
if redis.call('EXISTS', mine) == 1 then
  redis.call('SADD', holders_key, string.sub(mine, #held_prefix + 1))
  redis.call('PEXPIRE', mine, ttl)
  redis.call('EXPIRE', holders_key, tonumber(ARGV[7]))
end
return results
"""

# KEYS: spent, this holder's held key. ARGV: ttl ms, spent ttl s, then (id, tokens, cost,
# used tokens, used cost) per reservation closed. A reservation that already expired (its
# worker was thought dead) frees nothing more; what it used is spent either way.
SETTLE = """
local spent_key, mine = KEYS[1], KEYS[2]
for i = 3, #ARGV, 5 do
  if redis.call('HDEL', mine, 'r:' .. ARGV[i]) == 1 then
    redis.call('HINCRBY', mine, 'tokens', -tonumber(ARGV[i + 1]))
    redis.call('HINCRBYFLOAT', mine, 'cost', -tonumber(ARGV[i + 2]))
  end
  if tonumber(ARGV[i + 3]) ~= 0 then redis.call('HINCRBY', spent_key, 'tokens', ARGV[i + 3]) end
  if tonumber(ARGV[i + 4]) ~= 0 then redis.call('HINCRBYFLOAT', spent_key, 'cost', ARGV[i + 4]) end
end
redis.call('EXPIRE', spent_key, tonumber(ARGV[2]))
if redis.call('EXISTS', mine) == 1 then redis.call('PEXPIRE', mine, tonumber(ARGV[1])) end
return 1
"""


class RedisBudget:
    """The BudgetLedger of one worker of one sweep; every worker of the sweep uses the same `scope`."""

    def __init__(
        self,
        url: str,
        *,
        scope: str,
        holder: str,
        max_tokens: int | None,
        max_cost_usd: float | None,
        spent_tokens: int = 0,
        spent_cost: float = 0.0,
        ttl_seconds: float = 60.0,
        prefix: str = "promptlooper",
    ) -> None:
        base = f"{prefix}:budget:{scope}"
        self._spent_key, self._holders_key, self._held_prefix = f"{base}:spent", f"{base}:holders", f"{base}:held:"
        self._mine = self._held_prefix + holder
        self._limits: list[int | str] = [
            -1 if max_tokens is None else max_tokens,
            -1 if max_cost_usd is None else repr(float(max_cost_usd)),
        ]
        self._seed: list[int | str] = [int(spent_tokens), repr(float(spent_cost))]
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        # A Redis restart or a blip is ridden out for a few seconds rather than failing calls.
        self._client = redis.Redis.from_url(
            url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 8),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self._reserve_script = self._client.register_script(RESERVE)
        self._settle_script = self._client.register_script(SETTLE)
        self._reserves: Batcher[tuple[int, int, float], str] = Batcher(self._reserve_batch)
        self._settles: Batcher[tuple[Reservation, int, float], None] = Batcher(self._settle_batch)
        self._ids = itertools.count(1)
        self._open = 0  # reservations not yet settled or released
        self._renewer: asyncio.Task[None] | None = None
        self.exhausted_reason: str | None = None

    async def reserve(self, tokens: int, cost: float) -> Reservation | None:
        rid = next(self._ids)
        refused = await self._reserves.submit((rid, int(tokens), float(cost)))
        if refused:
            self.exhausted_reason = self.exhausted_reason or refused
            return None
        self._open += 1
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew())
        return Reservation(int(tokens), float(cost), rid)

    async def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        self._close(reservation)
        await self._settles.submit((reservation, int(tokens), float(cost)))

    async def release(self, reservation: Reservation) -> None:
        self._close(reservation)
        await self._settles.submit((reservation, 0, 0.0))

    async def spent(self) -> tuple[int, float]:
        """What every worker of the sweep spent so far (for tests and figures)."""
        tokens, cost = await self._client.hmget(self._spent_key, ["tokens", "cost"])
        return int(tokens or 0), float(cost or 0.0)

    async def aclose(self) -> None:
        await self._reserves.drain()
        await self._settles.drain()
        if self._renewer is not None:
            self._renewer.cancel()
        await self._client.aclose()

    def _close(self, reservation: Reservation) -> None:
        if reservation.closed:
            raise RuntimeError("reservation was already settled or released")
        reservation.closed = True
        self._open -= 1

    async def _reserve_batch(self, requests: list[tuple[int, int, float]]) -> list[str]:
        args: list[int | float | str] = [*self._limits, self._ttl_ms, self._held_prefix, *self._seed, SPENT_TTL_S]
        for rid, tokens, cost in requests:
            args += [rid, tokens, repr(cost)]
        results = await self._reserve_script(keys=[self._spent_key, self._holders_key, self._mine], args=args)
        return [r.decode() if isinstance(r, bytes) else str(r) for r in results]

    async def _settle_batch(self, closed: list[tuple[Reservation, int, float]]) -> list[None]:
        args: list[int | str] = [self._ttl_ms, SPENT_TTL_S]
        for reservation, tokens, cost in closed:
            args += [reservation.id, reservation.tokens, repr(reservation.cost), tokens, repr(cost)]
        await self._settle_script(keys=[self._spent_key, self._mine], args=args)
        return [None] * len(closed)

    async def _renew(self) -> None:
        """Keep this holder's reservations alive while calls are in flight, however long they take."""
        while self._open > 0:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self._client.pexpire(self._mine, self._ttl_ms)
            except (RedisConnectionError, RedisTimeoutError):
                log.warning("could not renew budget reservations at Redis; retrying")


def sweep_budget(sweep: Sweep, owner: str) -> BudgetLedger:
    """The ledger of `sweep` for the worker `owner`: shared through Redis when there is one
    (RQ workers) and the sweep has a limit to guard, else the in-process Budget (embedded mode)."""
    from django.conf import settings

    max_tokens, max_cost_usd = sweep.max_tokens, sweep.max_cost_usd
    spent_tokens, spent_cost = sweep.tokens_in + sweep.tokens_out, sweep.cost_usd
    if not settings.REDIS_URL or (max_tokens is None and max_cost_usd is None):
        return Budget(
            max_tokens=max_tokens, max_cost_usd=max_cost_usd, spent_tokens=spent_tokens, spent_cost=spent_cost
        )
    # The creation time tells apart sweeps that reuse an id (a database created anew).
    scope = f"{sweep.pk}:{int(sweep.created_at.timestamp() * 1_000_000)}"
    return RedisBudget(
        settings.REDIS_URL, scope=scope, holder=owner, ttl_seconds=settings.PROMPTLOOPER_LEASE_SECONDS,
        max_tokens=max_tokens, max_cost_usd=max_cost_usd, spent_tokens=spent_tokens, spent_cost=spent_cost,
    )  # fmt: skip

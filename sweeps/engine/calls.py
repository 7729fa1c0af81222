"""One provider call as the executor makes it, with everything around it.

response cache → budget reservation → rate limit → room at the provider (adaptive concurrency)
→ the call → on a retryable error, backoff and again; on success, the cache entry is written.

Concurrency is a number of slots. A sample holds one while it works (renders, looks up the
cache, calls, scores) and gives it back while it waits (a retry's backoff, a rate limit, room at
a throttled provider), so waiting never keeps another sample from working.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from sweeps.engine.budget import BudgetLedger, estimate_tokens
from sweeps.engine.cache import cache_key, embedding_key
from sweeps.engine.limits import AdaptiveConcurrency, RateLimiter, is_throttle
from sweeps.engine.provider import (
    Completion,
    CompletionRequest,
    Embedding,
    EmbeddingRequest,
    Provider,
    ProviderError,
)
from sweeps.engine.retry import RetryPolicy

# The finish reason an embedding call is recorded with.
EMBEDDING_FINISH = "embedding"
PaidAnswer = TypeVar("PaidAnswer", Completion, Embedding)

# When a call sets no max_tokens, its budget reservation assumes this many output tokens.
DEFAULT_RESERVED_OUTPUT_TOKENS = 1024

Sleep = Callable[[float], Awaitable[Any]]
Message = Mapping[str, str]


@dataclass(frozen=True)
class CachedResponse:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str
    latency_ms: float
    cost_usd: float
    usage_estimated: bool = False  # the provider sent no usable usage (not kept in the response cache)
    tool_calls: tuple[Mapping[str, Any], ...] = ()  # the tools the answer called


@dataclass(frozen=True)
class StageOutcome:
    """One call of a sample: a pipeline stage, or a judge's call (named "judge:<scorer>")."""

    name: str
    model: str
    system: str | None
    prompt: str
    response: CachedResponse
    cached: bool
    key: str  # the response cache key of this call
    attempts: int = 1  # provider calls made for it: 0 when it came from the cache

    def to_dict(self) -> dict[str, Any]:
        r = self.response
        return {
            "name": self.name, "model": self.model, "system": self.system, "prompt": self.prompt,
            "output": r.text, "finish_reason": r.finish_reason, "tokens_in": r.tokens_in,
            "tokens_out": r.tokens_out, "cost_usd": r.cost_usd, "latency_ms": r.latency_ms, "cached": self.cached,
            "attempts": self.attempts, "usage_estimated": r.usage_estimated,
            **({"tool_calls": [dict(call) for call in r.tool_calls]} if r.tool_calls else {}),
        }  # fmt: skip


class BudgetExhausted(Exception):
    """A call could not reserve budget; its sample goes back to pending, unharmed."""


class ResponseStore(Protocol):
    async def get(self, key: str) -> CachedResponse | None: ...
    async def put(self, key: str, provider: str, model: str, response: CachedResponse) -> None: ...


class Providers(Protocol):
    def get(self, name: str) -> Provider: ...
    def price(self, provider: str, model: str) -> tuple[float, float]: ...  # USD per million in/out
    def cache_namespace(self, provider: str) -> str: ...  # part of the response cache key


class Slots:
    """A semaphore that also tells the executor's dispatcher when a slot frees up.

    The dispatcher takes a slot for each sample it starts (take_now, only when `free`); a
    sample gives it back when it ends, and while it waits (without_slot). A sample coming back
    from a wait is served before new samples: a freed slot passes straight to it.
    """

    def __init__(self, limit: int, on_free: Callable[[], None]) -> None:
        self.limit = limit
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()  # only ever non-empty when all are held
        self._on_free = on_free

    @property
    def free(self) -> int:
        return self.limit - self.held

    def take_now(self) -> None:
        self.held += 1

    async def take(self) -> None:
        if self.held < self.limit:
            self.held += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter  # the giver passed its slot on: `held` already counts it

    def give(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(None)
                return
        self.held -= 1
        self._on_free()

    async def without_slot(self, wait: Awaitable[Any]) -> None:
        # Cancelled during the wait, the sample never takes its slot back: that happens only
        # when the run is torn down, and each run counts on a Slots of its own.
        self.give()
        await wait
        await self.take()


class Calls:
    """Makes the provider calls of one executor run. Raises ProviderError (after the retries the
    error allows) or BudgetExhausted; anything else an adapter raises is a bug and propagates."""

    def __init__(
        self,
        *,
        store: ResponseStore,
        providers: Providers,
        budget: BudgetLedger,
        retry: RetryPolicy,
        provider_retry: Mapping[str, RetryPolicy],
        limiter: RateLimiter | None,
        adaptive: AdaptiveConcurrency,
        slots: Slots,
        sleep: Sleep,
        rng: random.Random,
    ) -> None:
        self.store, self.providers, self.budget = store, providers, budget
        self.retry, self.provider_retry = retry, provider_retry
        self.limiter, self.adaptive, self.slots = limiter, adaptive, slots
        self.sleep, self.rng = sleep, rng
        self.quota_error: ProviderError | None = None  # the first "out of credit" error seen
        self.rate_limit_error: ProviderError | None = None  # the first 429 still there after every retry

    async def call(
        self,
        name: str,
        model: str,
        messages: tuple[Message, ...],
        params: Mapping[str, Any],
        replicate: int,
        *,
        system: str | None,
        prompt: str,
    ) -> StageOutcome:
        """The response to `messages` from `model` ("provider/model"), from the cache or the provider."""
        provider_name, _, model_name = model.partition("/")
        key = cache_key(
            provider=provider_name, model=model_name, params=params, messages=messages, replicate=replicate,
            namespace=self.providers.cache_namespace(provider_name),
        )  # fmt: skip
        cached = await self.store.get(key)
        if cached is not None:
            return StageOutcome(name, model, system, prompt, cached, cached=True, key=key, attempts=0)

        request = CompletionRequest(model=model_name, messages=messages, params=params, replicate=replicate)
        est_in = sum(estimate_tokens(m["content"]) for m in messages)
        est_out = int(params.get("max_tokens") or DEFAULT_RESERVED_OUTPUT_TOKENS)
        completion, cost, attempts = await self._paid(
            provider_name, model_name, est_in, est_out, lambda provider: provider.complete(request)
        )
        response = CachedResponse(
            completion.text, completion.tokens_in, completion.tokens_out,
            completion.finish_reason, completion.latency_ms, cost, completion.usage_estimated, completion.tool_calls,
        )  # fmt: skip
        # Committed before scoring: after a crash this call is never paid for again.
        await self.store.put(key, provider_name, model_name, response)
        return StageOutcome(name, model, system, prompt, response, cached=False, key=key, attempts=attempts)

    async def embed(self, name: str, model: str, texts: tuple[str, ...]) -> tuple[StageOutcome, list[list[float]]]:
        """The embeddings of `texts` from `model` ("provider/model"), from the cache or the
        provider, and the call as a sample records it (its output says what came back, not the
        numbers: those stay in the cache)."""
        provider_name, _, model_name = model.partition("/")
        namespace = self.providers.cache_namespace(provider_name)
        key = embedding_key(provider=provider_name, model=model_name, texts=texts, namespace=namespace)
        response = await self.store.get(key)
        attempts = 0
        if response is None:
            request = EmbeddingRequest(model=model_name, texts=texts)
            est_in = sum(estimate_tokens(text) for text in texts)
            embedding, cost, attempts = await self._paid(
                provider_name, model_name, est_in, 0, lambda provider: provider.embed(request)
            )
            vectors_json = json.dumps([list(vector) for vector in embedding.vectors], separators=(",", ":"))
            response = CachedResponse(
                vectors_json, embedding.tokens_in, 0, EMBEDDING_FINISH, embedding.latency_ms, cost,
                embedding.usage_estimated,
            )  # fmt: skip
            await self.store.put(key, provider_name, model_name, response)
        vectors = json.loads(response.text)
        shown = replace(response, text=f"{len(vectors)} embeddings of {len(vectors[0]) if vectors else 0} dimensions")
        prompt = "\n\n".join(texts)
        return StageOutcome(name, model, None, prompt, shown, cached=attempts == 0, key=key, attempts=attempts), vectors

    async def _paid(
        self,
        provider_name: str,
        model_name: str,
        est_in: int,
        est_out: int,
        attempt_with: Callable[[Provider], Awaitable[PaidAnswer]],
    ) -> tuple[PaidAnswer, float, int]:
        """A provider call within the budget, retried as its errors allow: (the answer, its cost,
        the attempts made). The reservation covers the estimate and is settled at the real usage."""
        provider = self.providers.get(provider_name)
        price_in, price_out = self.providers.price(provider_name, model_name)
        est_cost = (est_in * price_in + est_out * price_out) / 1e6
        attempt = 0
        while True:
            attempt += 1
            reservation = await self.budget.reserve(est_in + est_out, est_cost)
            if reservation is None:
                raise BudgetExhausted
            try:
                answer = await self._attempt(provider_name, provider, attempt_with, est_in + est_out)
                break
            except ProviderError as error:
                await self.budget.release(reservation)
                policy = self.provider_retry.get(provider_name, self.retry)
                if error.permanent or attempt >= policy.max_attempts or not policy.waits_for(error.retry_after):
                    if error.quota_exhausted and self.quota_error is None:
                        self.quota_error = error
                    final = error if attempt == 1 else _after_attempts(error, attempt)
                    if not policy.waits_for(error.retry_after):
                        final = _too_long_to_wait(final, policy.max_wait)
                    if is_rate_limit(error) and self.rate_limit_error is None:
                        self.rate_limit_error = final
                    if final is error:
                        raise
                    raise final from error
                await self.slots.without_slot(self.sleep(policy.delay(attempt, error.retry_after, self.rng)))
            except BaseException:
                await self.budget.release(reservation)
                raise

        cost = (answer.tokens_in * price_in + answer.tokens_out * price_out) / 1e6
        await self.budget.settle(reservation, answer.tokens_in + answer.tokens_out, cost)
        return answer, cost, attempt

    async def _attempt(
        self,
        provider_name: str,
        provider: Provider,
        attempt_with: Callable[[Provider], Awaitable[PaidAnswer]],
        tokens: int,
    ) -> PaidAnswer:
        """One call to the provider, once its rate limit and its adaptive concurrency let it go."""
        if self.limiter is not None:
            wait = await self.limiter.acquire(provider_name, tokens)
            if wait > 0:
                await self.slots.without_slot(self.sleep(wait))
        limit = self.adaptive.of(provider_name)
        while not limit.has_room():
            await self.slots.without_slot(limit.room())
        limit.start()
        try:
            answer = await attempt_with(provider)
        except ProviderError as error:
            limit.finish(ok=False, throttled=is_throttle(error))
            raise
        except BaseException:
            limit.finish(ok=False)
            raise
        limit.finish(ok=True)
        return answer


def is_rate_limit(error: ProviderError) -> bool:
    """A 429 that waiting cures (not an exhausted quota)."""
    return error.status == 429 and not error.quota_exhausted


def _after_attempts(error: ProviderError, attempts: int) -> ProviderError:
    return _annotated(error, f"after {attempts} attempts")


def _too_long_to_wait(error: ProviderError, max_wait: float) -> ProviderError:
    asked = f"{error.retry_after:,.0f}"
    return _annotated(error, f"the provider asked to wait {asked} s, more than retry.max_wait ({max_wait:g} s)")


def _annotated(error: ProviderError, note: str) -> ProviderError:
    return ProviderError(
        f"{error} ({note})",
        permanent=error.permanent,
        status=error.status,
        retry_after=error.retry_after,
        quota_exhausted=error.quota_exhausted,
    )

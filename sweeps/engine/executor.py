"""The sweep executor: runs claimed samples through the pipeline with continuous bounded concurrency.

A new sample starts the moment one finishes (never batch-and-gather, which waits for the
slowest call of each batch). The control state is read before every dispatch. Everything
outside the engine (where samples come from, where results and cached responses go, which
providers exist) is passed in, so this module is plain Python and tested without a database.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sweeps.engine.budget import Budget, estimate_tokens
from sweeps.engine.cache import cache_key
from sweeps.engine.pipeline import ResolvedStage
from sweeps.engine.scoring import Scorer, ScoreResult, weighted_mean
from sweeps.engine.templating import TemplateError, render
from sweeps.providers.base import CompletionRequest, Provider, ProviderError

log = logging.getLogger(__name__)

# When a stage sets no max_tokens, its budget reservation assumes this many output tokens.
DEFAULT_RESERVED_OUTPUT_TOKENS = 1024


@dataclass(frozen=True)
class WorkItem:
    sample_id: int
    run_id: int
    row_index: int
    replicate: int
    row: Mapping[str, Any]
    stages: tuple[ResolvedStage, ...]


@dataclass(frozen=True)
class CachedResponse:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str
    latency_ms: float
    cost_usd: float


@dataclass(frozen=True)
class StageOutcome:
    name: str
    model: str
    system: str | None
    prompt: str
    response: CachedResponse
    cached: bool
    key: str  # the response cache key of this call

    def to_dict(self) -> dict[str, Any]:
        r = self.response
        return {
            "name": self.name, "model": self.model, "system": self.system, "prompt": self.prompt,
            "output": r.text, "finish_reason": r.finish_reason, "tokens_in": r.tokens_in,
            "tokens_out": r.tokens_out, "cost_usd": r.cost_usd, "latency_ms": r.latency_ms, "cached": self.cached,
        }  # fmt: skip


@dataclass(frozen=True)
class ScoredVerdict:
    name: str
    weight: float
    result: ScoreResult


@dataclass(frozen=True)
class SampleOutcome:
    item: WorkItem
    stages: tuple[StageOutcome, ...]
    verdicts: tuple[ScoredVerdict, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def output(self) -> str:
        return self.stages[-1].response.text if self.ok and self.stages else ""

    @property
    def score(self) -> float | None:
        return weighted_mean((v.result.value, v.weight) for v in self.verdicts) if self.ok else None

    def total(self, attr: str, *, cached: bool | None = None) -> float:
        return sum(getattr(s.response, attr) for s in self.stages if cached is None or s.cached == cached)

    @property
    def cache_hit(self) -> bool:
        return bool(self.stages) and all(s.cached for s in self.stages)


class BudgetExhausted(Exception):
    """A call could not reserve budget; its sample goes back to pending, unharmed."""


class Workload(Protocol):
    """Where samples come from and results go (the database, in production)."""

    async def claim(self, limit: int) -> list[WorkItem]: ...
    async def release(self, items: Sequence[WorkItem]) -> None: ...
    async def control(self) -> str: ...  # "running", "paused" or "stopped"
    async def record(self, outcome: SampleOutcome) -> None: ...
    async def flush(self) -> None: ...


class ResponseStore(Protocol):
    async def get(self, key: str) -> CachedResponse | None: ...
    async def put(self, key: str, provider: str, model: str, response: CachedResponse) -> None: ...


class Providers(Protocol):
    def get(self, name: str) -> Provider: ...
    def price(self, provider: str, model: str) -> tuple[float, float]: ...  # USD per million in/out


@dataclass
class Executor:
    workload: Workload
    store: ResponseStore
    providers: Providers
    scorers: Sequence[Scorer]
    budget: Budget
    max_concurrency: int
    claim_ahead: int = 0  # samples claimed beyond the free slots, to hide the claim's round trip

    async def run(self) -> str:
        """Run until nothing is pending or control says otherwise. Returns why it ended:
        "drained", "paused", "stopped", "token_budget" or "cost_budget"."""
        queue: deque[WorkItem] = deque()
        in_flight: dict[asyncio.Task[SampleOutcome], WorkItem] = {}
        to_release: list[WorkItem] = []
        stop: str | None = None
        exhausted = False
        try:
            while True:
                while not stop and not exhausted and len(in_flight) < self.max_concurrency:
                    state = await self.workload.control()
                    if state != "running":
                        stop = state
                        break
                    if not queue:
                        queue.extend(await self.workload.claim(self.max_concurrency - len(in_flight) + self.claim_ahead))
                        if not queue:
                            exhausted = True
                            break
                    item = queue.popleft()
                    in_flight[asyncio.create_task(self._run_sample(item))] = item
                if not in_flight:
                    break
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    item = in_flight.pop(task)
                    if isinstance(task.exception(), BudgetExhausted):
                        stop = stop or self.budget.exhausted_reason or "token_budget"
                        to_release.append(item)
                    else:
                        await self.workload.record(task.result())
        finally:
            for task, item in in_flight.items():  # only when cancelled from outside
                task.cancel()
                to_release.append(item)
            to_release.extend(queue)
            await self.workload.flush()
            if to_release:
                await self.workload.release(to_release)
        if stop in ("token_budget", "cost_budget") and (state := await self.workload.control()) != "running":
            stop = state  # paused or stopped meanwhile: that is why the sweep ended, not the budget
        return stop or "drained"

    async def _run_sample(self, item: WorkItem) -> SampleOutcome:
        variables: dict[str, Any] = dict(item.row)
        stages: list[StageOutcome] = []
        current = ""
        try:
            for stage in item.stages:
                current = stage.name
                outcome = await self._run_stage(stage, variables, item.replicate)
                stages.append(outcome)
                variables[stage.name] = outcome.response.text
        except BudgetExhausted:
            raise
        except (TemplateError, ProviderError) as e:
            return SampleOutcome(item, tuple(stages), error=f"stage '{current}': {e}")
        except Exception as e:  # a bug must fail one sample, not the sweep
            log.exception("sample %s failed unexpectedly", item.sample_id)
            return SampleOutcome(item, tuple(stages), error=f"stage '{current}': internal error {type(e).__name__}: {e}")
        output = stages[-1].response.text if stages else ""
        verdicts = tuple(ScoredVerdict(s.name, s.weight, s.score(output, variables)) for s in self.scorers)
        return SampleOutcome(item, tuple(stages), verdicts)

    async def _run_stage(self, stage: ResolvedStage, variables: Mapping[str, Any], replicate: int) -> StageOutcome:
        system = render(stage.system, variables) if stage.system else None
        prompt = render(stage.prompt, variables)
        provider_name, model = stage.model.split("/", 1)
        messages = ({"role": "system", "content": system},) if system else ()
        messages += ({"role": "user", "content": prompt},)
        key = cache_key(provider=provider_name, model=model, params=stage.params, messages=messages, replicate=replicate)
        cached = await self.store.get(key)
        if cached is not None:
            return StageOutcome(stage.name, stage.model, system, prompt, cached, cached=True, key=key)

        price_in, price_out = self.providers.price(provider_name, model)
        est_in = estimate_tokens(prompt) + (estimate_tokens(system) if system else 0)
        est_out = int(stage.params.get("max_tokens") or DEFAULT_RESERVED_OUTPUT_TOKENS)
        reservation = self.budget.reserve(est_in + est_out, (est_in * price_in + est_out * price_out) / 1e6)
        if reservation is None:
            raise BudgetExhausted
        request = CompletionRequest(model=model, messages=messages, params=stage.params, replicate=replicate)
        try:
            completion = await self.providers.get(provider_name).complete(request)
        except BaseException:
            self.budget.release(reservation)
            raise
        cost = (completion.tokens_in * price_in + completion.tokens_out * price_out) / 1e6
        self.budget.settle(reservation, completion.tokens_in + completion.tokens_out, cost)
        response = CachedResponse(
            completion.text, completion.tokens_in, completion.tokens_out,
            completion.finish_reason, completion.latency_ms, cost,
        )  # fmt: skip
        # Committed before scoring: after a crash this call is never paid for again.
        await self.store.put(key, provider_name, model, response)
        return StageOutcome(stage.name, stage.model, system, prompt, response, cached=False, key=key)

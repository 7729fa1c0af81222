"""The sweep executor: runs claimed samples through the pipeline with continuous bounded concurrency.

A new sample starts the moment a slot frees up (never batch-and-gather, which waits for the
slowest call of each batch). A sample holds its slot while it works and gives it back while it
waits for a retry, a rate limit or room at a throttled provider (see calls.py). The control
state is read before every dispatch. Everything outside the engine (where samples come from,
where results and cached responses go, which providers exist) is passed in, so this module is
plain Python and tested without a database.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sweeps.engine.budget import BudgetLedger
from sweeps.engine.calls import (  # the data types are part of the executor's interface too
    BudgetExhausted,
    CachedResponse,
    Calls,
    Message,
    Providers,
    ResponseStore,
    Sleep,
    Slots,
    StageOutcome,
    is_rate_limit,
)
from sweeps.engine.limits import AdaptiveConcurrency, RateLimiter
from sweeps.engine.pipeline import ResolvedStage
from sweeps.engine.provider import ProviderError
from sweeps.engine.retry import RetryPolicy
from sweeps.engine.scorers import ModelCall, SampleFacts, Scorer, ScoreResult, Scoring, weighted_mean
from sweeps.engine.templating import TemplateError, render

__all__ = [
    "JUDGE_PREFIX", "BudgetExhausted", "CachedResponse", "Executor", "JudgeCall",
    "Providers", "ResponseStore", "SampleOutcome", "ScoredVerdict", "StageOutcome", "WorkItem", "Workload",
]  # fmt: skip

log = logging.getLogger(__name__)

# Samples that wait hold no slot, so more samples than slots may be in progress; at most this
# many times max_concurrency, so that a provider answering 429 to everything cannot get the
# whole sweep claimed at once, every sample waiting for its retry.
IN_PROGRESS_PER_SLOT = 4


class QuotaExhausted(Exception):
    """A call found the provider account out of credit (reason "provider_error"), or still
    rate limited after every retry ("rate_limited"): its sample goes back to pending."""

    def __init__(self, reason: str = "provider_error") -> None:
        super().__init__(reason)
        self.reason = reason


class Halted(Exception):
    """The sweep was paused or stopped between two stages of a sample: the sample goes back to
    pending, and its finished stages are served from the cache when it runs again."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


# A judge's calls are recorded among the sample's stages under this prefix and the scorer's
# name. Stage names are identifiers (the spec refuses others), so they never contain ":".
JUDGE_PREFIX = "judge:"

# What a scorer that calls a model (an LLM judge) gets to call it: ("provider/model", messages, params) -> text.
JudgeCall = ModelCall


@dataclass(frozen=True)
class WorkItem:
    sample_id: int
    run_id: int
    row_index: int
    replicate: int
    row: Mapping[str, Any]
    stages: tuple[ResolvedStage, ...]


@dataclass(frozen=True)
class ScoredVerdict:
    name: str
    weight: float
    result: ScoreResult


@dataclass(frozen=True)
class SampleOutcome:
    item: WorkItem
    stages: tuple[StageOutcome, ...]  # the pipeline's stages, then the judges' calls
    verdicts: tuple[ScoredVerdict, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def output(self) -> str:
        """The last pipeline stage's answer."""
        if self.ok:
            for stage in reversed(self.stages):
                if not stage.name.startswith(JUDGE_PREFIX):
                    return stage.response.text
        return ""

    @property
    def score(self) -> float | None:
        return weighted_mean((v.result.value, v.weight) for v in self.verdicts) if self.ok else None

    def total(self, attr: str, *, cached: bool | None = None) -> float:
        return sum(getattr(s.response, attr) for s in self.stages if cached is None or s.cached == cached)

    @property
    def cache_hit(self) -> bool:
        return bool(self.stages) and all(s.cached for s in self.stages)

    @property
    def truncated(self) -> bool:
        """A call's answer (a stage's or a judge's) was cut short by max_tokens."""
        return any(s.response.finish_reason == "length" for s in self.stages)


class Workload(Protocol):
    """Where samples come from and results go (the database, in production)."""

    async def claim(self, limit: int) -> list[WorkItem]: ...
    async def release(self, items: Sequence[WorkItem]) -> None: ...
    async def control(self) -> str: ...  # "running", "paused" or "stopped"
    async def record(self, outcome: SampleOutcome) -> None: ...
    async def flush(self) -> None: ...


@dataclass
class Executor:
    workload: Workload
    store: ResponseStore
    providers: Providers
    scorers: Sequence[Scorer]
    budget: BudgetLedger
    max_concurrency: int
    claim_ahead: int = 0  # samples claimed beyond the free slots, to hide the claim's round trip
    retry: RetryPolicy = RetryPolicy()
    provider_retry: Mapping[str, RetryPolicy] = field(default_factory=dict)  # per provider name, else `retry`
    limiter: RateLimiter | None = None
    # A provider saying the account is out of credit stops the sweep ("provider_error"), rather
    # than failing every remaining sample one by one.
    fail_fast: bool = True
    rng: random.Random = field(default_factory=random.Random)  # draws the retries' jitter
    sleep: Sleep = asyncio.sleep

    def __post_init__(self) -> None:
        # Kept across run()s: what a provider taught us about its capacity stays true next round.
        self.adaptive = AdaptiveConcurrency(self.max_concurrency)
        # The provider error that stopped the last run() (out of credit, or rate limited beyond
        # the retries), for the message to show.
        self.quota_error: ProviderError | None = None

    async def run(self) -> str:
        """Run until nothing is pending or control says otherwise. Returns why it ended:
        "drained", "paused", "stopped", "token_budget", "cost_budget", "provider_error" or
        "rate_limited"."""
        wakeup = asyncio.Event()  # set when a sample ends or a slot frees up
        slots = Slots(self.max_concurrency, on_free=wakeup.set)
        calls = self._calls = Calls(  # this run's samples call through it
            store=self.store, providers=self.providers, budget=self.budget, retry=self.retry,
            provider_retry=self.provider_retry, limiter=self.limiter, adaptive=self.adaptive,
            slots=slots, sleep=self.sleep, rng=self.rng,
        )  # fmt: skip
        max_in_progress = IN_PROGRESS_PER_SLOT * self.max_concurrency
        queue: deque[WorkItem] = deque()
        in_flight: dict[asyncio.Task[SampleOutcome], WorkItem] = {}
        finished: deque[asyncio.Task[SampleOutcome]] = deque()
        to_release: list[WorkItem] = []
        stop: str | None = None
        exhausted = False

        def sample_done(task: asyncio.Task[SampleOutcome]) -> None:
            finished.append(task)
            slots.give()
            wakeup.set()

        try:
            while True:
                while not stop and not exhausted and slots.free > 0 and len(in_flight) < max_in_progress:
                    if halt := self._halt_reason(calls):
                        stop = halt
                        break
                    state = await self.workload.control()
                    if state != "running":
                        stop = state
                        break
                    if not queue:
                        room = min(slots.free, max_in_progress - len(in_flight))
                        queue.extend(await self.workload.claim(room + self.claim_ahead))
                        if not queue:
                            exhausted = True
                            break
                    if slots.free > 0:  # else a sample back from a wait took it meanwhile
                        slots.take_now()
                        item = queue.popleft()
                        task = asyncio.create_task(self._run_sample(item))
                        task.add_done_callback(sample_done)
                        in_flight[task] = item
                if not in_flight:
                    break
                if not finished:
                    wakeup.clear()
                    await wakeup.wait()
                while finished:
                    task = finished.popleft()
                    item = in_flight.pop(task)
                    if isinstance(task.exception(), BudgetExhausted):
                        stop = stop or self.budget.exhausted_reason or "token_budget"
                        to_release.append(item)
                    elif isinstance(halted := task.exception(), Halted):
                        stop = stop or halted.state
                        to_release.append(item)  # its next stage never started; the ones before are cached
                    elif isinstance(deferred := task.exception(), QuotaExhausted):
                        stop = stop or deferred.reason
                        to_release.append(item)  # done again, whole, once topped up or the limit eases
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
        halt = self._halt_reason(calls)
        if halt and stop in (None, "token_budget", "cost_budget"):
            stop = halt  # the samples in flight failed on it too, and may have drained the queue
        self.quota_error = calls.rate_limit_error if stop == "rate_limited" else calls.quota_error
        if (
            stop in ("token_budget", "cost_budget", "provider_error", "rate_limited")
            and (state := await self.workload.control()) != "running"
        ):
            stop = state  # paused or stopped meanwhile: that is why the sweep ended, not the budget or the quota
        return stop or "drained"

    def _halt_reason(self, calls: Calls) -> str | None:
        """Why no further sample should start: the account is out of credit (with fail_fast),
        or a provider kept answering 429 beyond the retries (always: a ranking must not
        reflect which configurations the rate limit happened to hit)."""
        if self.fail_fast and calls.quota_error:
            return "provider_error"
        return "rate_limited" if calls.rate_limit_error else None

    def _defer_on_quota(self, error: Exception) -> None:
        """A sample whose call found the account out of credit (with fail_fast) or still rate
        limited after the retries is not failed (nor scored 0 by a judge): it goes back to
        pending for when the sweep is resumed."""
        if not isinstance(error, ProviderError):
            return
        if self.fail_fast and error.quota_exhausted:
            raise QuotaExhausted("provider_error") from error
        if is_rate_limit(error):
            raise QuotaExhausted("rate_limited") from error

    async def _run_sample(self, item: WorkItem) -> SampleOutcome:
        calls = self._calls
        variables: dict[str, Any] = dict(item.row)
        stages: list[StageOutcome] = []
        current = ""
        try:
            for stage in item.stages:
                if stages and (state := await self.workload.control()) in ("paused", "stopped"):
                    raise Halted(state)  # a pause means no new calls, not even a sample's next stage
                current = stage.name
                system = render(stage.system, variables) if stage.system else None
                prompt = render(stage.prompt, variables)
                messages: tuple[Message, ...] = ({"role": "system", "content": system},) if system else ()
                messages += ({"role": "user", "content": prompt},)
                outcome = await calls.call(
                    stage.name, stage.model, messages, stage.params, item.replicate, system=system, prompt=prompt
                )
                stages.append(outcome)
                variables[stage.name] = outcome.response.text
        except (BudgetExhausted, Halted):
            raise
        except (TemplateError, ProviderError) as e:
            self._defer_on_quota(e)
            return SampleOutcome(item, tuple(stages), error=f"stage '{current}': {e}")
        except Exception as e:  # a bug must fail one sample, not the sweep
            log.exception("sample %s failed unexpectedly", item.sample_id)
            return SampleOutcome(
                item, tuple(stages), error=f"stage '{current}': internal error {type(e).__name__}: {e}"
            )
        output = stages[-1].response.text if stages else ""
        facts = SampleFacts(
            row=item.row,
            latency_ms=sum(stage.response.latency_ms for stage in stages),
            cost_usd=sum(stage.response.cost_usd for stage in stages),
            tool_calls=stages[-1].response.tool_calls if stages else (),
        )
        scoring = Scoring(sample=facts)  # for the scorers that call no model
        verdicts = []
        for scorer in self.scorers:
            if scorer.calls_model:
                result = await self._judge(scorer, output, variables, item.replicate, stages, facts)
            else:
                result = await scorer.ascore(output, variables, scoring)
            verdicts.append(ScoredVerdict(scorer.name, scorer.weight, result))
        return SampleOutcome(item, tuple(stages), tuple(verdicts))

    async def _judge(
        self,
        scorer: Scorer,
        output: str,
        variables: Mapping[str, Any],
        replicate: int,
        stages: list[StageOutcome],
        facts: SampleFacts,
    ) -> ScoreResult:
        """The verdict of a scorer that calls a model (an LLM judge, similarity by embedding). Its
        calls are calls like any other (cache, budget, retries, rate limits) and are added to the
        sample's stages, so their cost counts."""
        name = JUDGE_PREFIX + scorer.name
        calls = self._calls

        async def call(model: str, messages: Sequence[Message], params: Mapping[str, Any]) -> str:
            conversation = tuple(dict(m) for m in messages)
            system = "\n\n".join(m["content"] for m in conversation if m["role"] == "system") or None
            prompt = "\n\n".join(m["content"] for m in conversation if m["role"] != "system")
            outcome = await calls.call(name, model, conversation, params, replicate, system=system, prompt=prompt)
            stages.append(outcome)
            return outcome.response.text

        async def embed(model: str, texts: tuple[str, ...]) -> list[list[float]]:
            outcome, vectors = await calls.embed(name, model, texts)
            stages.append(outcome)
            return vectors

        try:
            return await scorer.ascore(output, variables, Scoring(sample=facts, call=call, embed=embed))
        except (BudgetExhausted, Halted):
            raise
        except Exception as e:  # the call failed, the rubric did not render, or the answer held no verdict
            self._defer_on_quota(e)
            if not isinstance(e, (ProviderError, TemplateError, ValueError)):  # else: a bug in the scorer
                log.exception("scorer %r failed unexpectedly", scorer.name)
            return ScoreResult(0.0, False, f"{scorer.model_error}: {e}")

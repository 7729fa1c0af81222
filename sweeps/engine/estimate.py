"""The pre-flight estimate of a sweep: configurations, samples, provider calls, how many of those
calls the response cache already answers, and the tokens and cost of the others.

Pure Python: the response cache, prices and what cached responses say about output lengths come
in through `Sources`. Nothing here calls a provider.

What is exact and what is not (the editor page says the same):
- configurations: exact for grid and random (the planner's first and only round, with its rng);
  an adaptive strategy (guided, tpe) plans later rounds from scores not known yet, so n_trials
  (or the space's size) is an upper bound.
- samples = configurations x rows x repeats and calls = samples x (stages + llm_judge scorers):
  exact when every call is made (a sample that fails makes fewer).
- cached calls: each sample's calls are built the way the executor builds them and looked up. A
  later stage (or a judge) is looked up only when every stage before it is cached, since their
  text is its input. Exact for the configs the sweep will run; above `sample_cap` samples a fixed
  random subset is followed and the count extrapolated.
- tokens and cost, of the calls that miss the cache only (a cached call is free): estimates.
  Input = characters of the rendered messages / 4. Output = the mean of the model's cached
  responses, else the call's max_tokens, else DEFAULT_OUTPUT_TOKENS. A stage after a miss gets
  stand-in text of the expected output length for the missing stage's variable.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from sweeps.engine.budget import estimate_tokens
from sweeps.engine.cache import EMBEDDING_INPUT, cache_key, embedding_key
from sweeps.engine.calls import CachedResponse
from sweeps.engine.executor import JUDGE_PREFIX
from sweeps.engine.pipeline import ResolvedStage, resolve_pipeline
from sweeps.engine.scorers import Scorer, Scoring, build_scorer
from sweeps.engine.spec import ExperimentSpec, SweepSpec
from sweeps.engine.strategies import random_search
from sweeps.engine.templating import TemplateError, render, render_budget

SAMPLE_CAP = 2_000  # samples whose calls are followed one by one; above it, a subset is
DEFAULT_OUTPUT_TOKENS = 256
Config = dict[str, Any]
Messages = tuple[dict[str, str], ...]


class Sources(Protocol):
    """What the estimate reads from outside: the cache and the price list."""

    def cached(self, keys: Sequence[str]) -> Mapping[str, CachedResponse]: ...
    def mean_output_tokens(self, model: str) -> tuple[float, int] | None: ...  # (mean, responses)
    def price(self, model: str) -> tuple[float, float]: ...  # USD per million tokens in, out
    def cache_namespace(self, provider: str) -> str: ...  # part of the response cache key


@dataclass(frozen=True)
class Proposal:
    configs: list[Config]
    count_exact: bool  # the sweep runs exactly len(configs) configurations
    same_configs: bool  # ... and exactly these ones (grid, or random with a seed)


def proposed_configs(sweep: SweepSpec, rng: random.Random) -> Proposal:
    """The configurations the planner would propose, given the rng of its first round."""
    strategy = sweep.strategy
    if not strategy.is_adaptive:  # its first round, exactly as the planner makes it, is all it proposes
        n = strategy.round_size(sweep, rounds_done=0, planned=0)
        configs = strategy.propose(sweep.space, n=n, history=(), rng=rng, top_k=sweep.top_k,
                                   explore_ratio=sweep.explore_ratio, seen=set())  # fmt: skip
        # The whole space, or drawn by a seeded rng: these very configs.
        return Proposal(configs, True, strategy.is_exhaustive or sweep.seed is not None)
    # Later rounds depend on scores; random configs of the same number stand in for them.
    n = sweep.n_trials or 1
    size = sweep.space.grid_size()
    return Proposal(random_search(sweep.space, min(n, size) if size else n, rng), False, False)


@dataclass
class CallLine:
    """The calls of one pipeline stage (or one LLM judge) on one model."""

    name: str
    model: str
    calls: float = 0
    cached: float = 0
    tokens_in: float = 0
    tokens_out: float = 0
    cost_usd: float = 0
    output_from: set[str] = field(default_factory=set)  # where the output length came from

    @property
    def output_sources(self) -> list[str]:
        return sorted(self.output_from)

    def scaled(self, factor: float) -> CallLine:
        return CallLine(self.name, self.model, self.calls * factor, self.cached * factor,
                        self.tokens_in * factor, self.tokens_out * factor, self.cost_usd * factor,
                        set(self.output_from))  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    sweep_type: str
    configs: int
    count_exact: bool
    same_configs: bool
    rows: int
    repeats: int
    stages: int
    judges: int  # llm_judge scorers: one call each per sample
    examined: int  # samples whose calls were followed one by one
    lines: list[CallLine]  # extrapolated to every sample
    failing_samples: int  # that stop at a prompt which does not render (extrapolated)
    first_failure: str
    max_tokens: int | None
    max_cost_usd: float | None
    early_stopping: bool = False  # the counts are then the most the sweep can spend

    @property
    def samples(self) -> int:
        return self.configs * self.rows * self.repeats

    @property
    def calls(self) -> int:
        return self.samples * (self.stages + self.judges)

    @property
    def sampled(self) -> bool:
        return self.examined < self.samples

    @property
    def cached_exact(self) -> bool:
        return self.same_configs and not self.sampled

    @property
    def cached_calls(self) -> int:
        return min(self.calls, round(sum(line.cached for line in self.lines)))

    @property
    def paid_calls(self) -> int:
        return self.calls - self.cached_calls

    @property
    def tokens_in(self) -> int:
        return round(sum(line.tokens_in for line in self.lines))

    @property
    def tokens_out(self) -> int:
        return round(sum(line.tokens_out for line in self.lines))

    @property
    def cost_usd(self) -> float:
        return sum(line.cost_usd for line in self.lines)

    def budget_notes(self) -> list[str]:
        """How the expected use compares with the spec's budget, one sentence per limit."""
        notes = []
        if self.max_tokens is not None:
            share = (self.tokens_in + self.tokens_out) / self.max_tokens
            notes.append(_budget_note(f"budget.max_tokens {self.max_tokens:,}", share, "token_budget"))
        if self.max_cost_usd is not None:
            share = self.cost_usd / self.max_cost_usd
            notes.append(_budget_note(f"budget.max_cost_usd ${self.max_cost_usd:g}", share, "cost_budget"))
        return notes


def _budget_note(limit: str, share: float, reason: str) -> str:
    if share <= 1:
        return f"{limit}: about {share:.0%} of it expected."
    return (
        f"{limit}: about {share:.0%} of it expected, so the sweep would pause ({reason}) about "
        f"{1 / share:.0%} of the way through; raise the budget to finish it."
    )


def estimate_sweep(
    spec: ExperimentSpec, proposal: Proposal, sources: Sources, *, sample_cap: int = SAMPLE_CAP
) -> Estimate:
    scorers = [build_scorer(item, f"scorers[{i}]") for i, item in enumerate(spec.scorers)]
    judges = [s for s in scorers if s.calls_model]
    configs, rows, repeats = proposal.configs, spec.dataset, spec.repeats
    units = examined_units(len(configs), len(rows), repeats, sample_cap)
    stages_of: dict[int, list[ResolvedStage]] = {}
    chains = []
    for config_index, row_index, replicate in units:
        if config_index not in stages_of:
            stages_of[config_index] = resolve_pipeline(spec.pipeline, configs[config_index])
        chains.append(_Chain(stages_of[config_index], row_index, replicate, dict(rows[row_index])))

    tally = _Tally(sources)
    with render_budget():  # every prompt rendered here shares one step and time budget: a page stays quick
        for step, stage in enumerate(spec.pipeline):  # stage by stage: a stage's input is the one before's output
            tally.follow(chains, f"stage {stage.name!r}", partial(_stage_call, step))
        for judge in judges:  # after the whole pipeline, as the executor scores
            tally.follow(chains, f"judge {judge.name!r}", partial(_judge_call, judge))

    total = len(configs) * len(rows) * repeats
    factor = total / len(units) if units else 0.0
    failures = [chain for chain in chains if chain.failure]
    return Estimate(
        sweep_type=spec.sweep.type, configs=len(configs), count_exact=proposal.count_exact,
        same_configs=proposal.same_configs, rows=len(rows), repeats=repeats, stages=len(spec.pipeline),
        judges=len(judges), examined=len(units), lines=[line.scaled(factor) for line in tally.lines.values()],
        failing_samples=round(len(failures) * factor), first_failure=failures[0].failure if failures else "",
        max_tokens=spec.budget.max_tokens, max_cost_usd=spec.budget.max_cost_usd,
        early_stopping=spec.sweep.early_stopping is not None,
    )  # fmt: skip


def examined_units(configs: int, rows: int, repeats: int, cap: int) -> list[tuple[int, int, int]]:
    """(config, row, replicate) of the samples to follow: all of them, or `cap` drawn with a fixed
    seed, so that estimating the same spec twice gives the same numbers."""
    total = configs * rows * repeats
    indices: Sequence[int] = range(total) if total <= cap else sorted(random.Random(0).sample(range(total), cap))
    return [(i // (rows * repeats), i // repeats % rows, i % repeats) for i in indices]


def expected_output_tokens(model: str, params: Mapping[str, Any], sources: Sources) -> tuple[int, str]:
    """How many tokens a call of `model` is expected to answer with, and where that number comes from."""
    mean = sources.mean_output_tokens(model)
    if mean is not None:
        return max(1, round(mean[0])), f"mean of {mean[1]:,} cached responses"
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, int | float) and not isinstance(max_tokens, bool) and max_tokens >= 1:
        return int(max_tokens), "max_tokens"
    return DEFAULT_OUTPUT_TOKENS, "default"


# --- following each sample's calls ------------------------------------------------------


@dataclass
class _Chain:
    """One sample on its way through the pipeline."""

    stages: list[ResolvedStage]
    row_index: int
    replicate: int
    variables: dict[str, Any]
    all_cached: bool = True  # every call so far came from the cache: the next one's input is known
    failure: str = ""  # the sample would fail here: no more calls


@dataclass(frozen=True)
class _Call:
    name: str  # the stage's name, or JUDGE_PREFIX + the scorer's, as the executor records it
    model: str  # provider/model
    messages: Messages
    params: Mapping[str, Any]
    feeds_next: bool = True  # a stage's answer is a variable of what follows; a judge's is not
    embedding: bool = False  # embeddings of the messages' contents: no output tokens


class _Tally:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.lines: dict[tuple[str, str], CallLine] = {}
        self._output: dict[tuple[str, Any], tuple[int, str]] = {}

    def follow(self, chains: list[_Chain], what: str, build: Callable[[_Chain], _Call]) -> None:
        """One call (`what`) of every live chain: built, then looked up in the cache all at once."""
        calls: list[tuple[_Chain, _Call, str | None]] = []
        for chain in (c for c in chains if not c.failure):
            try:
                call = build(chain)
            except TemplateError as e:
                if chain.all_cached:  # real inputs: the run would stop here too
                    chain.failure = f"dataset[{chain.row_index}]: {what}: {e}"
                continue  # else stand-in text broke it, which real text may not: nothing to count
            provider, _, model = call.model.partition("/")
            key = self._key(call, chain) if chain.all_cached else None
            calls.append((chain, call, key))
        found = self.sources.cached([key for _, _, key in calls if key is not None])
        for chain, call, key in calls:
            line = self.lines.setdefault((call.name, call.model), CallLine(call.name, call.model))
            line.calls += 1
            hit = found.get(key) if key is not None else None
            if hit is not None:
                line.cached += 1
                if call.feeds_next:
                    chain.variables[call.name] = hit.text
                continue
            chain.all_cached = False
            tokens_out, source = (0, "embedding") if call.embedding else self._expected_output(call)
            tokens_in = sum(estimate_tokens(m["content"]) for m in call.messages)
            price_in, price_out = self.sources.price(call.model)
            line.tokens_in += tokens_in
            line.tokens_out += tokens_out
            line.cost_usd += (tokens_in * price_in + tokens_out * price_out) / 1e6
            line.output_from.add(source)
            if call.feeds_next:
                chain.variables[call.name] = "x" * (4 * tokens_out)  # stand-in of the expected length

    def _key(self, call: _Call, chain: _Chain) -> str:
        provider, _, model = call.model.partition("/")
        namespace = self.sources.cache_namespace(provider)
        if call.embedding:
            texts = [m["content"] for m in call.messages]
            return embedding_key(provider=provider, model=model, texts=texts, namespace=namespace)
        return cache_key(provider=provider, model=model, params=call.params, messages=call.messages,
                         replicate=chain.replicate, namespace=namespace)  # fmt: skip

    def _expected_output(self, call: _Call) -> tuple[int, str]:
        memo = (call.model, repr(call.params.get("max_tokens")))
        if memo not in self._output:
            self._output[memo] = expected_output_tokens(call.model, call.params, self.sources)
        return self._output[memo]


def _stage_call(step: int, chain: _Chain) -> _Call:
    # The messages exactly as Executor._run_sample builds them: the cache key depends on it.
    stage, variables = chain.stages[step], chain.variables
    system = render(stage.system, variables) if stage.system else None
    prompt = render(stage.prompt, variables)
    messages: Messages = ({"role": "system", "content": system},) if system else ()
    messages += ({"role": "user", "content": prompt},)
    return _Call(stage.name, stage.model, messages, stage.params)


class _JudgeCalled(Exception):
    def __init__(
        self, model: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any], *, embedding: bool = False
    ) -> None:
        self.model, self.messages, self.params = model, tuple(dict(m) for m in messages), params
        self.embedding = embedding


def _judge_call(judge: Scorer, chain: _Chain) -> _Call:
    """The call an LLM judge makes, taken from the judge itself rather than rebuilt here: its
    `ascore` is run up to the moment it calls the model, and stopped there."""

    async def capture(model: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any]) -> str:
        raise _JudgeCalled(model, messages, params)

    async def capture_embedding(model: str, texts: tuple[str, ...]) -> list[list[float]]:
        raise _JudgeCalled(model, [{"role": EMBEDDING_INPUT, "content": text} for text in texts], {}, embedding=True)

    output = chain.variables.get(chain.stages[-1].name, "") if chain.stages else ""  # the last stage's answer
    coroutine = judge.ascore(output, chain.variables, Scoring(call=capture, embed=capture_embedding))
    try:
        coroutine.send(None)  # runs until `capture` raises: no event loop is needed
    except _JudgeCalled as called:
        return _Call(f"{JUDGE_PREFIX}{judge.name}", called.model, called.messages, called.params, feeds_next=False,
                     embedding=called.embedding)  # fmt: skip
    finally:
        coroutine.close()
    raise RuntimeError(f"judge {judge.name!r} answered without calling its model")

"""The pre-flight estimate: counts, cache look-ups that match the executor's keys, token and cost
arithmetic, sampling above the cap. No database: the cache is a dict."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sweeps.engine.budget import Budget, estimate_tokens
from sweeps.engine.calls import CachedResponse
from sweeps.engine.estimate import (
    DEFAULT_OUTPUT_TOKENS,
    Proposal,
    estimate_sweep,
    examined_units,
    expected_output_tokens,
    proposed_configs,
)
from sweeps.engine.executor import Executor, WorkItem
from sweeps.engine.pipeline import resolve_pipeline
from sweeps.engine.scorers import build_scorer
from sweeps.engine.spec import parse_spec
from tests.engine.fakes import (
    FakeProviders,
    FakeSleep,
    FakeStore,
    FakeWorkload,
    ScriptedProvider,
)


def spec_data(**overrides: Any) -> dict[str, Any]:
    """2 models x 2 temperatures, 3 rows, 2 stages."""
    data: dict[str, Any] = {
        "name": "estimate",
        "pipeline": [
            {"name": "summarize", "system": "Be brief.", "prompt": "Summarize: {{ ticket }}", "model": "fake/a"},
            {"name": "label", "prompt": "Label: {{ summarize }}"},
        ],
        "dataset": [{"ticket": "charged twice"}, {"ticket": "cannot log in"}, {"ticket": "parcel lost"}],
        "sweep": {"type": "grid", "params": {"model": ["fake/a", "fake/b"], "params.temperature": [0.0, 1.0]}},
    }
    data.update(overrides)
    return data


JUDGE = {"type": "llm_judge", "name": "polite", "model": "fake/judge", "rubric": "Is {{ label }} polite?"}


class DictSources:
    """The cache as a dict, prices per model, and cached output means per model."""

    def __init__(self, entries=None, *, means=None, prices=None) -> None:
        self.entries: dict[str, CachedResponse] = dict(entries or {})
        self.means = dict(means or {})
        self.prices = dict(prices or {})
        self.asked: list[str] = []

    def cached(self, keys):
        self.asked.extend(keys)
        return {k: self.entries[k] for k in keys if k in self.entries}

    def mean_output_tokens(self, model):
        return self.means.get(model)

    def price(self, model):
        return self.prices.get(model, (0.0, 0.0))

    def cache_namespace(self, provider):
        return ""


def estimate(data: dict[str, Any], sources: DictSources | None = None, **options: Any):
    spec = parse_spec(data)
    return estimate_sweep(spec, proposed_configs(spec.sweep, random.Random(7)), sources or DictSources(), **options)


# --- counts ---


def test_counts_configs_samples_and_calls_of_a_grid():
    e = estimate(spec_data(repeats=2, scorers=[JUDGE, {"type": "contains", "value": "x"}]))

    assert (e.configs, e.count_exact, e.same_configs) == (4, True, True)
    assert (e.rows, e.repeats, e.stages, e.judges) == (3, 2, 2, 1)
    assert e.samples == 4 * 3 * 2
    assert e.calls == 24 * (2 + 1)  # two stages and one judge call per sample
    assert e.cached_calls == 0 and e.paid_calls == e.calls
    assert e.examined == 24 and not e.sampled and e.cached_exact


def test_random_and_guided_count_n_trials_capped_by_the_space():
    random_sweep = {"type": "random", "n_trials": 3, "seed": 1, "params": {"params.temperature": {"min": 0, "max": 1}}}
    e = estimate(spec_data(sweep=random_sweep))
    assert (e.configs, e.count_exact, e.same_configs) == (3, True, True)

    unseeded = {**random_sweep, "seed": None}
    assert estimate(spec_data(sweep=unseeded)).same_configs is False  # the sweep draws its own configs

    small = {"type": "random", "n_trials": 50, "params": {"model": ["fake/a", "fake/b"]}}
    assert estimate(spec_data(sweep=small)).configs == 2  # the space has only two points

    guided = {"type": "guided", "n_trials": 5, "params": {"params.temperature": {"min": 0, "max": 1, "step": 0.5}}}
    e = estimate(spec_data(sweep=guided))
    assert (e.configs, e.count_exact, e.same_configs) == (3, False, False)  # at most the 3 grid points


def test_a_grid_counts_a_value_listed_twice_once_as_the_planner_runs_it():
    sweep = {"type": "grid", "params": {"model": ["fake/a", "fake/a", "fake/b"]}}
    e = estimate(spec_data(sweep=sweep))
    assert (e.configs, e.count_exact, e.same_configs) == (2, True, True)


def test_no_dataset_still_runs_each_config_once():
    e = estimate(spec_data(dataset=[], pipeline=[{"name": "a", "prompt": "Hello", "model": "fake/a"}]))
    assert (e.rows, e.samples, e.calls) == (1, 4, 4)


# --- the cache, as the executor writes it ---


async def run_executor(data: dict[str, Any]) -> FakeStore:
    """Run every sample of the spec through the real executor; its cache is the returned store."""
    spec = parse_spec(data)
    proposal = proposed_configs(spec.sweep, random.Random(7))
    items = []
    for run_id, config in enumerate(proposal.configs, 1):
        stages = tuple(resolve_pipeline(spec.pipeline, config))
        for row_index, row in enumerate(spec.dataset):
            for replicate in range(spec.repeats):
                items.append(WorkItem(len(items) + 1, run_id, row_index, replicate, row, stages))
    workload, store = FakeWorkload(items), FakeStore()
    executor = Executor(
        workload=workload, store=store, providers=FakeProviders(ScriptedProvider(name="fake")),
        scorers=[build_scorer(s, "") for s in spec.scorers], budget=Budget(max_tokens=None, max_cost_usd=None),
        max_concurrency=4, sleep=FakeSleep(),
    )  # fmt: skip
    assert await executor.run() == "drained"
    assert all(o.ok for o in workload.recorded)
    return store


async def test_after_a_run_every_call_is_found_in_the_cache_judges_included():
    data = spec_data(repeats=2, scorers=[JUDGE])
    store = await run_executor(data)
    # Stage calls differ by model, temperature and replicate; the fake answers alike whatever the
    # model, so the judge gets the same rubric across configs: one entry per row and replicate.
    assert len(store.entries) == 4 * 3 * 2 * 2 + 3 * 2

    e = estimate(data, DictSources(store.entries, prices={"fake/a": (1.0, 2.0)}))

    assert e.cached_calls == e.calls == 72 and e.paid_calls == 0
    assert (e.tokens_in, e.tokens_out, e.cost_usd) == (0, 0, 0)  # a cached call is free
    assert {(line.name, line.model, line.calls, line.cached) for line in e.lines} == {
        ("summarize", "fake/a", 12, 12), ("summarize", "fake/b", 12, 12),
        ("label", "fake/a", 12, 12), ("label", "fake/b", 12, 12), ("judge:polite", "fake/judge", 24, 24),
    }  # fmt: skip


async def test_a_later_stage_is_looked_up_only_when_the_stages_before_it_are_cached():
    data = spec_data(sweep={"type": "grid", "params": {}}, dataset=[{"ticket": "charged twice"}])
    store = await run_executor(data)
    summarize_key, label_key = [key for key, *_ in store.puts]
    del store.entries[summarize_key]  # the first stage must be asked again: its answer feeds the label
    sources = DictSources(store.entries)

    e = estimate(data, sources)

    assert sources.asked == [summarize_key]  # the label's key is not even looked up
    assert e.cached_calls == 0 and e.paid_calls == 2


async def test_another_replicate_or_temperature_is_not_a_cache_hit():
    store = await run_executor(spec_data())
    e = estimate(spec_data(repeats=2, sweep={"type": "grid", "params": {"params.temperature": [0.0, 0.5]}}),
                 DictSources(store.entries))  # fmt: skip
    # Only (model a, temperature 0.0, replicate 0) ran before: 3 rows x 2 stages.
    assert e.calls == 2 * 3 * 2 * 2 and e.cached_calls == 6


# --- tokens and cost ---


def test_tokens_and_cost_of_calls_that_miss_the_cache():
    data = spec_data(
        pipeline=[{"name": "summarize", "system": "Be brief.", "prompt": "Summarize: {{ ticket }}",
                   "model": "fake/a", "params": {"max_tokens": 10}},
                  {"name": "label", "prompt": "Label: {{ summarize }}", "model": "fake/b"}],
        dataset=[{"ticket": "charged twice"}], sweep={"type": "grid", "params": {}},
    )  # fmt: skip
    sources = DictSources(means={"fake/b": (3.4, 5)}, prices={"fake/a": (1.0, 2.0), "fake/b": (10.0, 20.0)})

    e = estimate(data, sources)

    first_in = estimate_tokens("Be brief.") + estimate_tokens("Summarize: charged twice")
    # The label's input holds a stand-in for the summary: its expected 10 tokens, 40 characters.
    second_in = estimate_tokens("Label: " + "x" * 40)
    summarize, label = e.lines
    assert (summarize.tokens_in, summarize.tokens_out, summarize.output_from) == (first_in, 10, {"max_tokens"})
    assert (label.tokens_in, label.tokens_out, label.output_from) == (second_in, 3, {"mean of 5 cached responses"})
    assert e.tokens_in == first_in + second_in and e.tokens_out == 13
    assert e.cost_usd == pytest.approx((first_in * 1 + 10 * 2 + second_in * 10 + 3 * 20) / 1e6)


def test_output_tokens_come_from_cached_responses_then_max_tokens_then_a_default():
    sources = DictSources(means={"p/cached": (41.6, 3)})
    assert expected_output_tokens("p/cached", {"max_tokens": 99}, sources) == (42, "mean of 3 cached responses")
    assert expected_output_tokens("p/new", {"max_tokens": 99}, sources) == (99, "max_tokens")
    assert expected_output_tokens("p/new", {}, sources) == (DEFAULT_OUTPUT_TOKENS, "default")
    assert expected_output_tokens("p/new", {"max_tokens": "lots"}, sources)[1] == "default"


def test_budget_notes_say_whether_the_expected_use_fits():
    pipeline = [{"name": "a", "prompt": "{{ ticket }}", "model": "fake/a", "params": {"max_tokens": 100}}]
    fits = estimate(spec_data(pipeline=pipeline, budget={"max_tokens": 10_000}))
    assert fits.budget_notes() == ["budget.max_tokens 10,000: about 12% of it expected."]  # 12 calls x ~104 tokens

    over = estimate(spec_data(pipeline=pipeline, budget={"max_tokens": 500}), DictSources(prices={"fake/a": (0, 1e6)}))
    (tokens_note,) = over.budget_notes()
    assert "would pause (token_budget)" in tokens_note and "raise the budget" in tokens_note


# --- above the cap ---


def test_above_the_cap_a_fixed_subset_is_followed_and_extrapolated():
    data = spec_data(dataset=[{"ticket": f"t{i}"} for i in range(100)])  # 4 configs x 100 rows
    everything = DictSources()
    everything.cached = lambda keys: {k: CachedResponse("cached", 1, 1, "stop", 1.0, 0.0) for k in keys}

    e = estimate(data, everything, sample_cap=50)

    assert (e.samples, e.examined, e.sampled, e.cached_exact) == (400, 50, True, False)
    assert e.calls == 800 and e.cached_calls == 800  # 100 % of the subset, extrapolated
    assert estimate(data, DictSources(), sample_cap=50).lines == estimate(data, DictSources(), sample_cap=50).lines


def test_examined_units_cover_configs_rows_and_replicates():
    assert examined_units(2, 2, 2, cap=100) == [
        (0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)
    ]  # fmt: skip
    subset = examined_units(100, 100, 3, cap=20)
    assert len(set(subset)) == 20 and subset == examined_units(100, 100, 3, cap=20)


# --- samples that would fail ---


def test_rows_whose_prompt_cannot_render_are_counted_with_the_first_reason():
    data = spec_data(dataset=[{"ticket": "ok"}, {"other": "no ticket here"}, {"ticket": "ok too"}],
                     sweep={"type": "grid", "params": {}})  # fmt: skip
    e = estimate(data)
    assert e.failing_samples == 1
    assert e.first_failure.startswith("dataset[1]: stage 'summarize': ") and "ticket" in e.first_failure
    assert sum(line.calls for line in e.lines) == 4  # the failing row makes no calls
    assert e.calls == 6  # the count assumes every call is made


def test_proposal_can_be_given_directly():
    spec = parse_spec(spec_data())
    e = estimate_sweep(spec, Proposal([{"model": "fake/b"}], True, True), DictSources())
    assert (e.configs, e.samples) == (1, 3)
    assert {line.model for line in e.lines} == {"fake/b"}

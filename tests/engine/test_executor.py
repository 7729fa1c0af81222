"""The sweep executor, driven through in-memory fakes of its workload, cache and providers.

Timing is asserted by counting and ordering (gated providers that the test releases call by
call); the one wall-clock test keeps wide margins because the machine is shared.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from sweeps.engine.budget import Budget, estimate_tokens
from sweeps.engine.cache import cache_key
from sweeps.engine.executor import CachedResponse, Executor
from sweeps.engine.scoring import build_scorer
from sweeps.providers.base import Completion, CompletionRequest, ProviderError
from tests.engine.fakes import (
    EventLog,
    FakeProviders,
    FakeStore,
    FakeWorkload,
    GatedProvider,
    ScriptedProvider,
    echo,
    make_items,
    stage,
    until,
    user_prompt,
)


class Deadline:
    """The executor, whose run() fails the test after 20 s instead of hanging it."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def run(self) -> str:
        return await asyncio.wait_for(self.executor.run(), 20)


def executor(
    workload: FakeWorkload,
    *providers,
    store: FakeStore | None = None,
    scorers=(),
    budget: Budget | None = None,
    max_concurrency: int = 4,
    claim_ahead: int = 0,
    prices=None,
) -> Deadline:
    return Deadline(Executor(
        workload=workload,
        store=store if store is not None else FakeStore(workload.log),
        providers=FakeProviders(*providers, prices=prices),
        scorers=list(scorers),
        budget=budget or Budget(max_tokens=None, max_cost_usd=None),
        max_concurrency=max_concurrency,
        claim_ahead=claim_ahead,
    ))


def named_items(names, *stages_, **kw):
    return make_items([{"name": n} for n in names], stages_ or [stage("answer", "{{ name }}")], **kw)


def sleepy(delays: dict[str, float], default: float = 0.0):
    """A behaviour that sleeps per prompt (seconds), then echoes."""

    async def behave(request: CompletionRequest) -> Completion:
        await asyncio.sleep(delays.get(user_prompt(request), default))
        return echo(request)

    return behave


# ---------------------------------------------------------------------------------------------
# Continuous bounded concurrency
# ---------------------------------------------------------------------------------------------


async def test_fast_samples_keep_flowing_while_a_slow_one_runs():
    """One finish, one new start: with the slow call held open the whole time, every fast sample
    still gets through, and the executor keeps exactly max_concurrency calls going until the
    queue is empty. A batch-and-gather executor would stall after the first batch."""
    fast = [f"fast{i}" for i in range(12)]
    workload = FakeWorkload(named_items(["slow", *fast]))
    provider = GatedProvider()
    task = asyncio.create_task(executor(workload, provider, max_concurrency=4).run())

    await until(lambda: provider.active == 4, what="4 calls in flight")
    assert "slow" in provider.waiting
    active_after_each_refill = []
    while len(provider.started) < 13:
        started_before = len(provider.started)
        recorded_before = len(workload.recorded)
        provider.finish(next(p for p in provider.waiting if p != "slow"))
        await until(lambda: len(provider.started) > started_before, what="a new call after one finished")
        assert len(workload.recorded) == recorded_before + 1
        active_after_each_refill.append(provider.active)
        assert "slow" in provider.waiting

    assert active_after_each_refill == [4] * len(active_after_each_refill)
    assert len(active_after_each_refill) == 9  # 13 samples, 4 started at once, one new per finish

    # The queue is empty: the remaining fast calls finish while the slow one still runs.
    for prompt in [p for p in provider.waiting if p != "slow"]:
        provider.finish(prompt)
    await until(lambda: len(workload.recorded) == 12, what="all fast samples recorded")
    assert list(provider.waiting) == ["slow"]
    assert not task.done()
    assert sorted(o.item.row["name"] for o in workload.recorded) == sorted(fast)

    provider.finish("slow")
    assert await asyncio.wait_for(task, 5) == "drained"
    assert provider.max_active == 4
    assert workload.recorded[-1].item.row["name"] == "slow"
    workload.assert_accounted()


async def test_wall_time_follows_the_slowest_call_not_batches_of_slow_calls():
    """4 slow (0.4 s) and 12 fast (0.02 s) samples, every 4th one slow, at concurrency 4.
    Continuous: about one slow call (~0.5 s). Batch-and-gather: 4 x 0.4 s = 1.6 s."""
    names = [name for i in range(4) for name in (f"slow{i}", f"f{i}a", f"f{i}b", f"f{i}c")]
    delays = {n: (0.4 if n.startswith("slow") else 0.02) for n in names}
    workload = FakeWorkload(named_items(names))
    provider = ScriptedProvider(sleepy(delays))

    started = time.perf_counter()
    assert await executor(workload, provider, max_concurrency=4).run() == "drained"
    elapsed = time.perf_counter() - started

    assert len(workload.recorded) == 16
    assert provider.max_active == 4
    assert 0.4 <= elapsed < 1.2, f"took {elapsed:.2f}s"


@pytest.mark.parametrize("max_concurrency, claim_ahead", [(1, 0), (3, 0), (5, 3), (8, 8)])
async def test_never_more_than_max_concurrency_in_flight(max_concurrency, claim_ahead):
    """Counted per sample (first call started, not yet recorded), over two-stage samples with
    random latencies: the limit is reached and never exceeded."""
    rng = random.Random(max_concurrency)
    names = [f"s{i}" for i in range(40)]
    stages = [stage("one", "{{ name }}"), stage("two", "again {{ one }}")]
    workload = FakeWorkload(named_items(names, *stages))
    started: set[str] = set()
    in_flight_seen: list[int] = []

    async def behave(request: CompletionRequest) -> Completion:
        prompt = user_prompt(request)
        if not prompt.startswith("again"):
            started.add(prompt)
        in_flight_seen.append(len(started) - len(workload.recorded))
        await asyncio.sleep(rng.uniform(0, 0.004))
        return echo(request)

    provider = ScriptedProvider(behave)
    result = await executor(workload, provider, max_concurrency=max_concurrency, claim_ahead=claim_ahead).run()

    assert result == "drained"
    assert len(workload.recorded) == 40 and all(o.ok for o in workload.recorded)
    assert provider.calls == 80
    assert max(in_flight_seen) == max_concurrency  # reached, never exceeded
    assert provider.max_active <= max_concurrency
    assert all(limit <= max_concurrency + claim_ahead for limit in workload.claim_limits)
    workload.assert_accounted()


async def test_claims_again_as_slots_free_up():
    workload = FakeWorkload(named_items([f"s{i}" for i in range(10)]))
    provider = GatedProvider()
    task = asyncio.create_task(executor(workload, provider, max_concurrency=4).run())

    await until(lambda: provider.active == 4)
    assert workload.claim_limits == [4]
    provider.finish(provider.started[0])
    await until(lambda: provider.active == 4 and len(provider.started) == 5)
    assert workload.claim_limits == [4, 1]  # exactly the one free slot
    provider.finish(provider.started[1])
    provider.finish(provider.started[2])
    await until(lambda: len(provider.started) == 7)
    assert sum(workload.claim_limits) - workload.claim_limits[0] >= 3
    assert all(1 <= limit <= 4 for limit in workload.claim_limits)

    while not task.done():
        provider.finish_all()
        await asyncio.sleep(0.001)
    assert task.result() == "drained"
    assert len(workload.recorded) == 10
    workload.assert_accounted()


async def test_fills_every_slot_even_when_a_claim_returns_fewer_than_asked():
    workload = FakeWorkload(named_items([f"s{i}" for i in range(9)]), claim_cap=1)
    provider = GatedProvider()
    task = asyncio.create_task(executor(workload, provider, max_concurrency=4).run())

    await until(lambda: provider.active == 4, what="4 calls from 4 one-item claims")
    assert workload.claim_limits[:4] == [4, 3, 2, 1]

    while not task.done():
        provider.finish_all()
        await asyncio.sleep(0.001)
    assert task.result() == "drained"
    assert sorted(workload.recorded_ids) == list(range(1, 10))


async def test_claim_ahead_claims_beyond_free_slots_but_dispatches_only_max_concurrency():
    workload = FakeWorkload(named_items([f"s{i}" for i in range(20)]))
    provider = GatedProvider()
    task = asyncio.create_task(executor(workload, provider, max_concurrency=3, claim_ahead=3).run())

    await until(lambda: provider.active == 3)
    await asyncio.sleep(0.01)
    assert provider.active == 3
    assert workload.claim_limits == [6]
    assert len(workload.claimed) == 6

    while not task.done():
        provider.finish_all()
        await asyncio.sleep(0.001)
    assert task.result() == "drained"
    assert provider.max_active == 3
    assert len(workload.recorded) == 20
    workload.assert_accounted()


async def test_drained_when_nothing_is_left():
    workload = FakeWorkload(named_items([f"s{i}" for i in range(7)]))
    provider = ScriptedProvider()

    assert await executor(workload, provider, max_concurrency=3).run() == "drained"

    assert sorted(workload.recorded_ids) == list(range(1, 8))
    assert workload.released == []
    assert workload.flush_calls == 1
    assert workload.log.index(("flush",)) > max(workload.log.index(("record", i)) for i in range(1, 8))
    assert provider.calls == 7
    workload.assert_accounted()


async def test_empty_workload_drains_at_once():
    workload = FakeWorkload([])
    provider = ScriptedProvider()
    assert await executor(workload, provider).run() == "drained"
    assert provider.calls == 0
    assert workload.recorded == []
    assert workload.flush_calls == 1


# ---------------------------------------------------------------------------------------------
# Control: pause and stop
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["paused", "stopped"])
async def test_control_is_read_before_every_dispatch(state):
    """Running for 3 control reads, then `state`: exactly 3 samples start; the 7 claimed but not
    started go back; the other 10 are never claimed."""
    workload = FakeWorkload(
        named_items([f"s{i}" for i in range(20)]),
        control_script=lambda n: "running" if n <= 3 else state,
    )
    provider = ScriptedProvider()

    assert await executor(workload, provider, max_concurrency=10).run() == state

    assert provider.calls == 3
    assert sorted(workload.recorded_ids) == [1, 2, 3]
    assert all(o.ok for o in workload.recorded)
    assert sorted(workload.released_ids) == list(range(4, 11))
    assert len(workload.pending) == 10
    workload.assert_accounted()


@pytest.mark.parametrize("state", ["paused", "stopped"])
async def test_control_change_lets_in_flight_calls_finish_and_be_recorded(state):
    workload = FakeWorkload(named_items([f"s{i}" for i in range(20)]))
    provider = GatedProvider()
    task = asyncio.create_task(executor(workload, provider, max_concurrency=4, claim_ahead=4).run())
    await until(lambda: provider.active == 4)
    in_flight = list(provider.waiting)

    workload.state = state
    provider.finish(in_flight[0])
    await until(lambda: len(workload.recorded) == 1)
    await asyncio.sleep(0.01)
    assert len(provider.started) == 4, "no new call may start after a pause/stop"
    assert not task.done(), "calls still in flight"
    for prompt in in_flight[1:]:
        provider.finish(prompt)

    assert await asyncio.wait_for(task, 5) == state
    assert len(provider.started) == 4
    assert sorted(o.item.row["name"] for o in workload.recorded) == sorted(in_flight)
    assert all(o.ok for o in workload.recorded)
    # The 4 claimed ahead but never started are released; the rest were never claimed.
    assert len(workload.released) == 4
    assert not {i.row["name"] for i in workload.released} & set(in_flight)
    assert len(workload.pending) == 12
    # Everything in flight was recorded before anything was handed back.
    last_record = max(workload.log.index(("record", o.item.sample_id)) for o in workload.recorded)
    assert last_record < min(workload.log.index(("release", i.sample_id)) for i in workload.released)
    workload.assert_accounted()


@pytest.mark.parametrize("state", ["paused", "stopped"])
async def test_not_running_at_start_does_nothing(state):
    workload = FakeWorkload(named_items(["a", "b"]), state=state)
    provider = ScriptedProvider()

    assert await executor(workload, provider).run() == state

    assert workload.claim_limits == []
    assert provider.calls == 0
    assert workload.recorded == [] and workload.released == []


async def test_the_same_executor_runs_again_after_a_pause():
    workload = FakeWorkload(named_items(["a", "b", "c"]), state="paused")
    provider = ScriptedProvider()
    run = executor(workload, provider)
    assert await run.run() == "paused"

    workload.state = "running"

    assert await run.run() == "drained"
    assert sorted(o.item.row["name"] for o in workload.recorded) == ["a", "b", "c"]


async def test_a_stop_wins_over_a_budget_refusal_that_follows_it():
    workload = FakeWorkload(named_items(["a", "b"], stage("one", "{{ name }}", max_tokens=5), stage("two", "{{ one }}", max_tokens=5)))
    provider = GatedProvider()
    budget = Budget(max_tokens=12, max_cost_usd=None)  # room for the first stages only
    task = asyncio.create_task(executor(workload, provider, budget=budget, max_concurrency=2).run())
    await until(lambda: provider.active == 2)
    workload.state = "stopped"
    while not task.done():  # first stages finish; one second stage is refused, one may start
        for prompt in [p for p, f in provider.waiting.items() if not f.done()]:
            provider.finish(prompt)
        await asyncio.sleep(0.01)

    assert budget.exhausted_reason == "token_budget"
    assert await task == "stopped"


async def test_cancelled_from_outside_hands_back_everything_it_holds():
    workload = FakeWorkload(named_items([f"s{i}" for i in range(10)]))
    provider = GatedProvider()
    budget = Budget(max_tokens=10_000, max_cost_usd=None)
    task = asyncio.create_task(executor(workload, provider, budget=budget, max_concurrency=3, claim_ahead=2).run())
    await until(lambda: provider.active == 3)
    assert budget.reserved_tokens > 0

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert workload.recorded == []
    assert len(workload.released) == 5  # 3 in flight + 2 claimed ahead
    assert workload.flush_calls == 1
    await until(lambda: provider.active == 0, what="the in-flight calls to be cancelled")
    await asyncio.sleep(0)
    assert budget.reserved_tokens == 0 and budget.spent_tokens == 0
    workload.assert_accounted()


# ---------------------------------------------------------------------------------------------
# Budget
# ---------------------------------------------------------------------------------------------

# Prompt "{{ name }}" with 4-character names: estimate_tokens == 1; max_tokens 9 reserves 10 per call.
WORD_STAGE = stage("answer", "{{ name }}", max_tokens=9)


def exact_usage(request: CompletionRequest) -> Completion:
    """Uses exactly what the executor reserves: 1 token in, max_tokens out."""
    return Completion(text="ok " + user_prompt(request), tokens_in=1, tokens_out=request.params["max_tokens"])


def words(n: int) -> list[str]:
    return [f"w{i:03d}" for i in range(n)]


def test_word_stage_reserves_ten_tokens():  # guards the arithmetic the budget tests rely on
    assert estimate_tokens("w000") == 1


@pytest.mark.parametrize("max_concurrency", [1, 4])
async def test_token_budget_stops_the_sweep_and_releases_the_refused_sample(max_concurrency):
    workload = FakeWorkload(named_items(words(20), WORD_STAGE))
    provider = ScriptedProvider(exact_usage)
    budget = Budget(max_tokens=65, max_cost_usd=None)

    result = await executor(workload, provider, budget=budget, max_concurrency=max_concurrency).run()

    assert result == "token_budget"
    assert provider.calls == 6  # 6 x 10 fit in 65, the 7th reservation is refused
    assert len(workload.recorded) == 6 and all(o.ok for o in workload.recorded)
    assert budget.spent_tokens == 60 <= budget.max_tokens
    assert budget.reserved_tokens == 0
    # The refused sample(s) are back to pending, not recorded as failed.
    assert workload.released and not {i.sample_id for i in workload.released} & set(workload.recorded_ids)
    assert len(workload.claimed) <= 6 + max_concurrency
    workload.assert_accounted()


async def test_budget_overshoot_is_bounded_by_the_calls_in_flight():
    """A provider using more than estimated (5 tokens in, not 1) can overshoot, but only by what
    the calls in flight used beyond their reservations."""

    def heavier(request: CompletionRequest) -> Completion:
        return Completion(text="ok", tokens_in=5, tokens_out=request.params["max_tokens"])  # 14, reserved 10

    max_concurrency = 4
    workload = FakeWorkload(named_items(words(40), WORD_STAGE))
    provider = ScriptedProvider(heavier)
    budget = Budget(max_tokens=100, max_cost_usd=None)

    assert await executor(workload, provider, budget=budget, max_concurrency=max_concurrency).run() == "token_budget"

    assert provider.calls < 40
    assert budget.spent_tokens == 14 * provider.calls
    assert budget.spent_tokens <= budget.max_tokens + max_concurrency * (14 - 10)
    assert budget.spent_tokens <= budget.max_tokens + max_concurrency * 14  # the design's wording
    workload.assert_accounted()


async def test_concurrent_calls_cannot_collectively_overspend():
    """Every call in flight holds its reservation: with 8 slots and room for 3 calls, 3 calls run."""
    workload = FakeWorkload(named_items(words(20), WORD_STAGE))
    provider = GatedProvider()
    budget = Budget(max_tokens=35, max_cost_usd=None)
    task = asyncio.create_task(executor(workload, provider, budget=budget, max_concurrency=8).run())

    await until(lambda: budget.exhausted_reason is not None, what="a refused reservation")
    await asyncio.sleep(0.01)
    assert provider.active == 3
    for prompt in list(provider.waiting):
        provider.finish(prompt, Completion("ok", tokens_in=1, tokens_out=9))

    assert await asyncio.wait_for(task, 5) == "token_budget"
    assert len(provider.started) == 3
    assert budget.spent_tokens == 30
    assert len(workload.recorded) == 3
    workload.assert_accounted()


async def test_cost_budget_reports_cost_budget():
    workload = FakeWorkload(named_items(words(20), WORD_STAGE))
    provider = ScriptedProvider(exact_usage)
    budget = Budget(max_tokens=None, max_cost_usd=0.065)

    # $1000 per million tokens = $0.001 per token; a call reserves 10 tokens = $0.01.
    result = await executor(workload, provider, budget=budget, max_concurrency=2, prices={"fake": (1000.0, 1000.0)}).run()

    assert result == "cost_budget"
    assert provider.calls == 6
    assert budget.spent_cost == pytest.approx(0.06)
    assert budget.spent_cost <= budget.max_cost_usd
    assert all(o.total("cost_usd") == pytest.approx(0.01) for o in workload.recorded)
    workload.assert_accounted()


async def test_budget_already_spent_stops_before_any_call():
    workload = FakeWorkload(named_items(words(5), WORD_STAGE))
    provider = ScriptedProvider(exact_usage)
    budget = Budget(max_tokens=100, max_cost_usd=None, spent_tokens=100)

    assert await executor(workload, provider, budget=budget, max_concurrency=2).run() == "token_budget"

    assert provider.calls == 0
    assert workload.recorded == []
    assert len(workload.released) == len(workload.claimed) > 0
    workload.assert_accounted()


async def test_budget_exhausted_mid_pipeline_then_resumed_pays_only_for_the_missing_stage():
    stages = [stage("first", "{{ name }}", max_tokens=9), stage("second", "w2nd", max_tokens=9)]
    log = EventLog()
    store = FakeStore(log)
    workload = FakeWorkload(named_items(["w000"], *stages), log=log)
    provider = ScriptedProvider(exact_usage)
    budget = Budget(max_tokens=15, max_cost_usd=None)

    assert await executor(workload, provider, store=store, budget=budget).run() == "token_budget"
    assert provider.calls == 1  # stage 1 paid, stage 2 refused
    assert workload.recorded == []
    assert workload.released_ids == [1]
    assert len(store.entries) == 1  # the paid stage is not lost

    # Raise the budget and resume with exactly the released sample.
    resumed = FakeWorkload(list(workload.released), log=log)
    budget2 = Budget(max_tokens=100, max_cost_usd=None, spent_tokens=budget.spent_tokens)
    assert await executor(resumed, provider, store=store, budget=budget2).run() == "drained"

    assert provider.calls == 2  # only stage 2 this time
    (outcome,) = resumed.recorded
    assert outcome.ok
    assert [s.cached for s in outcome.stages] == [True, False]
    assert budget2.spent_tokens == 20


async def test_failed_call_releases_its_reservation():
    def fail(request):
        raise ProviderError("server exploded", status=500)

    workload = FakeWorkload(named_items(words(3), WORD_STAGE))
    budget = Budget(max_tokens=25, max_cost_usd=None)

    assert await executor(workload, ScriptedProvider(fail), budget=budget).run() == "drained"

    assert budget.spent_tokens == 0 and budget.reserved_tokens == 0
    assert len(workload.recorded) == 3  # 3 x 10 reserved in turn would not fit 25 if leaked


# ---------------------------------------------------------------------------------------------
# Failures of one sample
# ---------------------------------------------------------------------------------------------


async def test_provider_error_fails_only_that_sample_and_names_the_stage():
    def sometimes(request):
        if user_prompt(request) == "boom":
            raise ProviderError("model is on fire", status=400, permanent=True)
        return echo(request)

    names = ["a", "b", "boom", "c", "d", "e"]
    log = EventLog()
    store = FakeStore(log)
    workload = FakeWorkload(named_items(names), log=log)
    scorer = build_scorer({"type": "contains", "value": "ECHO"}, "scorers[0]")
    provider = ScriptedProvider(sometimes)

    assert await executor(workload, provider, store=store, scorers=[scorer], max_concurrency=2).run() == "drained"

    assert len(workload.recorded) == 6
    failed = workload.outcome(3)
    assert not failed.ok
    assert "stage 'answer'" in failed.error and "model is on fire" in failed.error
    assert failed.score is None and failed.output == ""
    assert [o.item.sample_id for o in workload.recorded if not o.ok] == [3]
    assert all(o.score == 1.0 for o in workload.recorded if o.ok)
    assert len(store.entries) == 5  # errors are never cached
    assert workload.released == []


async def test_provider_error_in_a_later_stage_keeps_the_earlier_stages():
    def second_fails(request):
        if user_prompt(request).startswith("Label"):
            raise ProviderError("rate limited", status=429)
        return echo(request)

    stages = [stage("summarize", "Summarize {{ name }}"), stage("label", "Label {{ summarize }}")]
    workload = FakeWorkload(named_items(["x"], *stages))

    await executor(workload, ScriptedProvider(second_fails)).run()

    (outcome,) = workload.recorded
    assert "stage 'label'" in outcome.error and "rate limited" in outcome.error
    assert [s.name for s in outcome.stages] == ["summarize"]
    assert outcome.total("tokens_in") > 0  # the paid stage stays accounted


async def test_unknown_provider_fails_the_sample_not_the_sweep():
    stages = [stage("answer", "{{ name }}", model="nowhere/m")]
    workload = FakeWorkload(named_items(["a", "b"], *stages) + named_items(["c"], first_id=3))

    assert await executor(workload, ScriptedProvider()).run() == "drained"

    assert "unknown provider 'nowhere'" in workload.outcome(1).error
    assert "stage 'answer'" in workload.outcome(2).error
    assert workload.outcome(3).ok


async def test_undefined_template_variable_fails_only_that_sample():
    items = make_items([{"topic": "cats"}, {"topi": "typo"}, {"topic": "dogs"}], [stage("ask", "Tell me about {{ topic }}")])
    workload = FakeWorkload(items)
    provider = ScriptedProvider()

    assert await executor(workload, provider).run() == "drained"

    assert provider.calls == 2  # the broken row never reaches the provider
    bad = workload.outcome(2)
    assert "stage 'ask'" in bad.error and "topic" in bad.error and "undefined" in bad.error
    assert "internal error" not in bad.error  # a user's template mistake, reported as such
    assert workload.outcome(1).ok and workload.outcome(3).ok


async def test_template_error_in_a_later_stage_names_that_stage():
    stages = [stage("one", "{{ name }}"), stage("two", "{{ 1 / 0 }}")]
    workload = FakeWorkload(named_items(["a"], *stages))

    await executor(workload, ScriptedProvider()).run()

    (outcome,) = workload.recorded
    assert "stage 'two'" in outcome.error and "ZeroDivisionError" in outcome.error
    assert "internal error" not in outcome.error
    assert [s.name for s in outcome.stages] == ["one"]


async def test_an_unexpected_exception_fails_one_sample_and_frees_its_budget():
    def buggy(request):
        if user_prompt(request) == "w001":
            raise RuntimeError("adapter bug")
        return exact_usage(request)

    workload = FakeWorkload(named_items(words(4), WORD_STAGE))
    budget = Budget(max_tokens=1000, max_cost_usd=None)

    assert await executor(workload, ScriptedProvider(buggy), budget=budget).run() == "drained"

    assert "internal error RuntimeError: adapter bug" in workload.outcome(2).error
    assert "stage 'answer'" in workload.outcome(2).error
    assert [o.ok for o in sorted(workload.recorded, key=lambda o: o.item.sample_id)] == [True, False, True, True]
    assert budget.reserved_tokens == 0 and budget.spent_tokens == 30


# ---------------------------------------------------------------------------------------------
# Response cache
# ---------------------------------------------------------------------------------------------


async def test_cache_hits_skip_the_provider_and_spend_no_budget():
    stages = [stage("one", "{{ name }}", max_tokens=9), stage("two", "more {{ one }}", max_tokens=9)]
    store = FakeStore()
    first = FakeWorkload(named_items(words(5), *stages))
    provider = ScriptedProvider(exact_usage)
    assert await executor(first, provider, store=store).run() == "drained"
    assert provider.calls == 10

    again = FakeWorkload(named_items(words(5), *stages))
    budget = Budget(max_tokens=0, max_cost_usd=0.0)  # nothing could be paid for
    assert await executor(again, provider, store=store, budget=budget, prices={"fake": (5.0, 5.0)}).run() == "drained"

    assert provider.calls == 10  # not one more
    assert budget.spent_tokens == 0 and budget.reserved_tokens == 0 and budget.exhausted_reason is None
    assert all(o.ok and o.cache_hit for o in again.recorded)
    assert all(o.total("tokens_in", cached=False) == 0 for o in again.recorded)
    # Same answers as the paid run.
    assert {o.item.sample_id: o.output for o in again.recorded} == {o.item.sample_id: o.output for o in first.recorded}


async def test_identical_requests_are_paid_once_and_replicates_separately():
    store = FakeStore()
    provider = ScriptedProvider()
    # Two rows with the same prompt, each twice (replicates 0 and 1), one at a time.
    workload = FakeWorkload(named_items(["same", "same"], replicates=2))

    await executor(workload, provider, store=store, max_concurrency=1).run()

    assert provider.calls == 2
    assert sorted(r.replicate for r in provider.requests) == [0, 1]
    by_id = {o.item.sample_id: o for o in workload.recorded}
    assert [by_id[i].cache_hit for i in (1, 2, 3, 4)] == [False, False, True, True]


async def test_cache_key_is_the_canonical_request_with_replicate():
    store = FakeStore()
    provider = ScriptedProvider()
    stages = [stage("answer", "Q {{ name }}", system="Be {{ mood }}", temperature=0.5)]
    workload = FakeWorkload(make_items([{"name": "n", "mood": "kind"}], stages, replicates=1))

    await executor(workload, provider, store=store).run()

    expected = cache_key(
        provider="fake", model="m", params={"temperature": 0.5},
        messages=({"role": "system", "content": "Be kind"}, {"role": "user", "content": "Q n"}), replicate=0,
    )  # fmt: skip
    assert list(store.entries) == [expected]
    (key, provider_name, model, response) = store.puts[0]
    assert (provider_name, model) == ("fake", "m")
    assert response.text == "ECHO Q n"


async def test_cache_writes_happen_before_the_sample_is_recorded():
    log = EventLog()
    store = FakeStore(log, put_delay=0.005)  # a slow write must still come first
    stages = [stage("one", "{{ name }}"), stage("two", "then {{ one }}")]
    workload = FakeWorkload(named_items([f"s{i}" for i in range(6)], *stages), log=log)

    await executor(workload, ScriptedProvider(), store=store, max_concurrency=3).run()

    assert len(workload.recorded) == 6
    for outcome in workload.recorded:
        record_at = log.index(("record", outcome.item.sample_id))
        for s in outcome.stages:
            put_at = next(i for i, e in enumerate(log) if e[0] == "put" and e[2] == s.response)
            assert put_at < record_at


async def test_a_cached_first_stage_is_not_paid_for_again():
    stages_v1 = [stage("one", "{{ name }}"), stage("two", "v1 {{ one }}")]
    stages_v2 = [stage("one", "{{ name }}"), stage("two", "v2 {{ one }}")]  # stage 2 edited
    store = FakeStore()
    provider = ScriptedProvider()
    await executor(FakeWorkload(named_items(["a", "b"], *stages_v1)), provider, store=store).run()
    assert provider.calls == 4

    edited = FakeWorkload(named_items(["a", "b"], *stages_v2))
    await executor(edited, provider, store=store).run()

    assert provider.calls == 6
    assert sorted(user_prompt(r) for r in provider.requests[4:]) == ["v2 ECHO a", "v2 ECHO b"]
    assert all([s.cached for s in o.stages] == [True, False] for o in edited.recorded)


async def test_a_cached_response_is_returned_as_stored():
    stored = CachedResponse("from the cache", tokens_in=3, tokens_out=4, finish_reason="length", latency_ms=12.5, cost_usd=0.5)
    key = cache_key(provider="fake", model="m", params={}, messages=({"role": "user", "content": "hi"},), replicate=0)
    store = FakeStore()
    store.entries[key] = stored
    workload = FakeWorkload(named_items(["hi"]))
    provider = ScriptedProvider()

    await executor(workload, provider, store=store).run()

    (outcome,) = workload.recorded
    assert provider.calls == 0
    assert outcome.output == "from the cache"
    assert outcome.stages[0].response == stored
    assert outcome.stages[0].to_dict()["cached"] is True
    assert outcome.total("cost_usd", cached=True) == 0.5


# ---------------------------------------------------------------------------------------------
# Pipelines and scoring
# ---------------------------------------------------------------------------------------------


async def test_multi_stage_pipeline_passes_earlier_outputs_as_variables():
    def behave(request: CompletionRequest) -> Completion:
        prompt = user_prompt(request)
        if request.model == "summarizer":
            return Completion(text=f"SUMMARY[{prompt}]", tokens_in=2, tokens_out=3)
        return Completion(text=f"LABEL[{prompt}]", tokens_in=5, tokens_out=1, finish_reason="length")

    first = ScriptedProvider(behave, name="alpha")
    second = ScriptedProvider(behave, name="beta")
    stages = [
        stage("summarize", "Summarize: {{ ticket }}", model="alpha/summarizer", system="You are {{ tone }}."),
        stage("label", "Label: {{ summarize }} ({{ ticket }})", model="beta/labeller", temperature=0.3),
    ]
    workload = FakeWorkload(make_items([{"ticket": "charged twice", "tone": "brief"}], stages))

    await executor(workload, first, second, prices={"alpha": (1e6, 0.0), "beta": (0.0, 1e6)}).run()

    (req1,) = first.requests
    (req2,) = second.requests
    assert req1.model == "summarizer" and req2.model == "labeller"  # provider prefix removed
    assert req1.messages == ({"role": "system", "content": "You are brief."}, {"role": "user", "content": "Summarize: charged twice"})
    assert req2.messages == ({"role": "user", "content": "Label: SUMMARY[Summarize: charged twice] (charged twice)"},)
    assert dict(req2.params) == {"temperature": 0.3}
    (outcome,) = workload.recorded
    assert outcome.output == "LABEL[Label: SUMMARY[Summarize: charged twice] (charged twice)]"
    first_stage, second_stage = (s.to_dict() for s in outcome.stages)
    assert first_stage["system"] == "You are brief." and first_stage["model"] == "alpha/summarizer"
    assert second_stage["finish_reason"] == "length" and second_stage["system"] is None
    # Cost from the per-million prices: alpha charges $1/token in, beta $1/token out.
    assert first_stage["cost_usd"] == pytest.approx(2.0) and second_stage["cost_usd"] == pytest.approx(1.0)
    assert outcome.total("tokens_in") == 7 and outcome.total("tokens_out") == 4


async def test_scorers_give_verdicts_and_a_weighted_score():
    def behave(request):
        return Completion(text=f"Category: {user_prompt(request)}", tokens_in=1, tokens_out=1)

    scorers = [
        build_scorer({"type": "contains", "value": "{{ expected }}", "weight": 2}, "scorers[0]"),
        build_scorer({"type": "max_length", "value": 15}, "scorers[1]"),
    ]
    rows = [
        {"ticket": "billing", "expected": "billing"},  # contains: yes; 17 chars > 15: no -> 2/3
        {"ticket": "x", "expected": "x"},  # both pass -> 1
        {"ticket": "login", "expected": "refund"},  # contains: no; 15 chars: yes -> 1/3
    ]
    workload = FakeWorkload(make_items(rows, [stage("label", "{{ ticket }}")]))

    await executor(workload, ScriptedProvider(behave), scorers=scorers).run()

    scores = {o.item.sample_id: o.score for o in workload.recorded}
    assert scores == {1: pytest.approx(2 / 3), 2: pytest.approx(1.0), 3: pytest.approx(1 / 3)}
    verdicts = workload.outcome(1).verdicts
    assert [(v.name, v.weight, v.result.passed) for v in verdicts] == [("contains", 2.0, True), ("max_length", 1.0, False)]
    assert "billing" in verdicts[0].result.reason


async def test_scorers_can_read_stage_outputs_and_score_the_final_one():
    stages = [stage("draft", "{{ name }}"), stage("final", "short")]
    scorers = [build_scorer({"type": "contains", "value": "{{ draft }}"}, "s")]
    workload = FakeWorkload(named_items(["abc"], *stages))

    await executor(workload, ScriptedProvider(), scorers=scorers).run()

    (outcome,) = workload.recorded
    assert outcome.output == "ECHO short"
    assert outcome.verdicts[0].result.passed is False  # final output lacks the draft "ECHO abc"
    assert "ECHO abc" in outcome.verdicts[0].result.reason


async def test_no_scorers_means_no_score():
    workload = FakeWorkload(named_items(["a"]))
    await executor(workload, ScriptedProvider()).run()
    (outcome,) = workload.recorded
    assert outcome.ok and outcome.verdicts == () and outcome.score is None

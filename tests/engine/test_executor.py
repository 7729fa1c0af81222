"""The sweep executor, driven through in-memory fakes of its workload, cache and providers.

Timing is asserted by counting and ordering (gated providers that the test releases call by
call); the one wall-clock test keeps wide margins because the machine is shared.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Container

import pytest

from sweeps.engine.budget import Budget, estimate_tokens
from sweeps.engine.cache import cache_key
from sweeps.engine.executor import CachedResponse, Executor
from sweeps.engine.limits import LocalRateLimiter
from sweeps.engine.provider import Completion, CompletionRequest, ProviderError
from sweeps.engine.retry import RetryPolicy
from sweeps.engine.scorers import ScoreResult, build_scorer
from tests.engine.fakes import (
    EventLog,
    FakeJudge,
    FakeProviders,
    FakeSleep,
    FakeStore,
    FakeWorkload,
    GatedProvider,
    ScriptedLimiter,
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
    sleep: FakeSleep | None = None,
    **options,  # retry, provider_retry, limiter, fail_fast, rng
) -> Deadline:
    return Deadline(
        Executor(
            workload=workload,
            store=store if store is not None else FakeStore(workload.log),
            providers=FakeProviders(*providers, prices=prices),
            scorers=list(scorers),
            budget=budget or Budget(max_tokens=None, max_cost_usd=None),
            max_concurrency=max_concurrency,
            claim_ahead=claim_ahead,
            sleep=sleep if sleep is not None else FakeSleep(),  # retries never wait in real time
            **options,
        )
    )


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
        await until(lambda before=started_before: len(provider.started) > before, what="a new call after one finished")
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


async def test_a_stop_before_the_budget_runs_out_ends_stopped_without_touching_the_budget():
    workload = FakeWorkload(
        named_items(["a", "b"], stage("one", "{{ name }}", max_tokens=5), stage("two", "{{ one }}", max_tokens=5))
    )
    provider = GatedProvider()
    budget = Budget(max_tokens=12, max_cost_usd=None)  # room for the first stages only
    task = asyncio.create_task(executor(workload, provider, budget=budget, max_concurrency=2).run())
    await until(lambda: provider.active == 2)
    workload.state = "stopped"
    while not task.done():  # first stages finish; no second stage starts, so none is refused
        for prompt in [p for p, f in provider.waiting.items() if not f.done()]:
            provider.finish(prompt)
        await asyncio.sleep(0.01)

    assert await task == "stopped"
    assert budget.exhausted_reason is None


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
    result = await executor(
        workload, provider, budget=budget, max_concurrency=2, prices={"fake": (1000.0, 1000.0)}
    ).run()

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
            raise ProviderError("server error", status=503)
        return echo(request)

    stages = [stage("summarize", "Summarize {{ name }}"), stage("label", "Label {{ summarize }}")]
    workload = FakeWorkload(named_items(["x"], *stages))

    await executor(workload, ScriptedProvider(second_fails)).run()

    (outcome,) = workload.recorded
    assert "stage 'label'" in outcome.error and "server error" in outcome.error
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
    items = make_items(
        [{"topic": "cats"}, {"topi": "typo"}, {"topic": "dogs"}], [stage("ask", "Tell me about {{ topic }}")]
    )
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
    stored = CachedResponse(
        "from the cache", tokens_in=3, tokens_out=4, finish_reason="length", latency_ms=12.5, cost_usd=0.5
    )
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
    assert req1.messages == (
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Summarize: charged twice"},
    )
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
    assert [(v.name, v.weight, v.result.passed) for v in verdicts] == [
        ("contains", 2.0, True),
        ("max_length", 1.0, False),
    ]
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


# ---------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------


def failing_first(n: int, make_error, behaviour=echo, *, only=None):
    """Fails the first `n` calls of each prompt (of those in `only`, when given) with
    make_error(attempt), then behaves."""
    attempts: dict[str, int] = {}

    def behave(request: CompletionRequest):
        prompt = user_prompt(request)
        attempts[prompt] = attempts.get(prompt, 0) + 1
        if attempts[prompt] <= n and (only is None or prompt in only):
            raise make_error(attempts[prompt])
        return behaviour(request)

    return behave


def overloaded(attempt: int) -> ProviderError:
    return ProviderError(f"fake: 503 overloaded (#{attempt})", status=503)


async def test_retryable_errors_are_retried_until_the_call_succeeds():
    workload = FakeWorkload(named_items(["w000", "w001"], WORD_STAGE))
    provider = ScriptedProvider(failing_first(2, overloaded, exact_usage))
    budget = Budget(max_tokens=1000, max_cost_usd=None)
    sleep = FakeSleep()

    assert await executor(workload, provider, budget=budget, sleep=sleep).run() == "drained"

    assert provider.calls == 6
    assert all(o.ok for o in workload.recorded)
    assert [o.stages[0].attempts for o in workload.recorded] == [3, 3]
    assert workload.recorded[0].stages[0].to_dict()["attempts"] == 3
    assert len(sleep.waits) == 4  # one backoff before each retry
    # Only the successful calls are paid for; the failed ones' reservations were given back.
    assert budget.spent_tokens == 20 and budget.reserved_tokens == 0


async def test_a_cached_stage_made_no_attempt():
    store = FakeStore()
    provider = ScriptedProvider()
    await executor(FakeWorkload(named_items(["a"])), provider, store=store).run()
    again = FakeWorkload(named_items(["a"]))

    await executor(again, provider, store=store).run()

    (outcome,) = again.recorded
    assert outcome.stages[0].cached and outcome.stages[0].attempts == 0


async def test_retries_never_come_before_the_retry_after_the_provider_asked_for():
    def make_error(attempt):
        return ProviderError("fake: 429 slow down", status=429, retry_after=7.5)

    workload = FakeWorkload(named_items(["a"]))
    provider = ScriptedProvider(failing_first(3, make_error))
    sleep = FakeSleep()
    policy = RetryPolicy(max_attempts=5, base=0.01, cap=0.02)  # backoff alone would wait far less

    assert await executor(workload, provider, sleep=sleep, retry=policy, rng=random.Random(7)).run() == "drained"

    # Never earlier than asked, at most 10 % later, drawn anew each time (from the executor's rng).
    assert all(7.5 <= wait <= 8.25 for wait in sleep.waits) and len(set(sleep.waits)) == 3
    same_rng = random.Random(7)
    assert sleep.waits == [policy.delay(attempt, 7.5, same_rng) for attempt in (1, 2, 3)]
    assert workload.recorded[0].stages[0].attempts == 4


async def test_the_gap_between_attempts_is_never_shorter_than_retry_after_in_real_time():
    call_times: list[float] = []

    def behave(request):
        call_times.append(time.monotonic())
        if len(call_times) <= 2:
            raise ProviderError("fake: 503 busy", status=503, retry_after=0.05)
        return echo(request)

    workload = FakeWorkload(named_items(["a"]))
    policy = RetryPolicy(base=0.0, cap=0.0)  # only Retry-After makes it wait

    assert await executor(workload, ScriptedProvider(behave), sleep=asyncio.sleep, retry=policy).run() == "drained"

    assert len(call_times) == 3
    assert all(later - earlier >= 0.05 for earlier, later in zip(call_times, call_times[1:]))


async def test_backoff_waits_follow_the_policy_drawn_from_the_given_rng():
    workload = FakeWorkload(named_items(["a"]))
    provider = ScriptedProvider(failing_first(4, overloaded))
    sleep = FakeSleep()
    policy = RetryPolicy(max_attempts=5, base=1.0, cap=3.0)

    await executor(workload, provider, sleep=sleep, retry=policy, rng=random.Random(42)).run()

    same_rng = random.Random(42)
    assert sleep.waits == [policy.delay(attempt, None, same_rng) for attempt in (1, 2, 3, 4)]
    assert all(0 <= wait <= bound for wait, bound in zip(sleep.waits, [1.0, 2.0, 3.0, 3.0]))


async def test_gives_up_after_max_attempts_with_the_last_error():
    def sometimes(request):
        if user_prompt(request) == "doomed":
            raise overloaded(len([r for r in provider.requests if user_prompt(r) == "doomed"]))
        return echo(request)

    provider = ScriptedProvider(sometimes)
    budget = Budget(max_tokens=100_000, max_cost_usd=None)
    workload = FakeWorkload(named_items(["ok1", "doomed", "ok2"]))

    result = await executor(workload, provider, budget=budget, retry=RetryPolicy(max_attempts=3)).run()

    assert result == "drained"
    assert sum(user_prompt(r) == "doomed" for r in provider.requests) == 3
    doomed = workload.outcome(2)
    assert doomed.error == "stage 'answer': fake: 503 overloaded (#3) (after 3 attempts)"
    assert workload.outcome(1).ok and workload.outcome(3).ok
    assert budget.reserved_tokens == 0


async def test_a_provider_may_have_its_own_retry_policy():
    alpha = ScriptedProvider(failing_first(10, overloaded), name="alpha")
    beta = ScriptedProvider(failing_first(10, overloaded), name="beta")
    workload = FakeWorkload(
        named_items(["a"], stage("answer", "{{ name }}", model="alpha/m"))
        + named_items(["b"], stage("answer", "{{ name }}", model="beta/m"), first_id=2)
    )

    await executor(
        workload, alpha, beta, retry=RetryPolicy(max_attempts=2), provider_retry={"beta": RetryPolicy(max_attempts=4)}
    ).run()

    assert (alpha.calls, beta.calls) == (2, 4)
    assert "after 4 attempts" in workload.outcome(2).error


async def test_permanent_errors_fail_at_once():
    def refuse(request):
        raise ProviderError("fake: 401 invalid API key — set FAKE_API_KEY", status=401, permanent=True)

    provider = ScriptedProvider(refuse)
    sleep = FakeSleep()
    workload = FakeWorkload(named_items(["a"]))

    await executor(workload, provider, sleep=sleep).run()

    assert provider.calls == 1 and sleep.waits == []
    assert workload.outcome(1).error == "stage 'answer': fake: 401 invalid API key — set FAKE_API_KEY"


async def test_a_retry_after_longer_than_max_wait_fails_the_call_instead_of_waiting():
    """A daily quota's `Retry-After: 86400` would otherwise hold the sample, its lease and its
    budget reservation for a day, with the sweep showing nothing."""

    def busy_for_a_day(request):
        raise ProviderError("fake: 503 come back tomorrow", status=503, retry_after=86_400)

    provider = ScriptedProvider(busy_for_a_day)
    sleep = FakeSleep()
    budget = Budget(max_tokens=100_000, max_cost_usd=None)
    workload = FakeWorkload(named_items(["a"]))

    await executor(workload, provider, sleep=sleep, budget=budget, retry=RetryPolicy(max_wait=600)).run()

    assert provider.calls == 1 and sleep.waits == []
    assert workload.outcome(1).error == (
        "stage 'answer': fake: 503 come back tomorrow (the provider asked to wait 86,400 s, "
        "more than retry.max_wait (600 s))"
    )
    assert budget.reserved_tokens == 0


async def test_a_retry_after_within_max_wait_is_waited_for():
    provider = ScriptedProvider(
        failing_first(1, lambda attempt: ProviderError("fake: 503", status=503, retry_after=600))
    )
    sleep = FakeSleep()
    workload = FakeWorkload(named_items(["a"]))

    await executor(workload, provider, sleep=sleep, retry=RetryPolicy(max_wait=600)).run()

    assert workload.outcome(1).ok and provider.calls == 2
    assert len(sleep.waits) == 1 and 600 <= sleep.waits[0] <= 660


async def test_a_429_asking_for_longer_than_max_wait_pauses_the_sweep_as_rate_limited():
    def throttled(request):
        if user_prompt(request) == "b":
            raise ProviderError("fake: 429 too many requests", status=429, retry_after=3600)
        return echo(request)

    workload = FakeWorkload(named_items(["a", "b", "c"]))
    sleep = FakeSleep()
    run = executor(workload, ScriptedProvider(throttled), max_concurrency=1, sleep=sleep)

    assert await run.run() == "rate_limited"
    assert sleep.waits == [] and all(o.ok for o in workload.recorded)
    assert "asked to wait 3,600 s" in str(run.executor.quota_error)
    workload.assert_accounted()


async def test_a_sample_waiting_for_its_retry_does_not_hold_a_slot():
    """Concurrency 1: while A waits to retry, B's call runs; A's retry then goes after B."""
    log = EventLog()
    workload = FakeWorkload(named_items(["A", "B"]), log=log)
    provider = ScriptedProvider(failing_first(1, overloaded, only={"A"}))
    sleep = FakeSleep(log, hold=True)
    task = asyncio.create_task(executor(workload, provider, sleep=sleep, max_concurrency=1).run())

    await until(lambda: workload.recorded_ids == [2], what="B to finish while A waits")
    assert sleep.sleeping == 1
    assert [user_prompt(r) for r in provider.requests] == ["A", "B"]

    sleep.wake_all()
    assert await asyncio.wait_for(task, 5) == "drained"
    assert [user_prompt(r) for r in provider.requests] == ["A", "B", "A"]
    assert provider.max_active == 1
    assert workload.outcome(1).ok and workload.outcome(1).stages[0].attempts == 2


async def test_a_sample_back_from_its_wait_gets_the_next_slot_before_new_samples():
    # C calls another provider, so only the slots (not that provider's own limit) keep it waiting.
    alpha, beta = GatedProvider("alpha"), GatedProvider("beta")
    sleep = FakeSleep(hold=True)
    workload = FakeWorkload(
        named_items(["A", "B"], stage("answer", "{{ name }}", model="alpha/m"))
        + named_items(["C"], stage("answer", "{{ name }}", model="beta/m"), first_id=3)
    )
    task = asyncio.create_task(executor(workload, alpha, beta, sleep=sleep, max_concurrency=1).run())

    await until(lambda: alpha.active == 1)
    alpha.finish("A", error=overloaded(1))
    await until(lambda: "B" in alpha.waiting, what="B to start while A waits")
    sleep.wake_all()  # A is ready to retry, but B holds the one slot
    await asyncio.sleep(0.01)
    assert list(alpha.waiting) == ["B"]
    alpha.finish("B")
    await until(lambda: "A" in alpha.waiting, what="A's retry")
    await asyncio.sleep(0.01)
    assert beta.started == []  # C waits for the slot A holds
    alpha.finish("A")
    await until(lambda: "C" in beta.waiting)
    beta.finish("C")

    assert await asyncio.wait_for(task, 5) == "drained"
    assert alpha.started == ["A", "B", "A"]
    assert all(o.ok for o in workload.recorded)


async def test_samples_in_progress_are_bounded_when_every_call_has_to_wait():
    """Every call answers 503: the waiting samples give their slots to new ones, but no more
    than four times max_concurrency samples are in progress, so the sweep is not all claimed."""

    def throttled(request):
        raise ProviderError("fake: 503 overloaded", status=503)

    workload = FakeWorkload(named_items([f"s{i}" for i in range(30)]))
    provider = ScriptedProvider(throttled)
    sleep = FakeSleep(hold=True)
    task = asyncio.create_task(
        executor(workload, provider, sleep=sleep, max_concurrency=3, retry=RetryPolicy(max_attempts=2)).run()
    )

    await until(lambda: sleep.sleeping == 12, what="12 samples waiting")
    await asyncio.sleep(0.01)
    assert sleep.sleeping == 12 and len(workload.claimed) == 12 and provider.calls == 12
    assert max(workload.claim_limits) <= 3  # never claimed beyond what it could start

    while not task.done():
        sleep.wake_all()
        await asyncio.sleep(0.001)
    assert task.result() == "drained"
    assert len(workload.recorded) == 30 and not any(o.ok for o in workload.recorded)
    assert provider.calls == 60
    workload.assert_accounted()


# ---------------------------------------------------------------------------------------------
# Rate limited beyond the retries: pause, fail nothing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_fast", [True, False])
async def test_a_429_beyond_the_retries_stops_the_run_as_rate_limited_and_fails_no_sample(fail_fast):
    def throttled(request):
        if user_prompt(request) == "b":
            raise ProviderError("fake: 429 too many requests", status=429)
        return echo(request)

    workload = FakeWorkload(named_items(["a", "b", "c", "d"]))
    run = executor(workload, ScriptedProvider(throttled), max_concurrency=1, fail_fast=fail_fast,
                   retry=RetryPolicy(max_attempts=2))  # fmt: skip

    assert await run.run() == "rate_limited"
    assert all(o.ok for o in workload.recorded)  # "b" was not failed: it went back to pending
    assert str(run.executor.quota_error) == "fake: 429 too many requests (after 2 attempts)"
    workload.assert_accounted()


# ---------------------------------------------------------------------------------------------
# Out of credit: fail fast
# ---------------------------------------------------------------------------------------------


def out_of_credit_for(*prompts):
    def behave(request):
        if user_prompt(request) in prompts:
            raise ProviderError("fake: 429 insufficient_quota — add credit", status=429, quota_exhausted=True)
        return echo(request)

    return behave


async def test_quota_exhausted_stops_the_sweep_when_failing_fast():
    workload = FakeWorkload(named_items(["a", "broke", "c", "d", "e"]))
    provider = ScriptedProvider(out_of_credit_for("broke"))
    run = executor(workload, provider, max_concurrency=1, claim_ahead=2)

    assert await run.run() == "provider_error"

    assert [user_prompt(r) for r in provider.requests] == ["a", "broke"]  # not retried, nothing after it
    assert workload.outcome(1).ok
    assert workload.recorded_ids == [1]  # the sample that found no credit is not failed...
    assert sorted(workload.released_ids) == [2, 3]  # ...but handed back, with the one claimed ahead
    assert [i.sample_id for i in workload.pending] == [4, 5]
    assert str(run.executor.quota_error) == "fake: 429 insufficient_quota — add credit"
    workload.assert_accounted()


async def test_quota_exhausted_lets_the_calls_in_flight_finish():
    workload = FakeWorkload(named_items([f"s{i}" for i in range(10)]))
    provider = GatedProvider()
    task = asyncio.create_task(executor(workload, provider, max_concurrency=3).run())
    await until(lambda: provider.active == 3)

    provider.finish("s1", error=ProviderError("fake: out of credit", status=403, quota_exhausted=True))
    await asyncio.sleep(0.01)
    assert provider.started == ["s0", "s1", "s2"]  # no new call
    provider.finish("s0")
    provider.finish("s2")

    assert await asyncio.wait_for(task, 5) == "provider_error"
    assert sorted(workload.recorded_ids) == [1, 3] and all(o.ok for o in workload.recorded)
    assert workload.released_ids == [2]  # s1 waits, pending, for the top-up
    workload.assert_accounted()


async def test_quota_exhausted_in_the_last_sample_still_ends_with_provider_error():
    workload = FakeWorkload(named_items(["a", "broke"]))

    assert (
        await executor(workload, ScriptedProvider(out_of_credit_for("broke")), max_concurrency=1).run()
        == "provider_error"
    )


async def test_without_fail_fast_an_exhausted_quota_fails_only_its_samples():
    workload = FakeWorkload(named_items(["a", "broke", "c", "broke", "e"]))
    provider = ScriptedProvider(out_of_credit_for("broke"))

    assert await executor(workload, provider, max_concurrency=1, fail_fast=False).run() == "drained"

    assert [o.ok for o in sorted(workload.recorded, key=lambda o: o.item.sample_id)] == [True, False, True, False, True]
    assert provider.calls == 5


async def test_a_pause_wins_over_an_exhausted_quota_that_follows_it():
    workload = FakeWorkload(named_items(["a", "broke"]))
    provider = GatedProvider()
    task = asyncio.create_task(executor(workload, provider, max_concurrency=2).run())
    await until(lambda: provider.active == 2)
    workload.state = "paused"
    provider.finish("broke", error=ProviderError("fake: out of credit", status=403, quota_exhausted=True))
    provider.finish("a")

    assert await asyncio.wait_for(task, 5) == "paused"


# ---------------------------------------------------------------------------------------------
# Adaptive concurrency and rate limits
# ---------------------------------------------------------------------------------------------


def too_many() -> ProviderError:
    return ProviderError("fake: 429 too many requests", status=429)


async def finish_oldest(
    provider: GatedProvider, limit, error: ProviderError | None = None, *, skip: Container[str] = ()
) -> tuple[int, int]:
    """Let the oldest call whose prompt is not in `skip` end, wait for the executor to refill
    what the limit allows; return (the limit, the calls running)."""
    finished = len(provider.finished)
    provider.finish(next(p for p in provider.waiting if p not in skip), error=error)
    await until(lambda: len(provider.finished) > finished and provider.active >= limit.limit, what="a refill")
    await asyncio.sleep(0.005)  # nothing more starts
    return limit.limit, provider.active


async def test_a_throttled_provider_gets_less_concurrency_then_recovers():
    workload = FakeWorkload(named_items([f"s{i:02d}" for i in range(80)]))
    provider = GatedProvider()
    run = executor(workload, provider, max_concurrency=8)
    task = asyncio.create_task(run.run())
    await until(lambda: provider.active == 8)
    limit = run.executor.adaptive.of("fake")

    for prompt in list(provider.waiting):  # all 8 throttled at once: one round, one halving, not eight
        provider.finish(prompt, error=too_many())
    await until(lambda: len(provider.started) == 12, what="the first retries")
    await asyncio.sleep(0.01)
    assert len(provider.started) == 12 and provider.active == 4 and limit.limit == 4

    # A round is as many calls as the limit. One throttle in 4 is no more than a quarter: it stays.
    seen = [await finish_oldest(provider, limit, error) for error in (None, too_many(), None, None)]
    assert seen == [(4, 4)] * 4
    # Two in 4 is more: halved at the round's end, and the calls running then are let finish.
    seen = [await finish_oldest(provider, limit, error) for error in (too_many(), None, too_many(), None)]
    assert seen == [(4, 4)] * 3 + [(2, 3)]
    seen = [await finish_oldest(provider, limit) for _ in range(2)]
    assert seen == [(2, 2), (3, 3)]  # a clean round of 2: one more

    # Recovery: one more concurrent call after each clean round, up to max_concurrency.
    while limit.limit < 8:
        seen.append(await finish_oldest(provider, limit))
    assert [lim for lim, _ in seen] == [2, 3] + [3, 3, 4] + [4] * 3 + [5] + [5] * 4 + [6] + [6] * 5 + [7] + [7] * 6 + [
        8
    ]
    assert all(active == lim for lim, active in seen[1:])

    while not task.done():
        provider.finish_all()
        await asyncio.sleep(0.001)
    assert task.result() == "drained"
    assert all(o.ok for o in workload.recorded) and len(workload.recorded) == 80
    assert len(provider.started) == 80 + 8 + 1 + 2  # each throttled call retried once
    assert provider.max_active == 8  # never beyond max_concurrency


async def test_scattered_throttles_keep_the_provider_at_full_concurrency():
    """One call in 10 answers 429, round after round: its sample retries, the others keep all 10 slots."""
    workload = FakeWorkload(named_items([f"s{i:03d}" for i in range(130)]))
    provider = GatedProvider()
    run = executor(workload, provider, max_concurrency=10)
    task = asyncio.create_task(run.run())
    await until(lambda: provider.active == 10)
    limit = run.executor.adaptive.of("fake")

    throttled: set[str] = set()
    seen = []
    for n in range(100):
        if n % 10 == 3:  # a sample not throttled before, or it would run out of attempts
            seen.append(await finish_oldest(provider, limit, too_many(), skip=throttled))
            throttled.add(provider.finished[-1])
        else:
            seen.append(await finish_oldest(provider, limit))

    assert seen == [(10, 10)] * 100 and len(throttled) == 10
    while not task.done():
        provider.finish_all()
        await asyncio.sleep(0.001)
    assert task.result() == "drained"
    assert all(o.ok for o in workload.recorded) and len(workload.recorded) == 130
    assert len(provider.started) == 130 + 10


async def test_failures_other_than_throttles_leave_the_concurrency_alone():
    """500s and timeouts are not the provider asking for less: its samples retry at full concurrency."""
    workload = FakeWorkload(named_items([f"s{i:02d}" for i in range(30)]))
    provider = GatedProvider()
    run = executor(workload, provider, max_concurrency=4)
    task = asyncio.create_task(run.run())
    await until(lambda: provider.active == 4)
    limit = run.executor.adaptive.of("fake")

    for prompt in list(provider.waiting):  # a whole round's worth, all failing
        provider.finish(prompt, error=overloaded(1))
    await until(lambda: len(provider.finished) == 4 and provider.active == 4, what="the retries")
    assert limit.limit == 4
    seen = [await finish_oldest(provider, limit, overloaded(2)) for _ in range(8)]

    assert seen == [(4, 4)] * 8
    while not task.done():
        provider.finish_all()
        await asyncio.sleep(0.001)
    assert task.result() == "drained" and all(o.ok for o in workload.recorded)
    assert provider.max_active == 4


async def test_the_rate_limiters_waits_are_honoured_without_holding_a_slot():
    log = EventLog()
    workload = FakeWorkload(named_items(["w000", "w001", "w002"], WORD_STAGE), log=log)
    provider = ScriptedProvider(exact_usage)
    limiter = ScriptedLimiter([2.5, 0.0, 0.0], log)
    sleep = FakeSleep(log, hold=True)
    task = asyncio.create_task(executor(workload, provider, sleep=sleep, limiter=limiter, max_concurrency=1).run())

    await until(lambda: sorted(workload.recorded_ids) == [2, 3], what="the others to go while w000 waits")
    assert sleep.waits == [2.5] and [user_prompt(r) for r in provider.requests] == ["w001", "w002"]
    sleep.wake_all()

    assert await asyncio.wait_for(task, 5) == "drained"
    assert [user_prompt(r) for r in provider.requests] == ["w001", "w002", "w000"]
    assert limiter.acquired == [("fake", 10)] * 3  # each call counted with its estimated tokens


async def test_cache_hits_do_not_count_against_the_rate_limit():
    store = FakeStore()
    provider = ScriptedProvider()
    await executor(FakeWorkload(named_items(["a", "b"])), provider, store=store).run()
    limiter = ScriptedLimiter()

    await executor(FakeWorkload(named_items(["a", "b", "c"])), provider, store=store, limiter=limiter).run()

    assert limiter.acquired == [("fake", estimate_tokens("c") + 1024)]


async def test_every_retry_is_counted_by_the_rate_limiter():
    limiter = ScriptedLimiter()
    await executor(
        FakeWorkload(named_items(["a"])), ScriptedProvider(failing_first(2, overloaded)), limiter=limiter
    ).run()
    assert len(limiter.acquired) == 3


async def test_a_local_rate_limit_paces_calls_in_real_time():
    call_times: list[float] = []

    def behave(request):
        call_times.append(time.monotonic())
        return echo(request)

    limiter = LocalRateLimiter({"fake": (1200, None)}, burst_seconds=0.0)  # one call each 50 ms
    workload = FakeWorkload(named_items([f"s{i}" for i in range(5)]))

    started = time.monotonic()  # before the first call took its turn
    await executor(workload, ScriptedProvider(behave), limiter=limiter, sleep=asyncio.sleep, max_concurrency=5).run()

    assert len(call_times) == 5
    assert max(call_times) - started >= 4 * 0.05  # the fifth turn comes 4 turns after the first


# ---------------------------------------------------------------------------------------------
# LLM-as-judge scorers
# ---------------------------------------------------------------------------------------------


def answer_and_judge(request: CompletionRequest) -> Completion:
    """The pipeline echoes; the judge (model "judge") passes answers that mention billing."""
    if request.model == "judge":
        verdict = "PASS" if "billing" in user_prompt(request) else "FAIL"
        return Completion(text=verdict, tokens_in=7, tokens_out=1)
    return echo(request)


JUDGE_ROWS = [{"ticket": "billing twice", "expected": "billing"}, {"ticket": "lost parcel", "expected": "shipping"}]


async def test_a_judge_scores_through_a_call_that_is_cached_and_paid_like_any_other():
    store = FakeStore()
    provider = ScriptedProvider(answer_and_judge)
    budget = Budget(max_tokens=None, max_cost_usd=None)
    scorers = [build_scorer({"type": "contains", "value": "ECHO"}, "s"), FakeJudge(name="judge", weight=2)]
    workload = FakeWorkload(make_items(JUDGE_ROWS, [stage("answer", "{{ ticket }}")]))

    await executor(workload, provider, store=store, scorers=scorers, budget=budget, prices={"fake": (1e6, 1e6)}).run()

    passed, failed = workload.outcome(1), workload.outcome(2)
    assert passed.output == "ECHO billing twice"  # the judge's answer is not the sample's output
    assert [(v.name, v.result.value, v.result.reason) for v in passed.verdicts] == [
        ("contains", 1.0, "output contains 'ECHO'"), ("judge", 1.0, "the judge said PASS"),
    ]  # fmt: skip
    assert failed.score == pytest.approx(1 / 3)
    judged = passed.stages[1]
    assert (judged.name, judged.model, judged.system, judged.cached) == (
        "judge:judge",
        "fake/judge",
        "Answer PASS or FAIL.",
        False,
    )
    assert judged.prompt == "Expected 'billing', got 'ECHO billing twice'"
    assert judged.to_dict()["output"] == "PASS"
    judge_request = next(r for r in provider.requests if r.model == "judge")
    assert dict(judge_request.params) == {"max_tokens": 5}
    # Its tokens and cost count: 3 + 3 for the answer, 7 + 1 for the judge ($1 a token).
    assert passed.total("tokens_in") == 10 and passed.total("cost_usd") == pytest.approx(14.0)
    assert budget.spent_tokens == passed.total("tokens_in") + passed.total("tokens_out") + failed.total(
        "tokens_in"
    ) + failed.total("tokens_out")
    assert len(store.entries) == 4

    again = FakeWorkload(make_items(JUDGE_ROWS, [stage("answer", "{{ ticket }}")]))
    await executor(again, provider, store=store, scorers=scorers).run()
    assert provider.calls == 4  # the judges' verdicts came from the cache too
    assert all(o.cache_hit for o in again.recorded)
    assert again.outcome(1).verdicts == passed.verdicts


async def test_a_judges_call_is_retried_like_any_other():
    provider = ScriptedProvider(failing_first(1, overloaded, answer_and_judge))
    workload = FakeWorkload(make_items(JUDGE_ROWS[:1], [stage("answer", "{{ ticket }}")]))

    await executor(workload, provider, scorers=[FakeJudge(name="judge")]).run()

    (outcome,) = workload.recorded
    assert outcome.score == 1.0
    assert [(s.name, s.attempts) for s in outcome.stages] == [("answer", 2), ("judge:judge", 2)]


async def test_a_failing_judge_scores_zero_with_the_reason_and_the_sample_completes():
    def judge_down(request):
        if request.model == "judge":
            raise ProviderError("fake: 404 unknown model or URL", status=404, permanent=True)
        return echo(request)

    scorers = [FakeJudge(name="judge"), build_scorer({"type": "contains", "value": "ECHO"}, "s")]
    workload = FakeWorkload(make_items(JUDGE_ROWS[:1], [stage("answer", "{{ ticket }}")]))

    await executor(workload, ScriptedProvider(judge_down), scorers=scorers).run()

    (outcome,) = workload.recorded
    assert outcome.ok and outcome.output == "ECHO billing twice"
    judge, contains = outcome.verdicts
    assert (judge.result.value, judge.result.passed) == (0.0, False)
    assert judge.result.reason == "judge error: fake: 404 unknown model or URL"
    assert contains.result.passed and outcome.score == 0.5
    assert [s.name for s in outcome.stages] == ["answer"]  # a failed call leaves no stage


async def test_an_unparseable_verdict_scores_zero_with_the_reason():
    def rambling(request):
        return (
            Completion(text="Well, it depends", tokens_in=1, tokens_out=3)
            if request.model == "judge"
            else echo(request)
        )

    workload = FakeWorkload(make_items(JUDGE_ROWS[:1], [stage("answer", "{{ ticket }}")]))

    await executor(workload, ScriptedProvider(rambling), scorers=[FakeJudge(name="judge")]).run()

    (outcome,) = workload.recorded
    assert outcome.verdicts[0].result == ScoreResult(0.0, False, "judge error: unparseable verdict 'Well, it depends'")
    assert [s.name for s in outcome.stages] == ["answer", "judge:judge"]  # paid for, so recorded


async def test_a_judge_out_of_budget_hands_its_sample_back():
    store = FakeStore()
    provider = ScriptedProvider(answer_and_judge)
    budget = Budget(max_tokens=15, max_cost_usd=None)  # the answer (estimate 1 + 9), not the judge too
    workload = FakeWorkload(make_items(JUDGE_ROWS[:1], [stage("answer", "{{ ticket }}", max_tokens=9)]))

    result = await executor(workload, provider, store=store, budget=budget, scorers=[FakeJudge(name="judge")]).run()

    assert result == "token_budget"
    assert workload.recorded == [] and workload.released_ids == [1]
    assert len(store.entries) == 1  # the answer is paid and kept for the resume


@pytest.mark.parametrize("state", ["paused", "stopped"])
async def test_a_pause_between_stages_starts_no_next_stage_and_hands_the_sample_back(state):
    workload = FakeWorkload(named_items(["a", "b"], stage("one", "{{ name }}"), stage("two", "then {{ one }}")))
    provider = GatedProvider()
    task = asyncio.create_task(executor(workload, provider, max_concurrency=2).run())
    await until(lambda: provider.active == 2, what="both first stages in flight")

    workload.state = state
    for prompt in list(provider.waiting):
        provider.finish(prompt)

    assert await asyncio.wait_for(task, 5) == state
    assert sorted(provider.started) == ["a", "b"]  # no second stage was called
    assert workload.recorded == []
    assert sorted(i.row["name"] for i in workload.released) == ["a", "b"]
    workload.assert_accounted()

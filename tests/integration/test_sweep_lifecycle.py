"""Whole sweeps through the embedded worker thread, on the configured database."""

from __future__ import annotations

import pytest

from sweeps.engine.cache import cache_key
from sweeps.models import Experiment, ResponseCache, Run, RunSample, Score, Sweep
from sweeps.services import ServiceError
from sweeps.services.experiments import experiment_create, experiment_update
from sweeps.services.sweeps import (
    TransitionError,
    sweep_pause,
    sweep_resume,
    sweep_start,
    sweep_stop,
    sweeps_recover_interrupted,
)
from tests.conftest import spec, wait_for, wait_for_sweep

pytestmark = pytest.mark.django_db(transaction=True)


def start(user, **overrides) -> Sweep:
    experiment = experiment_create(owner=user, data=spec(**overrides))
    return sweep_start(experiment=experiment)


def test_grid_sweep_completes_and_ranks(user, mock_latency, provider_calls):
    sweep = wait_for_sweep(start(user))

    assert sweep.status == "completed" and sweep.stopped_reason == "completed"
    assert (sweep.total, sweep.completed, sweep.failed) == (12, 12, 0)
    runs = list(Run.objects.filter(sweep=sweep))
    assert len(runs) == 4 and all(r.status == "completed" for r in runs)
    assert {(r.config["model"], r.config["params"]["temperature"]) for r in runs} == {
        ("mock/echo", 0.0), ("mock/echo", 1.0), ("mock/upper", 0.0), ("mock/upper", 1.0)
    }  # fmt: skip
    assert RunSample.objects.filter(sweep=sweep, status="completed").count() == 12
    assert Score.objects.filter(sample__sweep=sweep).count() == 12
    # Every sample went through both stages once: 24 calls, minus identical requests shared by
    # runs (none here: each run has its own model/temperature).
    assert len(provider_calls) == 24
    assert sweep.tokens_in > 0 and sweep.tokens_out > 0 and sweep.cost_usd > 0
    best = max(r.score for r in runs)
    assert sweep.best_score == pytest.approx(best)
    sample = RunSample.objects.filter(sweep=sweep).first()
    assert [s["name"] for s in sample.stages] == ["summarize", "label"]
    assert sample.stages[1]["prompt"] == f"Label: {sample.stages[0]['output']}"


def test_run_score_is_mean_of_sample_scores(user, mock_latency):
    sweep = wait_for_sweep(start(user, scorers=[{"type": "icontains", "value": "billing"}]))
    for run in Run.objects.filter(sweep=sweep):
        values = [s.score for s in run.samples.all()]
        assert run.score == pytest.approx(sum(values) / len(values))
        # only the billing row can pass: at most 1/3 per run
        assert run.score <= 1 / 3 + 1e-9


def test_a_failing_sample_does_not_fail_the_sweep(user, mock_latency):
    sweep = wait_for_sweep(start(user, sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/error"]}}))

    assert sweep.status == "completed"
    assert (sweep.completed, sweep.failed) == (3, 3)
    failed_run = Run.objects.get(sweep=sweep, config__model="mock/error")
    assert failed_run.status == "failed" and failed_run.score == 0
    assert "stage 'summarize'" in failed_run.error
    sample = RunSample.objects.filter(run=failed_run).first()
    assert sample.status == "failed" and "stage 'summarize'" in sample.error
    assert not ResponseCache.objects.filter(model="error").exists()  # errors are never cached


def test_rerun_is_served_from_cache_without_provider_calls(user, mock_latency, provider_calls):
    experiment = experiment_create(owner=user, data=spec())
    first = wait_for_sweep(sweep_start(experiment=experiment))
    calls_first = len(provider_calls)

    second = wait_for_sweep(sweep_start(experiment=experiment))

    assert len(provider_calls) == calls_first  # not a single new call
    assert second.status == "completed" and second.cached == second.total == 12
    assert (second.tokens_in, second.tokens_out, second.cost_usd) == (0, 0, 0)
    assert second.saved_tokens == first.tokens_in + first.tokens_out
    assert {r.config_hash: r.score for r in first.runs.all()} == {r.config_hash: r.score for r in second.runs.all()}
    assert all(s.cache_hit for s in RunSample.objects.filter(sweep=second))


def test_token_budget_pauses_and_never_overshoots_past_calls_in_flight(user, mock_latency):
    mock_latency(5)
    max_tokens, concurrency, max_out = 60, 2, 16
    sweep = wait_for_sweep(
        start(
            user,
            budget={"max_tokens": max_tokens},
            max_concurrency=concurrency,
            pipeline=[
                {
                    "name": "answer",
                    "prompt": "Answer: {{ ticket }}",
                    "model": "mock/echo",
                    "params": {"max_tokens": max_out},
                }
            ],
        )  # fmt: skip
    )
    assert sweep.status == "paused" and sweep.stopped_reason == "token_budget"
    spent = sweep.tokens_in + sweep.tokens_out
    # A reservation (prompt estimate + max_tokens) is taken before each call, so only the
    # calls already in flight can carry the sweep past its limit, each by its misestimate.
    assert spent <= max_tokens
    assert RunSample.objects.filter(sweep=sweep, status="pending").exists()
    assert not RunSample.objects.filter(sweep=sweep, status="running").exists()

    with pytest.raises(ServiceError, match="raise the experiment's budget"):
        sweep_resume(sweep=sweep)

    experiment = sweep.experiment
    experiment_update(experiment=experiment, data={**experiment.spec, "budget": {"max_tokens": 1_000_000}})
    sweep = wait_for_sweep(sweep_resume(sweep=sweep), until=("completed", "failed"))
    assert sweep.status == "completed" and sweep.completed == sweep.total == 12


def test_cost_budget_pauses_with_its_reason(user, mock_latency):
    sweep = wait_for_sweep(start(user, budget={"max_cost_usd": 0.00001}, max_concurrency=1))
    assert sweep.status == "paused" and sweep.stopped_reason == "cost_budget"
    assert sweep.cost_usd <= 0.00001


def test_pause_then_resume_finishes_every_sample_exactly_once(user, mock_latency, provider_calls):
    mock_latency(30)
    sweep = start(user, max_concurrency=2)
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() >= 2)

    sweep_pause(sweep=sweep)
    sweep = wait_for_sweep(sweep)
    assert sweep.status == "paused"
    # In-flight samples finish; nothing is left running, nothing new starts.
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status="running").exists())
    done_at_pause = RunSample.objects.filter(sweep=sweep, status="completed").count()
    assert 2 <= done_at_pause < 12
    calls_at_pause = len(provider_calls)
    wait_for(lambda: True, timeout=0.3)
    assert len(provider_calls) == calls_at_pause

    sweep = wait_for_sweep(sweep_resume(sweep=sweep), until=("completed", "failed"))
    assert sweep.status == "completed" and sweep.completed == 12
    assert set(RunSample.objects.filter(sweep=sweep).values_list("attempts", flat=True)) == {1}
    # Each distinct request reached the provider exactly once.
    keys = [
        cache_key(provider="mock", model=r.model, params=r.params, messages=r.messages, replicate=r.replicate)
        for r in provider_calls
    ]
    assert len(keys) == len(set(keys)) == 24


def test_stop_cancels_pending_samples(user, mock_latency):
    mock_latency(30)
    sweep = start(user, max_concurrency=1)
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").exists())

    sweep_stop(sweep=sweep)
    sweep = wait_for_sweep(sweep)
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status__in=("running", "pending")).exists())
    sweep.refresh_from_db()

    assert sweep.status == "stopped" and sweep.stopped_reason == "stopped"
    cancelled = RunSample.objects.filter(sweep=sweep, status="cancelled").count()
    assert cancelled > 0 and sweep.cancelled == cancelled
    assert sweep.completed + sweep.failed + sweep.cancelled == sweep.total
    assert Run.objects.filter(sweep=sweep, status="cancelled").exists()
    with pytest.raises(TransitionError, match="it is stopped; it is finished"):
        sweep_resume(sweep=sweep)


def test_illegal_transitions_say_what_is_allowed(user, mock_latency):
    sweep = wait_for_sweep(start(user))
    with pytest.raises(TransitionError) as e:
        sweep_pause(sweep=sweep)
    assert "it is completed; it is finished" in str(e.value)

    experiment = sweep.experiment
    mock_latency(50)
    running = sweep_start(experiment=experiment)
    with pytest.raises(TransitionError, match="it can be paused or stopped"):
        sweep_resume(sweep=running)
    with pytest.raises(ServiceError, match="already has a"):
        sweep_start(experiment=experiment)
    sweep_stop(sweep=running)
    wait_for_sweep(running)


def test_guided_sweep_runs_in_rounds_using_scores(user, mock_latency):
    sweep = wait_for_sweep(
        start(
            user,
            sweep={
                "type": "guided",
                "n_trials": 10,
                "top_k": 2,
                "seed": 3,
                "params": {
                    "model": ["mock/echo", "mock/upper", "mock/short", "mock/json"],
                    "params.temperature": {"min": 0.0, "max": 1.0, "step": 0.25},
                },
            },
        )  # fmt: skip
    )
    assert sweep.status == "completed"
    runs = list(Run.objects.filter(sweep=sweep))
    assert len(runs) == 10 and len({r.config_hash for r in runs}) == 10
    assert sweep.rounds >= 2 and len({r.round for r in runs}) == sweep.rounds


def test_tpe_sweep_runs_in_rounds_of_distinct_configs(user, mock_latency):
    sweep = wait_for_sweep(
        start(
            user,
            sweep={
                "type": "tpe",
                "n_trials": 8,
                "seed": 3,
                "params": {
                    "model": ["mock/echo", "mock/upper", "mock/short", "mock/json"],
                    "params.temperature": {"min": 0, "max": 1},
                },
            },
        )  # fmt: skip
    )
    assert sweep.status == "completed"
    runs = list(Run.objects.filter(sweep=sweep))
    assert len(runs) == 8 and len({r.config_hash for r in runs}) == 8
    assert sweep.rounds >= 2 and len({r.round for r in runs}) == sweep.rounds
    assert all(r.status == "completed" and r.score is not None for r in runs)
    assert all(0 <= r.config["params"]["temperature"] <= 1 for r in runs)


def test_interrupted_sweep_is_recovered_as_resumable(user, mock_latency):
    from datetime import timedelta

    from django.utils import timezone

    experiment = experiment_create(owner=user, data=spec())
    # What a killed process leaves behind: a running sweep holding samples, with no heartbeat.
    sweep = Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="running",
                                 heartbeat_at=timezone.now() - timedelta(minutes=5))  # fmt: skip
    from sweeps.services.planning import plan_next_round

    plan_next_round(sweep.pk, experiment.parsed_spec())
    RunSample.objects.filter(sweep=sweep, row_index=0).update(status="running", lease_owner="dead-worker")

    recovered = sweeps_recover_interrupted()

    assert [s.pk for s in recovered] == [sweep.pk]
    sweep.refresh_from_db()
    assert (sweep.status, sweep.stopped_reason) == ("paused", "interrupted")
    assert not RunSample.objects.filter(sweep=sweep, status="running").exists()
    sweep = wait_for_sweep(sweep_resume(sweep=sweep), until=("completed", "failed"))
    assert sweep.status == "completed" and sweep.completed == 12


def test_while_paused_only_the_editable_keys_change_even_on_a_spec_saved_before_a_key_existed(user, mock_latency):
    experiment = experiment_create(owner=user, data=spec(name="Paused"))
    Sweep.objects.create(experiment=experiment, spec=experiment.spec, status="paused")
    # As saved before early stopping existed: the sweep section lacks the key, whose default is None.
    older_sweep = {key: value for key, value in experiment.spec["sweep"].items() if key != "early_stopping"}
    Experiment.objects.filter(pk=experiment.pk).update(spec={**experiment.spec, "sweep": older_sweep})
    experiment.refresh_from_db()

    experiment_update(experiment=experiment, data={**experiment.spec, "name": "Renamed", "max_concurrency": 2})

    experiment.refresh_from_db()
    assert (experiment.name, experiment.spec["name"], experiment.spec["max_concurrency"]) == ("Renamed", "Renamed", 2)
    with pytest.raises(ServiceError, match=r"stop the sweep to edit dataset\.$"):
        experiment_update(
            experiment=experiment, data={**experiment.spec, "dataset": [{"ticket": "new", "expected": "x"}]}
        )
    assert len(Experiment.objects.get(pk=experiment.pk).spec["dataset"]) == 3

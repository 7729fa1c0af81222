"""Leases under real conditions (issue 12, items 2 and 4): calls longer than the lease, and
workers killed with SIGKILL, on real `rqworker` processes, Redis and the fake LLM server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone
from redis import Redis
from rq import Worker

from sweeps.engine.executor import SampleOutcome, ScoredVerdict, WorkItem
from sweeps.engine.scorers import ScoreResult
from sweeps.models import Provider, Run, RunSample, Score, Sweep
from sweeps.services.experiments import experiment_create
from sweeps.services.leases import claim_samples, reclaim_expired
from sweeps.services.planning import plan_next_round
from sweeps.services.recording import record_outcomes
from sweeps.services.sweeps import sweep_fail, sweep_start, sweep_stop
from tests.conftest import wait_for, wait_for_sweep
from tests.fakes.llm_server import FakeLLMServer
from tests.integration.test_rq_workers import (  # noqa: F401
    KEY,
    RQ_REDIS_URL,
    rq_redis,
    rqworkers,
    use_queue,
)
from tests.servers import ROOT, session_database_url

pytestmark = pytest.mark.django_db(transaction=True)


def openai_provider(server: FakeLLMServer) -> None:
    Provider.objects.update_or_create(
        name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY"}
    )


def start(user, rows: int, concurrency: int) -> Sweep:
    experiment = experiment_create(
        owner=user,
        data={"name": "leases", "pipeline": [{"name": "answer", "prompt": "Answer: {{ t }}", "model": "openai/gpt-4o-mini"}],
              "dataset": [{"t": str(i)} for i in range(rows)], "max_concurrency": concurrency},
    )  # fmt: skip
    return sweep_start(experiment=experiment)


def prompts(server: FakeLLMServer) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in server.requests]


def kill_worker(worker: subprocess.Popen) -> None:
    """SIGKILL to a worker and its work horse (which is in a process group of its own)."""
    horses = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
    for pid in [worker.pid, *map(int, horses)]:
        os.kill(pid, signal.SIGKILL)
    worker.wait()


def spawn_worker(redis: Redis, **env: str) -> subprocess.Popen:
    """One more worker (dead ones stay registered in RQ for minutes: count the new name)."""
    before = {w.name for w in Worker.all(connection=redis)}
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "promptlooper.settings_test",
                   "DATABASE_URL": session_database_url(), "REDIS_URL": RQ_REDIS_URL, "OPENAI_API_KEY": KEY, **env}  # fmt: skip
    worker = subprocess.Popen([sys.executable, "manage.py", "rqworker", "sweeps"], cwd=ROOT, env=environment,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for(lambda: {w.name for w in Worker.all(connection=redis)} - before, timeout=60, interval=0.2)
    return worker


def stop_worker(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def test_a_late_result_from_a_lost_lease_is_dropped_and_the_holders_is_recorded_once(user, mock_latency):
    experiment = experiment_create(
        owner=user, data={"name": "late", "pipeline": [{"name": "a", "prompt": "hi {{ t }}", "model": "mock/echo"}],
                          "dataset": [{"t": "1"}], "scorers": [{"type": "contains", "value": "hi"}]},
    )  # fmt: skip
    spec = experiment.parsed_spec()
    sweep = Sweep.objects.create(experiment=experiment, spec=spec.to_dict(), status="running")
    plan_next_round(sweep.pk, spec)
    [(sample_id, run_id, row, replicate, inputs)] = claim_samples(sweep.pk, "worker-a", 10)
    # worker-a's heartbeat stalled: its lease expired and worker-b took the sample over.
    RunSample.objects.filter(pk=sample_id).update(lease_until=timezone.now() - timedelta(seconds=1))
    reclaim_expired(sweep.pk)
    assert [s[0] for s in claim_samples(sweep.pk, "worker-b", 10)] == [sample_id]

    def outcome() -> SampleOutcome:
        item = WorkItem(sample_id, run_id, row, replicate, {"t": "1"}, ())
        return SampleOutcome(item, (), (ScoredVerdict("contains", 1.0, ScoreResult(1.0, True, "")),))

    try:
        record_outcomes(sweep.pk, [outcome()], "worker-a")  # late: dropped
        record_outcomes(sweep.pk, [outcome()], "worker-b")  # the holder's: recorded
        record_outcomes(sweep.pk, [outcome()], "worker-a")  # later still: dropped, no duplicate score
    except IntegrityError as e:
        pytest.fail(f"a late result failed the batch: {e}")

    sweep.refresh_from_db()
    assert sweep.completed == 1 and Score.objects.filter(sample_id=sample_id).count() == 1
    sample = RunSample.objects.get(pk=sample_id)
    assert sample.status == "completed" and sample.lease_owner == "worker-b"
    assert Run.objects.get(pk=run_id).status == "completed"


def test_a_completed_sweep_never_turns_failed(user, mock_latency):
    experiment = experiment_create(
        owner=user, data={"name": "done", "pipeline": [{"name": "a", "prompt": "hi", "model": "mock/echo"}]}
    )
    sweep = Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="completed")
    sweep_fail(sweep.pk, "IntegrityError: a late worker's error")
    sweep.refresh_from_db()
    assert sweep.status == "completed" and sweep.error == ""


def test_calls_longer_than_the_lease_are_paid_once_with_two_workers(user, rq_redis, settings, monkeypatch):  # noqa: F811
    """90 s calls, a 20 s lease: every sample's lease is renewed while its call is in flight,
    even with every concurrency slot busy, so the other worker never takes it over."""
    use_queue(settings)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    rows = 4
    with FakeLLMServer() as server, rqworkers(2, rq_redis, PROMPTLOOPER_LEASE_SECONDS="20"):
        server.latency = 90
        openai_provider(server)
        sweep = wait_for_sweep(start(user, rows, concurrency=rows), timeout=240)

    assert sorted(prompts(server)) == sorted(f"Answer: {i}" for i in range(rows))  # each row called exactly once
    assert sweep.status == "completed" and sweep.completed == rows and sweep.failed == 0, sweep.error
    assert set(RunSample.objects.filter(sweep=sweep).values_list("attempts", flat=True)) == {1}


def test_a_new_worker_takes_over_a_sweep_whose_every_worker_was_killed(user, rq_redis, settings, monkeypatch):  # noqa: F811
    use_queue(settings)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    rows, concurrency = 30, 3
    with FakeLLMServer() as server, rqworkers(1, rq_redis, PROMPTLOOPER_LEASE_SECONDS="5") as [victim]:
        server.latency = 0.2
        openai_provider(server)
        sweep = start(user, rows, concurrency)
        wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() >= 6, timeout=30)
        kill_worker(victim)
        successor = spawn_worker(rq_redis, PROMPTLOOPER_LEASE_SECONDS="5")  # within the lease
        try:
            sweep = wait_for_sweep(sweep, timeout=60, until=("completed", "failed", "paused"))
        finally:
            stop_worker(successor)

    assert sweep.status == "completed" and sweep.completed == rows and sweep.failed == 0
    assert sorted(set(prompts(server))) == sorted(f"Answer: {i}" for i in range(rows))  # no sample lost
    assert len(prompts(server)) <= rows + concurrency  # paid twice: at most the calls in flight at the kill


def test_a_sweep_stopped_while_its_only_worker_was_dead_closes_every_run_and_sample(user, rq_redis, settings,  # noqa: F811
                                                                                 monkeypatch):  # fmt: skip
    use_queue(settings)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeLLMServer() as server, rqworkers(1, rq_redis, PROMPTLOOPER_LEASE_SECONDS="5") as [victim]:
        server.latency = 1
        openai_provider(server)
        sweep = start(user, 20, concurrency=2)
        wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() >= 2, timeout=30)
        kill_worker(victim)
        assert RunSample.objects.filter(sweep=sweep, status="running").exists()  # the dead worker's
        sweep_stop(sweep=sweep)
        successor = spawn_worker(rq_redis, PROMPTLOOPER_LEASE_SECONDS="5")
        try:
            wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status__in=("running", "pending")).exists()
                     and not Run.objects.filter(sweep=sweep, status__in=("running", "pending")).exists(), timeout=30)  # fmt: skip
        finally:
            stop_worker(successor)

    sweep.refresh_from_db()
    assert sweep.status == "stopped"
    assert sweep.completed + sweep.failed + sweep.cancelled == sweep.total == 20

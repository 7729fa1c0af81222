"""Sweeps executed by real `manage.py rqworker sweeps` processes, through a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from redis import Redis
from rq import Worker

from sweeps.models import Provider, RunSample, Sweep
from sweeps.services import ServiceError
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import wait_for, wait_for_sweep
from tests.fakes.llm_server import FakeLLMServer
from tests.servers import ROOT, session_database_url

pytestmark = pytest.mark.django_db(transaction=True)

RQ_REDIS_URL = os.environ.get("TEST_RQ_REDIS_URL", "redis://127.0.0.1:6379/14")
KEY = "sk-test-rq-workers"


@pytest.fixture
def rq_redis():
    """This test's Redis database for the queue; only RQ's own keys are removed."""
    redis = Redis.from_url(RQ_REDIS_URL)

    def clear() -> None:
        for key in redis.scan_iter("rq:*"):
            redis.delete(key)

    clear()
    yield redis
    clear()
    redis.close()


def use_queue(settings, url: str = RQ_REDIS_URL) -> None:
    """This test process starts sweeps through RQ at `url`, as a web process with REDIS_URL does."""
    settings.EMBEDDED_WORKER = False
    settings.RQ_QUEUES = {"sweeps": {"URL": url, "DEFAULT_TIMEOUT": -1}}


@contextmanager
def rqworkers(n: int, redis: Redis, redis_url: str = RQ_REDIS_URL, **extra_env: str):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "promptlooper.settings_test", "DATABASE_URL": session_database_url(),
           "REDIS_URL": redis_url, "OPENAI_API_KEY": KEY, **extra_env}  # fmt: skip
    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "sweeps"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(n)
    ]
    try:
        wait_for(lambda: Worker.count(connection=redis) == n, timeout=60, interval=0.2)
        yield workers
    finally:
        for worker in workers:
            worker.terminate()  # a warm stop: the current job finishes first
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def test_two_workers_serve_one_sweep_and_each_sample_is_done_once(user, rq_redis, settings, monkeypatch):
    use_queue(settings)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    rows = [{"ticket": f"ticket number {i}"} for i in range(40)]
    with FakeLLMServer() as server, rqworkers(2, rq_redis):
        server.latency = 0.05
        Provider.objects.update_or_create(
            name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY",
                                     "options": {"retry": {"max_attempts": 2, "base": 0.01, "cap": 0.01}}},
        )  # fmt: skip
        experiment = experiment_create(
            owner=user,
            data={"name": "rq", "pipeline": [{"name": "answer", "prompt": "Answer: {{ ticket }}", "model": "openai/gpt-4o-mini"}],
                  "dataset": rows, "max_concurrency": 4},
        )  # fmt: skip
        sweep = wait_for_sweep(sweep_start(experiment=experiment), timeout=60)

        assert sweep.status == "completed" and sweep.completed == 40
        assert len(sweep.job_id.split(",")) == 2  # one job per worker listening
        prompts = [r.json["messages"][-1]["content"] for r in server.requests]
        assert sorted(prompts) == sorted(f"Answer: ticket number {i}" for i in range(40))  # each exactly once
        owners = set(RunSample.objects.filter(sweep=sweep).values_list("lease_owner", flat=True))
        assert len(owners) == 2  # both workers took part


def test_an_unreachable_queue_keeps_the_sweep_queued_until_a_worker_sees_redis(user, rq_redis, settings, mock_latency):
    use_queue(settings, "redis://127.0.0.1:1/0")  # nothing listens
    experiment = experiment_create(
        owner=user, data={"name": "down", "pipeline": [{"name": "a", "prompt": "hi", "model": "mock/echo"}]}
    )
    started = time.monotonic()
    with pytest.raises(ServiceError, match="the job queue at REDIS_URL is unreachable; the sweep stays queued"):
        sweep_start(experiment=experiment)
    assert time.monotonic() - started < 30

    sweep = experiment.sweeps.get()
    assert sweep.status == "queued" and "unreachable" in sweep.error  # as the message says
    assert not RunSample.objects.filter(sweep=sweep).exists()  # nothing half-created

    with rqworkers(1, rq_redis, PROMPTLOOPER_LEASE_SECONDS="2"):  # Redis is back: a worker enqueues it
        sweep = wait_for_sweep(sweep, timeout=60, until=("completed", "failed"))
    assert sweep.status == "completed" and sweep.completed == 1


def test_events_from_a_worker_process_reach_a_browser_through_redis(user, rq_redis, settings, monkeypatch):
    """daphne and the worker are separate processes: only the Redis channel layer joins them."""
    import asyncio
    import json

    import websockets

    from tests.integration.test_daphne import session_cookie
    from tests.servers import daphne

    use_queue(settings)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeLLMServer() as server, rqworkers(1, rq_redis), daphne(REDIS_URL=RQ_REDIS_URL) as host:
        server.latency = 0.02
        Provider.objects.update_or_create(
            name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY"}
        )
        experiment = experiment_create(
            owner=user,
            data={"name": "live", "pipeline": [{"name": "answer", "prompt": "Answer: {{ t }}", "model": "openai/gpt-4o-mini"}],
                  "dataset": [{"t": str(i)} for i in range(6)]},
        )  # fmt: skip
        headers = {"Cookie": f"sessionid={session_cookie(user)}", "Origin": f"http://{host}"}

        async def watch() -> list[dict]:
            async with websockets.connect(
                f"ws://{host}/ws/experiments/{experiment.pk}/", additional_headers=headers
            ) as ws:
                await asyncio.to_thread(sweep_start, experiment=experiment)
                events = []
                while not events or events[-1]["type"] != "sweep.completed":
                    events.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=30)))
                return events

        events = asyncio.run(watch())

    types = [e["type"] for e in events]
    assert "sweep.started" in types and types.count("run.completed") == 1
    assert events[-1]["completed"] == events[-1]["total"] == 6


def test_a_worker_killed_mid_sweep_loses_no_sample_and_pays_again_only_for_its_calls_in_flight(
    user, rq_redis, settings, monkeypatch
):
    import signal

    use_queue(settings)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    concurrency, n = 3, 30
    with FakeLLMServer() as server, rqworkers(2, rq_redis, PROMPTLOOPER_LEASE_SECONDS="5") as workers:
        server.latency = 0.2
        Provider.objects.update_or_create(
            name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY"}
        )
        experiment = experiment_create(
            owner=user,
            data={"name": "kill", "pipeline": [{"name": "answer", "prompt": "Answer: {{ t }}", "model": "openai/gpt-4o-mini"}],
                  "dataset": [{"t": str(i)} for i in range(n)], "max_concurrency": concurrency},
        )  # fmt: skip
        sweep = sweep_start(experiment=experiment)
        wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() >= 6, timeout=30)

        victim = workers[0]
        horses = subprocess.run(["pgrep", "-P", str(victim.pid)], capture_output=True, text=True).stdout.split()
        killed = [victim.pid, *map(int, horses)]
        for pid in killed:  # the work horse is in its own process group
            os.kill(pid, signal.SIGKILL)
        # What the dead worker held (leases name the pid of the process that claimed): calls in
        # flight, and samples claimed ahead that it had not started.
        held = {
            s.pk
            for s in RunSample.objects.filter(sweep=sweep, status="running")
            if int(s.lease_owner.rsplit(":", 2)[1]) in killed
        }

        sweep = wait_for_sweep(sweep, timeout=60)

    assert sweep.status == "completed" and sweep.completed == n and sweep.failed == 0
    prompts = [r.json["messages"][-1]["content"] for r in server.requests]
    assert sorted(set(prompts)) == sorted(f"Answer: {i}" for i in range(n))  # no sample lost
    assert len(prompts) <= n + concurrency  # paid twice: at most the killed worker's calls in flight
    assert set(RunSample.objects.filter(sweep=sweep, attempts__gt=1).values_list("pk", flat=True)) <= held


def test_a_starting_worker_takes_over_running_sweeps_whose_workers_all_died(user, rq_redis, mock_latency):
    from datetime import timedelta

    from django.utils import timezone

    experiment = experiment_create(
        owner=user, data={"name": "orphan", "pipeline": [{"name": "a", "prompt": "hi", "model": "mock/echo"}]}
    )
    spec = experiment.parsed_spec().to_dict()
    orphan = Sweep.objects.create(experiment=experiment, spec=spec, status="running",
                                  heartbeat_at=timezone.now() - timedelta(minutes=5))  # fmt: skip
    alive = Sweep.objects.create(experiment=experiment, spec=spec, status="running", heartbeat_at=timezone.now())
    from rq import Queue

    parked = Queue("parked", connection=rq_redis).enqueue("os.getcwd")  # a job no worker here serves
    waiting = Sweep.objects.create(experiment=experiment, spec=spec, status="queued", job_id=parked.id)
    Sweep.objects.filter(pk=waiting.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

    with rqworkers(1, rq_redis):
        orphan = wait_for_sweep(orphan, timeout=30, until=("completed", "paused", "failed"))

    assert orphan.status == "completed" and orphan.completed == 1  # enqueued again, and a live worker ran it
    assert Sweep.objects.get(pk=alive.pk).status == "running"  # its worker is alive elsewhere
    assert Sweep.objects.get(pk=waiting.pk).status == "queued"  # its job exists: it waits for a worker


def test_admin_actions_pause_resume_and_stop_a_sweep_that_workers_execute(admin_client, user, rq_redis, settings,
                                                                        mock_latency):  # fmt: skip
    from sweeps.models import Experiment, Sweep
    from tests.integration.test_admin import EXPERIMENTS, SWEEPS, act

    use_queue(settings)
    mock_latency(100)
    data = {"name": "admin", "pipeline": [{"name": "a", "prompt": "Say {{ t }}", "model": "mock/echo"}],
            "dataset": [{"t": str(i)} for i in range(40)], "max_concurrency": 2}  # fmt: skip
    experiment = experiment_create(owner=user, data=data)
    with rqworkers(1, rq_redis):
        assert act(admin_client, EXPERIMENTS, "start_sweep", [experiment])[0][0] == "success"
        sweep = Sweep.objects.get(experiment=experiment)
        wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() >= 4, timeout=30)

        assert act(admin_client, SWEEPS, "pause", [sweep]) == [("success", f"{sweep}: paused")]
        wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status="running").exists(), timeout=30)
        done = RunSample.objects.filter(sweep=sweep, status="completed").count()
        time.sleep(0.5)
        assert RunSample.objects.filter(sweep=sweep, status="completed").count() == done < 40  # no new calls

        assert act(admin_client, SWEEPS, "resume", [sweep]) == [("success", f"{sweep}: resumed")]
        wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() > done + 2, timeout=30)
        assert act(admin_client, SWEEPS, "stop", [sweep]) == [("success", f"{sweep}: stopped")]
        sweep = wait_for_sweep(sweep)
        wait_for(
            lambda: not RunSample.objects.filter(sweep=sweep, status__in=("running", "pending")).exists(), timeout=30
        )

    sweep.refresh_from_db()
    assert sweep.status == "stopped" and sweep.cancelled > 0
    assert sweep.completed + sweep.failed + sweep.cancelled == sweep.total == 40
    assert set(RunSample.objects.filter(sweep=sweep, status="completed").values_list("attempts", flat=True)) == {1}
    assert Experiment.objects.get(pk=experiment.pk).status == "stopped"


def test_a_queued_sweep_whose_jobs_vanished_from_redis_is_enqueued_again(user, rq_redis, mock_latency):
    from datetime import timedelta

    from django.utils import timezone

    experiment = experiment_create(
        owner=user, data={"name": "lost", "pipeline": [{"name": "a", "prompt": "hi {{ t }}", "model": "mock/echo"}],
                          "dataset": [{"t": "1"}, {"t": "2"}]},
    )  # fmt: skip
    # What a Redis restart without persistence leaves: the sweep queued, its job nowhere.
    lost = Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="queued",
                                job_id="job-that-redis-forgot")  # fmt: skip
    Sweep.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

    with rqworkers(1, rq_redis):
        lost = wait_for_sweep(lost, timeout=30, until=("completed", "failed"))

    assert lost.status == "completed" and lost.completed == 2


def test_a_redis_restart_mid_sweep_does_not_lose_the_sweep(user, tmp_path, settings, mock_latency):
    """Redis stopped (SIGKILL) and started again while a worker executes: the sweep still ends
    completed, every sample done once. This test runs its own redis-server on a free port."""
    import signal

    from tests.servers import free_port

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def start_redis() -> subprocess.Popen:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)  # fmt: skip
        wait_for(lambda: _pings(url), timeout=10)
        return server

    redis_server = start_redis()
    use_queue(settings, url)
    mock_latency(50)
    experiment = experiment_create(
        owner=user, data={"name": "restart", "pipeline": [{"name": "a", "prompt": "Say {{ t }}", "model": "mock/echo"}],
                          "dataset": [{"t": str(i)} for i in range(40)], "max_concurrency": 2},
    )  # fmt: skip
    try:
        with rqworkers(1, Redis.from_url(url), redis_url=url):
            sweep = sweep_start(experiment=experiment)
            wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() >= 4, timeout=30)
            redis_server.send_signal(signal.SIGKILL)
            redis_server.wait()
            time.sleep(1)
            redis_server = start_redis()
            sweep = wait_for_sweep(sweep, timeout=60)
    finally:
        redis_server.terminate()
        redis_server.wait()

    assert sweep.status == "completed" and sweep.completed == 40
    assert set(RunSample.objects.filter(sweep=sweep).values_list("attempts", flat=True)) == {1}


def _pings(url: str) -> bool:
    try:
        return Redis.from_url(url, socket_connect_timeout=0.2).ping()
    except Exception:
        return False


def test_a_long_sweep_is_handed_from_job_to_job_and_finishes_once(user, rq_redis, settings, mock_latency):
    use_queue(settings)
    mock_latency(300)  # 40 samples x 0.3 s / 4 in flight: ~3 s of work for 1-second jobs
    experiment = experiment_create(
        owner=user, data={"name": "long", "pipeline": [{"name": "a", "prompt": "Say {{ t }}", "model": "mock/echo"}],
                          "dataset": [{"t": str(i)} for i in range(40)], "max_concurrency": 4},
    )  # fmt: skip
    with rqworkers(1, rq_redis, PROMPTLOOPER_JOB_SLICE_SECONDS="1"):
        sweep = sweep_start(experiment=experiment)
        sweep.refresh_from_db()
        first_job = sweep.job_id
        sweep = wait_for_sweep(sweep, timeout=60, until=("completed", "failed"))

    assert sweep.status == "completed" and sweep.completed == 40
    assert first_job and sweep.job_id != first_job  # later jobs took over
    assert set(RunSample.objects.filter(sweep=sweep).values_list("attempts", flat=True)) == {1}


def test_two_workers_run_a_guided_sweep_round_after_round(user, rq_redis, settings, mock_latency):
    use_queue(settings)
    mock_latency(20)
    experiment = experiment_create(
        owner=user,
        data={"name": "guided", "pipeline": [{"name": "a", "prompt": "Say {{ t }}", "model": "mock/echo"}],
              "dataset": [{"t": str(i), "expected": str(i)} for i in range(8)],
              "scorers": [{"type": "contains", "value": "{{ expected }}"}],
              "sweep": {"type": "guided", "n_trials": 12, "top_k": 2, "seed": 5,
                        "params": {"model": ["mock/echo", "mock/upper", "mock/short", "mock/json"],
                                   "params.temperature": {"min": 0.0, "max": 1.0, "step": 0.1}}},
              "max_concurrency": 2},
    )  # fmt: skip
    with rqworkers(2, rq_redis):
        sweep = wait_for_sweep(sweep_start(experiment=experiment), timeout=60, until=("completed", "failed"))

    assert sweep.status == "completed" and sweep.rounds >= 3
    runs = list(sweep.runs.all())
    assert len(runs) == 12 and len({r.config_hash for r in runs}) == 12 and all(r.status == "completed" for r in runs)
    assert sweep.completed == sweep.total == 12 * 8
    assert len(set(RunSample.objects.filter(sweep=sweep).values_list("lease_owner", flat=True))) == 2


def test_two_workers_share_an_early_stopping_sweep_rung_after_rung(user, rq_redis, settings, mock_latency):
    from sweeps.models import Run
    from tests.integration.test_early_stopping import BAD, GOOD, ROWS, es_spec

    use_queue(settings)
    mock_latency(5)
    experiment = experiment_create(owner=user, data={**es_spec(), "max_concurrency": 2})
    with rqworkers(2, rq_redis):
        sweep = wait_for_sweep(sweep_start(experiment=experiment), timeout=60, until=("completed", "failed"))

    assert sweep.status == "completed", sweep.error
    runs = {(r.config["prompt"], r.config["params"]["temperature"]): r for r in Run.objects.filter(sweep=sweep)}
    assert (
        runs[(GOOD, 0.0)].status == "completed" and runs[(GOOD, 0.0)].samples.filter(status="completed").count() == ROWS
    )
    assert runs[(BAD, 0.0)].status == runs[(BAD, 0.4)].status == "pruned"
    assert (
        sweep.done == sweep.total == 4 * ROWS
        and sweep.pruned == RunSample.objects.filter(sweep=sweep, status="pruned").count()
    )
    # Each rung was planned once: no sample ran twice, and both workers took part.
    assert set(RunSample.objects.filter(sweep=sweep).exclude(status="pruned").values_list("attempts", flat=True)) == {1}
    assert (
        len(set(RunSample.objects.filter(sweep=sweep, status="completed").values_list("lease_owner", flat=True))) == 2
    )


def test_the_cli_waits_for_a_sweep_that_an_rq_worker_runs(user, rq_redis, settings, mock_latency, tmp_path):
    import io
    import json

    from django.core.management import call_command

    use_queue(settings)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({
        "name": "cli via rq", "pipeline": [{"name": "a", "prompt": "Say {{ t }}", "model": "mock/echo"}],
        "dataset": [{"t": str(i), "expected": str(i)} for i in range(5)],
        "scorers": [{"type": "contains", "value": "{{ expected }}"}],
    }))  # fmt: skip
    out = io.StringIO()
    with rqworkers(1, rq_redis):
        call_command("sweep", str(spec_file), "--wait", "--user", user.username, "--min-score", "0.5", stdout=out)

    sweep = Sweep.objects.get(experiment__name="cli via rq")
    assert sweep.status == "completed" and sweep.completed == 5
    assert RunSample.objects.filter(sweep=sweep).exclude(lease_owner="").count() == 5  # a worker ran them
    assert "completed" in out.getvalue()

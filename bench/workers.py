#!/usr/bin/env python
"""Scaling of one sweep over several RQ workers: a measuring tool run by hand, not a test.

    .venv/bin/python bench/workers.py            # 800 samples per worker (~10 s per run)
    .venv/bin/python bench/workers.py --quick    # 240 samples per worker (~3 s per run)
    .venv/bin/python bench/workers.py --budget   # with a token budget: every call reserves from
                                                 # the sweep's shared ledger in Redis

One sweep is executed by 1, 2 and then 4 real `manage.py rqworker sweeps` processes (fresh ones
for each run) against the fake OpenAI server (tests/fakes/llm_server.py, in a thread of this
process) answering every call after 200 ms. The spec's max_concurrency (16) applies per worker,
so the ideal is workers x 16 / 0.2 s samples/s; the sweep has (samples per worker) x workers
samples so each run lasts about as long. The table shows samples/s, the ratio to that ideal,
the calls the server saw (each sample exactly once) and how many workers leased samples.

Set-up: a throwaway PostgreSQL database `promptlooper_bench_workers` (dropped, re-created and
migrated with `manage.py migrate` in a subprocess; dropped again at the end; BENCH_PG_URL
overrides the server, default postgres://postgres@127.0.0.1:5432) and Redis database 13
(BENCH_REDIS_URL overrides it; only rq:* and promptlooper:budget:* keys are removed, before and after). This process
configures Django itself (promptlooper.settings_test, with DATABASE_URL and REDIS_URL set, so
EMBEDDED_WORKER is False and sweep_start enqueues one job per listening worker), creates a
Provider row "openai" pointed at the fake server, and starts each sweep with
sweep_start once Worker.count shows every worker registered. The time is from
sweep_start to the moment the Sweep row is seen completed (polled every 20 ms).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchdb import PG_SERVER, ROOT, recreate_pg_database  # noqa: E402

PG_DB = "promptlooper_bench_workers"  # the only database this script creates, drops or writes
DATABASE_URL = f"{PG_SERVER}/{PG_DB}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
API_KEY = "sk-bench-workers"
LATENCY = 0.2  # seconds per call at the fake server
CONCURRENCY = 16  # the spec's max_concurrency, per worker
WORKER_COUNTS = (1, 2, 4)
ROWS = 80  # dataset rows; temperatures = samples / ROWS (80 divides 240 and 800)


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def clear_rq(redis) -> None:
    for pattern in ("rq:*", "promptlooper:budget:*"):
        for key in redis.scan_iter(pattern):
            redis.delete(key)


def child_env() -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "promptlooper.settings_test", "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL, "OPENAI_API_KEY": API_KEY, "LOG_LEVEL": "WARNING", "DEBUG": "False"}  # fmt: skip


def setup_django() -> None:
    os.environ.update(child_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


BUDGET = {"max_tokens": 10**9}  # --budget: never reached, so only the ledger's cost shows


def spec(tag: str, n_samples: int, budget: bool = False) -> dict:
    """One stage on openai/gpt-4o-mini, ROWS rows x (n_samples / ROWS) temperatures. `tag` goes
    into every row so no two runs share a response-cache entry."""
    n_configs = max(1, n_samples // ROWS)
    return {
        "name": f"bench workers {tag}",
        "pipeline": [{"name": "answer", "prompt": "Answer: {{ ticket }}", "model": "openai/gpt-4o-mini"}],
        "dataset": [{"ticket": f"{tag} ticket number {i}"} for i in range(ROWS)],
        "sweep": {
            "type": "grid",
            "params": {"params.temperature": [round(i / n_configs, 6) for i in range(n_configs)]},
        },
        "max_concurrency": CONCURRENCY,
        **({"budget": BUDGET} if budget else {}),
    }


def start_workers(n: int, logdir: str) -> list[subprocess.Popen]:
    workers = []
    for i in range(n):
        out = open(Path(logdir) / f"run-{n}-worker-{i}.log", "wb")  # noqa: SIM115
        workers.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "rqworker", "sweeps"],
                cwd=ROOT,
                env=child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
        out.close()  # the child holds its own descriptor
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    """Warm stop (SIGTERM) of the workers this script started, by PID; SIGKILL (with any work
    horse child) after 30 s."""
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            horses = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
            for pid in [worker.pid, *map(int, horses)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            worker.wait()


def wait_until(predicate, timeout: float, interval: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def run(n_workers: int, n_samples: int, *, user, server, redis, logdir: str, budget: bool = False) -> dict:
    import django_rq
    from rq import Worker

    from sweeps.models import RunSample, Sweep
    from sweeps.services.experiments import experiment_create
    from sweeps.services.sweeps import sweep_start

    tag = f"w{n_workers}-{secrets.token_hex(3)}"
    experiment = experiment_create(owner=user, data=spec(tag, n_samples, budget))
    server.reset()
    workers = start_workers(n_workers, logdir)
    try:
        log(f"{n_workers} worker(s): waiting for them to register")
        wait_until(lambda: Worker.count(connection=redis) == n_workers, 60, 0.1, f"{n_workers} workers to register")
        for w in workers:
            if w.poll() is not None:
                raise RuntimeError(f"worker {w.pid} exited with {w.returncode}; see {logdir}")
        log(f"{n_workers} worker(s): sweep of {n_samples} samples")
        queue = django_rq.get_queue("sweeps")
        listening = Worker.count(queue=queue)  # what dispatch_sweep will see
        started = time.monotonic()
        sweep = sweep_start(experiment=experiment)
        ended = ("completed", "paused", "stopped", "failed")
        status = wait_until(
            lambda: (s := Sweep.objects.values_list("status", flat=True).get(pk=sweep.pk)) in ended and s,
            max(120, 20 * n_samples / (n_workers * CONCURRENCY / LATENCY)), 0.02, "the sweep to end",
        )  # fmt: skip
        elapsed = time.monotonic() - started
        sweep.refresh_from_db()
        if status != "completed":
            raise RuntimeError(f"sweep {sweep.pk} ended {status}: {sweep.error or sweep.stopped_reason}")
        owners = set(RunSample.objects.filter(sweep=sweep).values_list("lease_owner", flat=True))
        prompts = [
            (r.json["messages"][-1]["content"], r.json.get("temperature")) for r in list(server.requests) if r.json
        ]
        engine = (
            (sweep.finished_at - sweep.started_at).total_seconds() if sweep.started_at and sweep.finished_at else None
        )
        return {
            "workers": n_workers,
            "samples": sweep.total,
            "listening": listening,
            "completed": sweep.completed,
            "failed": sweep.failed,
            "owners": len(owners - {""}),
            "calls": len(prompts),
            "distinct": len(set(prompts)),
            "server_peak": server.max_concurrency,
            "seconds": elapsed,
            "engine_seconds": engine,
        }
    finally:
        stop_workers(workers)
        clear_rq(redis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="240 samples per worker instead of 800")
    parser.add_argument("--budget", action="store_true", help=f"sweeps with budget {BUDGET} (shared ledger in Redis)")
    args = parser.parse_args()
    per_worker = 240 if args.quick else 800

    from redis import Redis

    log(f"re-creating {PG_DB} and migrating it")
    recreate_pg_database(PG_DB)
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT,
                             env=child_env(), capture_output=True, text=True)  # fmt: skip
    if migrate.returncode:
        sys.exit(f"manage.py migrate failed:\n{migrate.stdout}{migrate.stderr}")
    setup_django()

    from django.contrib.auth import get_user_model
    from django.db import connections

    from sweeps.models import Provider
    from tests.fakes.llm_server import FakeLLMServer

    redis = Redis.from_url(REDIS_URL)
    clear_rq(redis)
    logdir = tempfile.mkdtemp(prefix="promptlooper-bench-workers-")
    results = []
    server = FakeLLMServer().start_in_thread()
    try:
        server.latency = LATENCY
        Provider.objects.update_or_create(
            name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY"}
        )
        user = get_user_model().objects.create_user("bench", password="bench-" + secrets.token_hex(8))
        for n in WORKER_COUNTS:
            results.append(
                run(n, per_worker * n, user=user, server=server, redis=redis, logdir=logdir, budget=args.budget)
            )
    finally:
        server.stop()
        clear_rq(redis)
        redis.close()
        connections.close_all()
        recreate_pg_database(PG_DB, drop_only=True)

    print()
    print(f"One sweep over N rqworker processes: fake OpenAI server at {LATENCY * 1000:.0f} ms, "
          f"max_concurrency {CONCURRENCY} per worker, {per_worker} samples per worker"
          + (f", budget {BUDGET} (every call reserves from the shared ledger)" if args.budget else ""))  # fmt: skip
    header = (
        "workers",
        "samples",
        "seconds",
        "samples/s",
        "ideal/s",
        "ratio",
        "vs 1 worker",
        "calls",
        "owners",
        "peak",
    )
    print(" | ".join(f"{h:>11}" for h in header))
    print("-+-".join("-" * 11 for _ in header))
    base = results[0]["samples"] / results[0]["seconds"]
    for r in results:
        rate = r["samples"] / r["seconds"]
        ideal = r["workers"] * CONCURRENCY / LATENCY
        row = (r["workers"], r["samples"], f"{r['seconds']:.2f}", f"{rate:.1f}", f"{ideal:.0f}", f"{rate / ideal:.2f}",
               f"{rate / base:.2f}x", f"{r['calls']}/{r['distinct']}", f"{r['owners']}/{r['listening']}", r["server_peak"])  # fmt: skip
        print(" | ".join(f"{v!s:>11}" for v in row))
        if r["listening"] != r["workers"] or r["owners"] != r["workers"]:
            print(f"  !! {r['workers']} worker(s): {r['listening']} counted on the queue just before sweep_start, "
                  f"{r['owners']} leased samples")  # fmt: skip
        if r["completed"] != r["samples"] or r["failed"] or r["calls"] != r["samples"] or r["distinct"] != r["samples"]:
            print(f"  !! {r['workers']} worker(s): completed {r['completed']}, failed {r['failed']}, "
                  f"{r['calls']} calls for {r['distinct']} distinct prompts (expected {r['samples']} each)")  # fmt: skip
    print()
    print("seconds: sweep_start to the Sweep row seen completed; ideal/s: workers x max_concurrency / latency;")
    print("calls: requests the server saw / distinct (prompt, temperature);")
    print("owners: workers that leased samples / workers counted on the queue just before sweep_start")
    print("(dispatch_sweep enqueues one job per worker counted);")
    print("peak: most requests in flight at the server. Engine time (started_at to finished_at): "
          + ", ".join(f"{r['workers']}w {r['engine_seconds']:.2f} s" for r in results if r["engine_seconds"]))  # fmt: skip
    print(f"worker logs: {logdir}")


if __name__ == "__main__":
    main()

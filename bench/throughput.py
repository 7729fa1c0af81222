#!/usr/bin/env python
"""Throughput benchmark of sweep execution: a measuring tool run by hand, not a test.

    .venv/bin/python bench/throughput.py                  # both databases, full size (~3 min)
    .venv/bin/python bench/throughput.py --db sqlite      # or postgres, or both (default)
    .venv/bin/python bench/throughput.py --quick          # smaller sweeps, under a minute
    .venv/bin/python bench/throughput.py --profile        # + cProfile of (b) per database
    .venv/bin/python bench/throughput.py --jitter 1.0     # heavier tail for (a)

Measures, each on a freshly migrated throwaway database (a SQLite file in a temp dir, or the
PostgreSQL database `promptlooper_bench`, dropped and re-created; BENCH_PG_URL overrides the
server, default postgres://postgres@127.0.0.1:5432):

(a) scheduler efficiency: achieved provider calls/s ÷ (concurrency ÷ mean latency), mock at
    200 ms mean with lognormal jitter, concurrency 64, 2,000 calls, one stage. The ideal is
    given with the nominal mean, with the mean of the latencies the mock actually drew (what
    the jitter realised) and with the mean duration measured around each call (which also
    includes event-loop lag). Also shown: a perfect zero-overhead scheduler simulated on the
    same drawn latencies in the same order (how much the tail alone costs), and the mean slot
    occupancy while work remained to dispatch (the scheduler's part, free of the tail).
(b) framework cost per sample at zero latency with persistence (cold response cache): wall
    time of the whole execute_sweep ÷ samples, 5,000 samples, concurrency 64.
(c) warm re-run: a second sweep of (b)'s experiment, all from the response cache;
    samples/s and provider calls (counted by wrapping MockProvider.complete).
(d) peak RSS of a fresh process running a 20,000-sample sweep, and its baseline.

Each database runs in its own child processes (Django settings are process-wide); the parent
prints a table: measure, figure, target, ratio (figure ÷ target), PASS/MISS.

Sweeps are created with sweep_start and executed in-process with
asyncio.run(sweeps.runner.execution.execute_sweep(id)); sweeps.services.sweeps.dispatch_sweep is replaced by
a no-op so the embedded worker thread does not run the same sweep a second time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import heapq
import io
import json
import math
import os
import pstats
import random
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchdb import PG_SERVER, ROOT, configure_django, recreate_pg_database  # noqa: E402

PG_DB = "promptlooper_bench"  # the only database this script creates, drops or writes
RESULT_MARK = "BENCH_RESULT "
_SAMPLE: contextvars.ContextVar[list | None] = contextvars.ContextVar("bench_sample", default=None)

SIZES = {  # full / quick
    "a_calls": (2000, 600),
    "b_samples": (5000, 1000),
    "d_samples": (20000, 5000),
}
CONCURRENCY = 64
ROWS = 100  # dataset rows; configurations = samples / ROWS
A_LATENCY_MS = 200.0

TOPICS = ["billing", "login", "shipping", "refund", "password", "invoice", "delivery", "account", "upgrade", "crash"]


# ------------------------------------------------------------------------------------------
# child side: Django set-up, instrumentation, the measures
# ------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_status(field: str) -> int:
    """A /proc/self/status field in kB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def setup_django(db: str, *, inline_db: bool = False) -> tuple[str | None, dict[str, int]]:
    """Configure a fresh throwaway database and migrate it. Returns (temp dir, RSS marks in kB)."""
    tmp = None
    if db == "sqlite":
        tmp = tempfile.mkdtemp(prefix="promptlooper-bench-")
        configure_django(f"sqlite:///{tmp}/bench.sqlite3")
    else:
        configure_django(recreate_pg_database(PG_DB))
    if inline_db:  # profiling only: ORM calls run on the event loop's thread
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    marks = {"start": proc_status("VmRSS")}
    import django

    django.setup()
    from django.core.management import call_command

    marks["django_setup"] = proc_status("VmRSS")
    call_command("migrate", verbosity=0, interactive=False)
    marks["migrated"] = proc_status("VmRSS")

    # The bench runs each sweep itself (asyncio.run(execute_sweep(id))); without this no-op,
    # sweep_start's on_commit hook would also start it in the embedded worker thread.
    import sweeps.services.sweeps

    sweeps.services.sweeps.dispatch_sweep = lambda sweep, **kwargs: []  # the sweep is executed inline
    return tmp, marks


class Probe:
    """Counts and times provider calls and every ORM call made on the executor's DB thread."""

    def __init__(self, *, inline_db: bool = False) -> None:
        from sweeps.engine.executor import Executor
        from sweeps.providers.mock import MockProvider
        from sweeps.runner import execution

        self.calls: list[tuple[float, float]] = []  # (start, end) perf_counter of each complete()
        # per sample: [start, first call start, last call end, end] (perf_counter; calls None if cached)
        self.samples: list[list[float | None]] = []
        self.drawn_ms: list[float] = []  # the latency the mock drew for each call
        self.db: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0])  # n, wall, cpu, wait, items
        probe = self

        original_complete = MockProvider.complete

        async def complete(self, request):
            t0 = time.perf_counter()
            try:
                return await original_complete(self, request)
            finally:
                t1 = time.perf_counter()
                probe.calls.append((t0, t1))
                if (sample := _SAMPLE.get()) is not None:
                    sample[1] = sample[1] or t0
                    sample[2] = t1

        original_run_sample = Executor._run_sample

        async def run_sample(self, item):
            sample: list[float | None] = [time.perf_counter(), None, None, None]
            _SAMPLE.set(sample)  # each sample runs in its own task, hence its own context
            try:
                return await original_run_sample(self, item)
            finally:
                sample[3] = time.perf_counter()
                probe.samples.append(sample)

        Executor._run_sample = run_sample

        original_wait = MockProvider._wait

        async def wait(self, rng):
            # The same draw as MockProvider._wait, made on a copy of its generator.
            delay = self.latency_ms
            if self.latency_ms and self.jitter > 0:
                twin = random.Random()
                twin.setstate(rng.getstate())
                delay = twin.lognormvariate(math.log(self.latency_ms) - self.jitter**2 / 2, self.jitter)
            probe.drawn_ms.append(delay)
            await original_wait(self, rng)

        MockProvider.complete = complete
        MockProvider._wait = wait

        original_call = execution.DbThread.__call__

        async def db_call(self, fn, *args, **kwargs):
            label = _label(fn)
            submitted = time.perf_counter()

            def timed():
                w0, c0 = time.perf_counter(), time.thread_time()
                result = fn(*args, **kwargs)
                stats = probe.db[label]
                stats[0] += 1
                stats[1] += time.perf_counter() - w0
                stats[2] += time.thread_time() - c0
                stats[3] += w0 - submitted
                stats[4] += _items(label, args, result)
                return result

            if inline_db:
                return timed()
            return await original_call(self, timed)

        execution.DbThread.__call__ = db_call
        if inline_db:
            from django.db import connections

            original_close = execution.DbThread.close

            async def close(self):
                # The loop thread opened connections of its own; the DB thread closes its own.
                connections.close_all()
                await original_close(self)

            execution.DbThread.close = close

    def reset(self) -> None:
        self.calls.clear()
        self.samples.clear()
        self.drawn_ms.clear()
        self.db.clear()


def _label(fn: Any) -> str:
    # Not getattr(fn, "__name__", repr(fn)): the default is evaluated first, and the repr of a
    # queryset's bound method (sweeps_with_owner().get) runs its query, on the event loop.
    name = getattr(fn, "__name__", None) or type(fn).__name__
    if name == "<lambda>":
        parts = fn.__qualname__.split(".")
        return f"{parts[-3]}.<lambda>" if len(parts) >= 3 else name
    if name in ("get", "filter") and hasattr(fn, "__self__"):
        return f"{type(fn.__self__).__name__}.{name}"
    return name


def _items(label: str, args: tuple, result: Any) -> int:
    if label in ("cache_lookup", "cache_store"):
        return len(args[0])
    if label == "record_outcomes":
        return len(args[1])
    if label == "claim_samples":
        return len(result)
    return 0


def bench_spec(tag: str, n_samples: int, *, rows: int = ROWS) -> dict[str, Any]:
    """One stage, `n_samples / rows` temperatures x `rows` rows, two scorers, concurrency 64.
    `tag` goes into every ticket, so two experiments never share a cache entry."""
    n_configs = max(1, n_samples // rows)
    dataset = [
        {
            "ticket": f"{tag} #{i}: the customer says the {TOPICS[i % len(TOPICS)]} page failed {i % 7} times "
            f"since the last update and asks for help before the end of the week",
            "expected": TOPICS[i % len(TOPICS)],
        }
        for i in range(rows)
    ]
    return {
        "name": f"bench {tag}",
        "pipeline": [{"name": "answer", "prompt": "Summarize this ticket: {{ ticket }}", "model": "mock/echo"}],
        "dataset": dataset,
        "scorers": [{"type": "icontains", "value": "{{ expected }}"}, {"type": "max_length", "value": 400}],
        "sweep": {
            "type": "grid",
            "params": {"params.temperature": [round(i / n_configs, 6) for i in range(n_configs)]},
        },
        "max_concurrency": CONCURRENCY,
    }


def set_mock(latency_ms: float, jitter: float, seed: int = 0) -> None:
    from sweeps.models import Provider

    options = {"latency_ms": latency_ms, "jitter": jitter} | ({"seed": seed} if seed else {})
    Provider.objects.filter(name="mock").update(options=options)


def run_sweep(experiment, probe: Probe, profiler: cProfile.Profile | None = None) -> dict[str, Any]:
    from sweeps.runner import execution
    from sweeps.services.sweeps import sweep_start

    probe.reset()
    sweep = sweep_start(experiment=experiment)
    cpu0, thread0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    reason = asyncio.run(execution.execute_sweep(sweep.pk))
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - t0
    cpu, loop_cpu = time.process_time() - cpu0, time.thread_time() - thread0
    sweep.refresh_from_db()
    if reason != "drained" or sweep.status != "completed" or sweep.completed != sweep.total:
        raise RuntimeError(
            f"sweep {sweep.pk} ended {reason!r}, status {sweep.status}, "
            f"{sweep.completed}/{sweep.total} completed, {sweep.failed} failed: {sweep.error}"
        )
    return {
        "t0": t0, "wall": wall, "cpu": cpu, "loop_cpu": loop_cpu, "samples": sweep.total,
        "cached": sweep.cached, "calls": len(probe.calls),
        "db": {k: list(v) for k, v in probe.db.items()},
    }  # fmt: skip


def print_breakdown(title: str, r: dict[str, Any]) -> None:
    n, wall = r["samples"], r["wall"]
    db = r["db"]
    busy = sum(v[1] for v in db.values())
    db_cpu = sum(v[2] for v in db.values())
    lines = [
        f"{title}: {n:,} samples in {wall:.2f} s = {wall / n * 1e3:.3f} ms/sample, {n / wall:,.0f} samples/s, "
        f"{r['calls']:,} provider calls",
        f"    process CPU {r['cpu']:.2f} s ({r['cpu'] / wall:.0%} of wall; 2 threads share one GIL), "
        f"event-loop thread CPU {r['loop_cpu']:.2f} s, DB thread busy {busy:.2f} s wall ({busy / wall:.0%}) "
        f"of which CPU {db_cpu:.2f} s",
        "    DB thread, by call:        n    wall s   cpu s  ms/call  queue-wait ms/call  items/call",
    ]
    for label, (cnt, w, c, q, items) in sorted(db.items(), key=lambda kv: -kv[1][1]):
        per = f"{items / cnt:10.1f}" if items else " " * 10
        lines.append(
            f"      {label:<22}{cnt:6d} {w:8.3f} {c:7.3f} {w / cnt * 1e3:8.2f} {q / cnt * 1e3:12.2f}      {per}"
        )
    print("\n".join(lines), file=sys.stderr, flush=True)


def measure_a(user, probe: Probe, n_calls: int, jitter: float, mock_seed: int) -> dict[str, Any]:
    from sweeps.services.experiments import experiment_create

    set_mock(A_LATENCY_MS, jitter, mock_seed)
    experiment = experiment_create(owner=user, data=bench_spec("sched", n_calls))
    log(f"(a) {n_calls:,} calls, mock {A_LATENCY_MS:.0f} ms lognormal sigma {jitter}, concurrency {CONCURRENCY}")
    r = run_sweep(experiment, probe)
    if len(probe.calls) < r["samples"]:
        raise RuntimeError("(a) needs a cold response cache: some samples were answered from the cache")
    calls = sorted(probe.calls)
    drawn = list(probe.drawn_ms)
    first, last_end = calls[0][0], max(e for _, e in calls)
    window = last_end - first
    durations_ms = [(e - s) * 1e3 for s, e in calls]
    n = len(calls)
    rate_window, rate_e2e = n / window, n / r["wall"]
    drawn_mean, measured_mean = statistics.fmean(drawn), statistics.fmean(durations_ms)
    # A perfect continuous scheduler: each call starts the instant a slot frees, zero overhead.
    slots = [0.0] * CONCURRENCY
    makespan = 0.0
    for d in drawn:
        t = heapq.heappop(slots) + d / 1e3
        makespan = max(makespan, t)
        heapq.heappush(slots, t)
    # Mean slot occupancy while there was still work to dispatch (excludes the final drain):
    # by provider calls, and by samples (a sample holds its slot from dispatch to its end,
    # including its cache lookup and cache write on the DB thread).
    samples = [x for x in probe.samples if x[1] is not None]
    last_dispatch = max(x[0] for x in samples)
    span = CONCURRENCY * (last_dispatch - first)

    def occupancy_of(intervals) -> float:
        return sum(min(e, last_dispatch) - s for s, e in intervals if s < last_dispatch) / span if span else 0.0

    occupancy = occupancy_of(calls)
    sample_occupancy = occupancy_of((x[0], x[3]) for x in samples)
    before_call = statistics.fmean((x[1] - x[0]) * 1e3 for x in samples)
    after_call = statistics.fmean((x[3] - x[2]) * 1e3 for x in samples)
    out = {
        "calls": n, "wall": r["wall"], "window": window, "rate_window": rate_window, "rate_e2e": rate_e2e,
        "startup": first - r["t0"], "drain_after_last_call": r["t0"] + r["wall"] - last_end,
        "drawn_mean_ms": drawn_mean, "drawn_p99_ms": sorted(drawn)[int(0.99 * (len(drawn) - 1))],
        "drawn_max_ms": max(drawn), "measured_mean_ms": measured_mean,
        "eff_nominal": rate_window / (CONCURRENCY / (A_LATENCY_MS / 1e3)),
        "eff_drawn": rate_window / (CONCURRENCY / (drawn_mean / 1e3)),
        "eff_measured": rate_window / (CONCURRENCY / (measured_mean / 1e3)),
        "eff_e2e_drawn": rate_e2e / (CONCURRENCY / (drawn_mean / 1e3)),
        "perfect_makespan": makespan, "eff_perfect": (n / makespan) / (CONCURRENCY / (drawn_mean / 1e3)),
        "vs_perfect": makespan / window, "occupancy": occupancy, "sample_occupancy": sample_occupancy,
        "before_call_ms": before_call, "after_call_ms": after_call, "jitter": jitter, "mock_seed": mock_seed,
    }  # fmt: skip
    print(
        f"(a) {n:,} calls in a {window:.2f} s dispatch window ({r['wall']:.2f} s end to end: "
        f"{out['startup'] * 1e3:.0f} ms before the first call, {out['drain_after_last_call'] * 1e3:.0f} ms after the last)\n"
        f"    latency drawn by the mock: mean {drawn_mean:.1f} ms, p99 {out['drawn_p99_ms']:.0f} ms, max {max(drawn):.0f} ms; "
        f"measured around each call: mean {measured_mean:.1f} ms (+{measured_mean - drawn_mean:.1f} ms loop lag)\n"
        f"    achieved {rate_window:.1f} calls/s (window), {rate_e2e:.1f} calls/s (end to end); ideal "
        f"{CONCURRENCY / (A_LATENCY_MS / 1e3):.0f} (nominal) / {CONCURRENCY / (drawn_mean / 1e3):.1f} (drawn mean) calls/s\n"
        f"    perfect scheduler on the same latencies: {makespan:.2f} s = efficiency {out['eff_perfect']:.3f} "
        f"(the tail's own cost); achieved/perfect {out['vs_perfect']:.3f}\n"
        f"    while work remained to dispatch: slots holding a sample {sample_occupancy:.3f}, slots in a provider "
        f"call {occupancy:.3f}; per sample {before_call:.1f} ms from dispatch to the call (render, cache lookup), "
        f"{after_call:.1f} ms from the call's end to the sample's end (cache write, scoring)",
        file=sys.stderr,
        flush=True,
    )
    print_breakdown("(a)", r)
    return out


def child_suite(args: argparse.Namespace) -> dict[str, Any]:
    quick = int(args.quick)
    tmp, marks = setup_django(args.db)
    try:
        from django.contrib.auth import get_user_model

        from sweeps.services.experiments import experiment_create

        probe = Probe()
        user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
        results: dict[str, Any] = {"db": args.db}

        n_b = SIZES["b_samples"][quick]
        set_mock(0, 0)
        experiment = experiment_create(owner=user, data=bench_spec("cold", n_b))
        log(f"(b) {n_b:,} samples, zero latency, cold response cache")
        b = run_sweep(experiment, probe)
        print_breakdown("(b)", b)
        results["b"] = {k: b[k] for k in ("wall", "cpu", "loop_cpu", "samples", "calls", "db")}

        log("(c) second sweep of the same experiment, warm response cache")
        c = run_sweep(experiment, probe)
        print_breakdown("(c)", c)
        results["c"] = {k: c[k] for k in ("wall", "cpu", "loop_cpu", "samples", "calls", "cached", "db")}

        results["a"] = measure_a(user, probe, SIZES["a_calls"][quick], args.jitter, args.mock_seed)
        return results
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def child_rss(args: argparse.Namespace) -> dict[str, Any]:
    quick = int(args.quick)
    tmp, marks = setup_django(args.db)
    try:
        from django.contrib.auth import get_user_model

        from sweeps.services.experiments import experiment_create

        probe = Probe()
        user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
        set_mock(0, 0)
        n = SIZES["d_samples"][quick]
        experiment = experiment_create(owner=user, data=bench_spec("rss", n))
        before = proc_status("VmRSS")
        peak_sampled, stop = [before], threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                peak_sampled[0] = max(peak_sampled[0], proc_status("VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        log(f"(d) {n:,}-sample sweep in a fresh process, zero latency")
        r = run_sweep(experiment, probe)
        stop.set()
        sampler.join()
        print_breakdown("(d)", r)
        out = {
            "samples": r["samples"], "wall": r["wall"], "marks_kb": marks, "before_sweep_kb": before,
            "peak_sampled_kb": peak_sampled[0], "vmhwm_kb": proc_status("VmHWM"),
            "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "after_kb": proc_status("VmRSS"),
        }  # fmt: skip
        print(
            f"(d) RSS: {marks['start'] / 1024:.0f} MB at start, {marks['django_setup'] / 1024:.0f} MB after "
            f"django.setup(), {marks['migrated'] / 1024:.0f} MB after migrate, {before / 1024:.0f} MB before the "
            f"sweep, peak {out['peak_sampled_kb'] / 1024:.0f} MB sampled during it, VmHWM {out['vmhwm_kb'] / 1024:.0f} MB, "
            f"ru_maxrss {out['ru_maxrss_kb'] / 1024:.0f} MB, {out['after_kb'] / 1024:.0f} MB after",
            file=sys.stderr,
            flush=True,
        )
        return out
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


PROFILE_AREAS = [  # (label, substring of the code's file name), first match wins
    ("sqlite3 driver", "sqlite3"),
    ("psycopg driver", "psycopg"),
    ("django ORM / db", "django/db"),
    ("django (other)", "django/"),
    ("jinja2 templates", "jinja2"),
    ("asyncio", "asyncio/"),
    ("mock provider", "providers/mock"),
    ("sweeps engine", "sweeps/engine"),
    ("sweeps (execution, recording, ...)", "sweeps/"),
    ("bench instrumentation", "bench/"),
]
# Inclusive time of the entry points that matter, per sample: (label, file substring, function).
PROFILE_POINTS = [
    ("  plan_next_round: create runs + samples", "sweeps/services/planning.py", "plan_next_round"),
    ("  record_outcomes: persist results", "sweeps/services/recording.py", "record_outcomes"),
    ("    RunSample/Run bulk_update", "django/db/models/query.py", "bulk_update"),
    ("    close_finished_runs", "sweeps/services/recording.py", "close_finished_runs"),
    ("  cache_store: ResponseCache bulk_create", "sweeps/services/cache.py", "cache_store"),
    ("  cache_lookup", "sweeps/selectors/cache.py", "cache_lookup"),
    ("  claim_samples", "sweeps/services/leases.py", "claim_samples"),
    ("  start_runs", "sweeps/services/leases.py", "start_runs"),
    ("  Executor._run_sample (render, cache, call, score)", "sweeps/engine/executor.py", "_run_sample"),
    ("    MockProvider.complete", "providers/mock.py", "complete"),
    ("    templating.render", "sweeps/engine/templating.py", "render"),
    ("    cache_key", "sweeps/engine/cache.py", "cache_key"),
    ("  publishing.apublish (events)", "sweeps/events/publishing.py", "apublish"),
    ("  events.run_event/sweep_event", "sweeps/events/messages.py", "run_event"),
]


def profile_areas(stats: pstats.Stats) -> dict[str, float]:
    """Own time per area. Time in C builtins and in stdlib helpers (copy, contextlib, ...) goes
    to the area of whoever called them (following callers until one has an area)."""
    raw = stats.stats  # {(file, line, func): (cc, nc, tt, ct, {caller: (cc, nc, tt, ct)})}

    def own_area(key) -> str | None:
        filename = key[0]
        return next((a for a, s in PROFILE_AREAS if s in filename), None)

    memo: dict[Any, str] = {}

    def area_of(key, depth: int = 0) -> str:
        if key in memo:
            return memo[key]
        area = own_area(key)
        if area is None:
            callers = raw.get(key, (0, 0, 0, 0, {}))[4]
            if callers and depth < 30:
                top = max(callers.items(), key=lambda kv: kv[1][2] + kv[1][3])[0]
                area = area_of(top, depth + 1)
            else:
                area = "other"
        memo[key] = area
        return area

    areas: dict[str, float] = defaultdict(float)
    for key, (_, _, tt, _, callers) in raw.items():
        if own_area(key) is not None or not callers:
            areas[area_of(key)] += tt
        else:  # split between callers by the time spent under each
            total = sum(c[2] for c in callers.values()) or 1.0
            for caller, c in callers.items():
                areas[area_of(caller)] += tt * c[2] / total
    return dict(areas)


# Frames that only wrap everything else (the event loop, this script's probes) are left out of
# the cumulative list, which would otherwise start with ten lines of 100 %.
_WRAPPERS = ("asyncio/", "bench/throughput.py", "contextlib.py", "concurrent/futures")


def top_functions(stats: pstats.Stats, n_samples: int, count: int = 15) -> dict[str, list[str]]:
    def name(key) -> str:
        filename, line, func = key
        if filename == "~":
            return func
        parts = Path(filename).parts
        short = "/".join(parts[parts.index("site-packages") + 1 :] if "site-packages" in parts else parts[-2:])
        return f"{short}:{line}({func})"

    entries = [(key, nc, tt, ct) for key, (_, nc, tt, ct, _) in stats.stats.items()]
    head = f"{'ncalls':>9} {'own s':>7} {'cum s':>7} {'own µs/sample':>14} {'cum µs/sample':>14}  function"

    def fmt(e) -> str:
        key, nc, tt, ct = e
        return f"{nc:9d} {tt:7.3f} {ct:7.3f} {tt / n_samples * 1e6:14.1f} {ct / n_samples * 1e6:14.1f}  {name(key)}"

    cumulative = sorted(
        (e for e in entries if not any(w in e[0][0] for w in _WRAPPERS) and "_contextvars" not in e[0][2]),
        key=lambda e: -e[3],
    )
    own = sorted(entries, key=lambda e: -e[2])
    return {
        "cumulative time (event-loop and probe wrappers left out)": [head, *map(fmt, cumulative[:count])],
        "own time (tottime)": [head, *map(fmt, own[:count])],
    }


def profile_points(stats: pstats.Stats) -> list[tuple[str, float]]:
    out = []
    for label, filename, func in PROFILE_POINTS:
        ct = sum(v[3] for k, v in stats.stats.items() if filename in k[0] and k[2] == func)
        out.append((label, ct))
    return out


def child_profile(args: argparse.Namespace) -> dict[str, Any]:
    """cProfile of (b). Since Python 3.12 cProfile hooks sys.monitoring, which is process-wide:
    with the DB thread running alongside, both threads' calls land on one stack and the
    attribution is garbage. So for the profile the ORM calls run inline on the event loop's
    thread (same work, one thread); wall time is printed for comparison with (b)."""
    quick = int(args.quick)
    tmp, _ = setup_django(args.db, inline_db=True)
    try:
        from django.contrib.auth import get_user_model

        from sweeps.services.experiments import experiment_create

        probe = Probe(inline_db=True)
        user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
        set_mock(0, 0)
        n = SIZES["b_samples"][quick]
        experiment = experiment_create(owner=user, data=bench_spec("profile", n))
        profiler = cProfile.Profile()
        log(f"profile of (b): {n:,} samples, ORM inline on the loop thread, under cProfile")
        r = run_sweep(experiment, profiler=profiler, probe=probe)
        print_breakdown("profiled (b)", r)
        stats = pstats.Stats(profiler)
        total = sum(v[2] for v in stats.stats.values())  # tottime over all functions
        areas = profile_areas(stats)
        out = io.StringIO()
        out.write(f"\n=== cProfile of (b) on {args.db}: {n:,} samples, {r['wall']:.2f} s under the profiler "
                  f"({r['wall'] / n * 1e3:.3f} ms/sample) ===\n")  # fmt: skip
        out.write(
            "inclusive time of the main steps (µs per sample, share of the profiled wall; a coroutine's\n"
            "time counts only while it runs, not while it awaits):\n"
        )
        for label, ct in profile_points(stats):
            out.write(f"  {label:<52}{ct / n * 1e6:9.1f} µs  {ct / r['wall']:6.1%}\n")
        out.write("own time by area, builtins and stdlib charged to their caller (µs per sample, share):\n")
        for area, tt in sorted(areas.items(), key=lambda kv: -kv[1]):
            out.write(f"  {area:<52}{tt / n * 1e6:9.1f} µs  {tt / total:6.1%}\n")
        for title, lines in top_functions(stats, n).items():
            out.write(f"\n--- top 15 functions by {title} ---\n")
            out.write("\n".join(lines) + "\n")
        print(out.getvalue(), flush=True)
        return {"wall": r["wall"], "samples": n, "areas": dict(areas)}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# parent side: run the children, print the table
# ------------------------------------------------------------------------------------------


def pg_reachable() -> str | None:
    sys.path.insert(0, str(ROOT))
    try:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3):
            return None
    except Exception as e:  # noqa: BLE001 - any failure means: skip PostgreSQL, saying why
        return f"{type(e).__name__}: {e}".strip()


def run_child(kind: str, db: str, args: argparse.Namespace) -> dict[str, Any] | None:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--db",
        db,
        "--jitter",
        str(args.jitter),
        "--mock-seed",
        str(args.mock_seed),
    ]
    if args.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK) :])
        else:
            print(line, flush=True)
    if proc.returncode or result is None:
        print(f"!! {kind} on {db} failed (exit {proc.returncode})", flush=True)
        return None
    return result


def table(results: dict[str, dict[str, Any]], quick: bool) -> str:
    rows: list[tuple[str, ...]] = []

    def row(measure: str, db: str, figure: str, target: str, ratio: float | None, ok: bool | None) -> None:
        rows.append((measure, db, figure, target, "" if ratio is None else f"{ratio:.2f}",
                     "" if ok is None else ("PASS" if ok else "MISS")))  # fmt: skip

    for db, r in results.items():
        if a := r.get("a"):
            sig = f"sigma {a['jitter']:g}, seed {a['mock_seed']}"
            row(
                f"(a) scheduler efficiency, drawn mean {a['drawn_mean_ms']:.0f} ms",
                db,
                f"{a['eff_drawn']:.3f}",
                ">= 0.90",
                a["eff_drawn"] / 0.9,
                a["eff_drawn"] >= 0.9,
            )
            row(
                "    same, nominal mean 200 ms",
                db,
                f"{a['eff_nominal']:.3f}",
                ">= 0.90",
                a["eff_nominal"] / 0.9,
                a["eff_nominal"] >= 0.9,
            )
            row(
                f"    same, measured call mean {a['measured_mean_ms']:.0f} ms",
                db,
                f"{a['eff_measured']:.3f}",
                ">= 0.90",
                a["eff_measured"] / 0.9,
                a["eff_measured"] >= 0.9,
            )
            row("    end to end (incl. planning), drawn mean", db, f"{a['eff_e2e_drawn']:.3f}", "(info)", None, None)
            row(f"    perfect scheduler, same latencies ({sig})", db, f"{a['eff_perfect']:.3f}", "(bound)", None, None)
            row("    achieved / perfect scheduler", db, f"{a['vs_perfect']:.3f}", "(info)", None, None)
            row(
                "    slots holding a sample, while work remained",
                db,
                f"{a['sample_occupancy']:.3f}",
                "(info)",
                None,
                None,
            )
            row("    slots in a provider call, while work remained", db, f"{a['occupancy']:.3f}", "(info)", None, None)
        if b := r.get("b"):
            ms = b["wall"] / b["samples"] * 1e3
            row(
                f"(b) framework cost/sample, cold, {b['samples']:,}", db, f"{ms:.3f} ms", "<= 1 ms", ms / 1.0, ms <= 1.0
            )
            row(
                "    process CPU/sample (less sensitive to a busy host)",
                db,
                f"{b['cpu'] / b['samples'] * 1e3:.3f} ms",
                "(info)",
                None,
                None,
            )
        if c := r.get("c"):
            rate = c["samples"] / c["wall"]
            row(
                f"(c) warm re-run, {c['samples']:,} samples",
                db,
                f"{rate:,.0f} /s",
                ">= 2,000 /s",
                rate / 2000,
                rate >= 2000,
            )
            row("    provider calls on warm re-run", db, f"{c['calls']}", "== 0", None, c["calls"] == 0)
        if d := r.get("d"):
            peak = d["vmhwm_kb"] / 1024
            row(
                f"(d) peak RSS, {d['samples']:,}-sample sweep",
                db,
                f"{peak:.0f} MB",
                "<= 300 MB",
                peak / 300,
                peak <= 300,
            )
            row(
                "    baseline RSS after django.setup()",
                db,
                f"{d['marks_kb']['django_setup'] / 1024:.0f} MB",
                "(info)",
                None,
                None,
            )
            row(
                "    RSS after migrate, before the sweep",
                db,
                f"{d['before_sweep_kb'] / 1024:.0f} MB",
                "(info)",
                None,
                None,
            )
    head = ("measure", "db", "figure", "target", "ratio", "result")
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), "  ".join("-" * w for w in widths), *(fmt.format(*x) for x in rows)]
    notes = ["ratio = figure ÷ target" + (" (--quick: smaller sweeps)" if quick else "")]
    for db, r in results.items():
        if (a := r.get("a")) and a["eff_perfect"] < 0.9:
            notes.append(
                f"note ({db}): the latencies the mock drew for (a) (max {a['drawn_max_ms']:.0f} ms) cap even a perfect "
                f"scheduler at {a['eff_perfect']:.3f}; judge the scheduler by 'achieved / perfect scheduler' "
                "(or try --mock-seed N)"
            )
    return "\n".join([*lines, *notes])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="smaller sweeps (about 4x fewer samples)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of (b) per database")
    parser.add_argument("--jitter", type=float, default=0.5, help="lognormal sigma of the mock latency in (a)")
    parser.add_argument(
        "--mock-seed",
        type=int,
        default=1,
        help="the mock provider's seed in (a), i.e. which latencies it draws (default 1; see README)",
    )
    parser.add_argument("--child", choices=("suite", "rss", "profile"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        fn = {"suite": child_suite, "rss": child_rss, "profile": child_profile}[args.child]
        print(RESULT_MARK + json.dumps(fn(args)), flush=True)
        return 0

    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in dbs and (why := pg_reachable()):
        print(f"PostgreSQL at {PG_SERVER} is unreachable, skipping it: {why}", flush=True)
        dbs.remove("postgres")
        if not dbs:
            return 1
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    if load_before > 0.5:
        print(
            f"warning: load average {load_before:.2f} on {os.cpu_count()} CPUs before starting: other processes "
            "compete for the CPUs and the figures will be lower than on a quiet machine",
            flush=True,
        )
    results: dict[str, dict[str, Any]] = {}
    for db in dbs:
        print(f"\n##### {db} #####", flush=True)
        results[db] = {}
        if suite := run_child("suite", db, args):
            results[db].update(suite)
        if rss := run_child("rss", db, args):
            results[db]["d"] = rss
        if args.profile:
            run_child("profile", db, args)
    print(
        f"\n===== PromptLooper sweep throughput ({time.perf_counter() - started:.0f} s; {os.cpu_count()} CPUs, "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after) ====="
    )
    print(table(results, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

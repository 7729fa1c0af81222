#!/usr/bin/env python
"""A completed sweep with many samples, written straight into the database: data for the API
benchmark and for the export tests, in seconds rather than the minutes a real sweep takes.

    .venv/bin/python bench/seed_api.py                       # 100,000 samples on PostgreSQL
    .venv/bin/python bench/seed_api.py --db sqlite --samples 20000 --runs 40

The script writes only to its own throwaway database: `promptlooper_bench_api` on the server
of BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432), dropped and re-created each
time, or a SQLite file in the temporary directory. Both are kept afterwards, so the API can be
tried by hand against them (the script prints how).

`seed(user, ...)` is also imported by bench/api_latency.py and by the export tests: it needs a
configured Django and the `mock` provider row, and touches nothing but the rows it creates.
The rows look like what a real sweep records (two stages, two scorers, a grid over model and
temperature, scores that fall with temperature), written with the same bulk paths: runs by
bulk_create, samples and scores by sweeps.runner.bulk.insert_rows (COPY on PostgreSQL).
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchdb import configure_django, recreate_pg_database  # noqa: E402

PG_DB = "promptlooper_bench_api"  # the only database this script creates, drops or writes
SQLITE_PATH = Path(tempfile.gettempdir()) / "promptlooper-bench-api.sqlite3"

TOPICS = ["billing", "login", "shipping", "refund", "password", "invoice", "delivery", "account", "upgrade", "crash"]
MODELS = ["mock/echo", "mock/upper"]
RUNS_PER_BATCH = 10  # runs whose samples are built, written and scored at once: bounds the seeder's memory
SAMPLE_FIELDS = ["run", "sweep", "row_index", "replicate", "inputs", "stages", "output", "status", "score",
                 "tokens_in", "tokens_out", "cost_usd", "latency_ms", "cache_hit", "error", "attempts",
                 "lease_owner", "finished_at"]  # fmt: skip
SCORE_FIELDS = ["sample", "scorer_index", "name", "weight", "value", "passed", "reason"]
RUN_FIELDS = ["score", "tokens_in", "tokens_out", "cost_usd", "latency_ms"]
MAX_LABEL_CHARS = 40


def seed_spec(n_rows: int, n_runs: int) -> dict[str, Any]:
    """Two stages, two scorers, n_runs configurations (two models when n_runs is even)."""
    models = MODELS if n_runs % 2 == 0 else MODELS[:1]
    per_model = n_runs // len(models)
    dataset = [
        {
            "ticket": f"Ticket {i}: the customer says the {TOPICS[i % len(TOPICS)]} page failed {i % 7} times "
            f"since the last update and asks for help before the end of the week",
            "expected": TOPICS[i % len(TOPICS)],
        }
        for i in range(n_rows)
    ]
    return {
        "name": f"API bench: {n_runs} runs x {n_rows} rows",
        "pipeline": [
            {"name": "summarize", "prompt": "Summarize this ticket: {{ ticket }}", "model": "mock/echo"},
            {"name": "label", "prompt": "One word label for: {{ summarize }}"},
        ],
        "dataset": dataset,
        "scorers": [{"type": "icontains", "value": "{{ expected }}", "weight": 2},
                    {"type": "max_length", "value": MAX_LABEL_CHARS}],
        "sweep": {"type": "grid", "params": {
            "model": models, "params.temperature": [round(i / per_model, 6) for i in range(per_model)]}},
    }  # fmt: skip


def stage(name: str, model: str, prompt: str, output: str, rng: random.Random) -> dict[str, Any]:
    """What recording.py stores per call (StageOutcome.to_dict)."""
    tokens_in, tokens_out = len(prompt.split()) * 13 // 10 + 1, len(output.split()) * 13 // 10 + 1
    return {
        "name": name, "model": model, "system": None, "prompt": prompt, "output": output, "finish_reason": "stop",
        "tokens_in": tokens_in, "tokens_out": tokens_out, "cost_usd": (tokens_in * 0.15 + tokens_out * 0.6) / 1e6,
        "latency_ms": round(rng.uniform(20, 400), 3), "cached": False, "attempts": 1,
    }  # fmt: skip


def sample_result(config: dict, row: dict, rng: random.Random) -> tuple[list[dict], str, list[tuple]]:
    """(stages, output, verdicts as (name, weight, value, passed, reason)) for one row."""
    model, temperature = config["model"], config["params"]["temperature"]
    shout = str.upper if model == "mock/upper" else str
    summary = shout(row["ticket"].split(":", 1)[1].strip())
    # The higher the temperature, the likelier a wrong (or long-winded) label: runs rank apart.
    label = row["expected"] if rng.random() > 0.6 * temperature else rng.choice(TOPICS)
    if rng.random() < 0.1 * temperature:
        label = f"{label} (probably, judging from the ticket text)"
    label = shout(label)
    stages = [
        stage("summarize", model, f"Summarize this ticket: {row['ticket']}", summary, rng),
        stage("label", model, f"One word label for: {summary}", label, rng),
    ]
    found = row["expected"] in label.lower()
    short = len(label) <= MAX_LABEL_CHARS
    verdicts = [
        ("icontains", 2.0, float(found), found,
         f"output {'contains' if found else 'does not contain'} {row['expected']!r} (any case)"),
        ("max_length", 1.0, float(short), short,
         f"{len(label)} chars, {'at most' if short else 'more than'} {MAX_LABEL_CHARS}"),
    ]  # fmt: skip
    return stages, label, verdicts


def seed(user: Any, n_samples: int = 100_000, n_runs: int = 200, *, seed_value: int = 0):
    """A completed sweep of n_runs runs x (n_samples // n_runs) rows, one replicate, each sample
    with two stages and two scores. Returns the Sweep (its experiment belongs to `user`)."""
    from django.utils import timezone

    from sweeps.engine.space import config_hash
    from sweeps.engine.strategies import grid
    from sweeps.models import Experiment, Run, RunSample, Score, Sweep
    from sweeps.runner.bulk import insert_rows, update_rows
    from sweeps.services.experiments import experiment_create

    n_rows = max(1, n_samples // n_runs)
    experiment = experiment_create(owner=user, data=seed_spec(n_rows, n_runs))
    spec = experiment.parsed_spec()
    now = timezone.now()
    sweep = Sweep.objects.create(
        experiment=experiment, spec=spec.to_dict(), status=Sweep.Status.COMPLETED,
        stopped_reason=Sweep.Reason.COMPLETED, rounds=1, started_at=now, finished_at=now, heartbeat_at=now,
    )  # fmt: skip
    runs = Run.objects.bulk_create(
        Run(experiment=experiment, sweep=sweep, config=c, config_hash=config_hash(c), status=Run.Status.COMPLETED,
            samples_total=n_rows, started_at=now, finished_at=now)
        for c in grid(spec.sweep.space)
    )  # fmt: skip
    if any(r.pk is None for r in runs):  # backends without RETURNING from bulk inserts
        runs = list(Run.objects.filter(sweep=sweep).order_by("id"))
    rng = random.Random(seed_value)
    totals = {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}
    run_rows = []
    for start in range(0, len(runs), RUNS_PER_BATCH):
        batch = runs[start : start + RUNS_PER_BATCH]
        samples, verdicts = [], {}
        for run in batch:
            tokens_in = tokens_out = 0
            cost = latency = score_sum = 0.0
            for i, row in enumerate(spec.dataset):
                stages, output, scored = sample_result(run.config, row, rng)
                score = sum(w * v for _, w, v, _, _ in scored) / sum(w for _, w, _, _, _ in scored)
                s_in, s_out = sum(s["tokens_in"] for s in stages), sum(s["tokens_out"] for s in stages)
                s_cost, s_latency = sum(s["cost_usd"] for s in stages), sum(s["latency_ms"] for s in stages)
                samples.append((run.pk, sweep.pk, i, 0, row, stages, output, RunSample.Status.COMPLETED, score,
                                s_in, s_out, s_cost, s_latency, False, "", 1, "seed", now))  # fmt: skip
                verdicts[(run.pk, i)] = scored
                tokens_in, tokens_out, cost = tokens_in + s_in, tokens_out + s_out, cost + s_cost
                latency, score_sum = latency + s_latency, score_sum + score
            run_rows.append((run.pk, round(score_sum / n_rows, 9), tokens_in, tokens_out, cost, latency / n_rows))
            totals["tokens_in"] += tokens_in
            totals["tokens_out"] += tokens_out
            totals["cost_usd"] += cost
        insert_rows(RunSample, SAMPLE_FIELDS, samples)
        # insert_rows does not read primary keys back; the scores need them.
        ids = RunSample.objects.filter(run_id__in=[r.pk for r in batch]).values_list("id", "run_id", "row_index")
        insert_rows(
            Score,
            SCORE_FIELDS,
            [(sample_id, index, *verdict) for sample_id, run_id, row_index in ids
             for index, verdict in enumerate(verdicts[(run_id, row_index)])],
        )  # fmt: skip
    update_rows(Run, RUN_FIELDS, run_rows)
    total = len(runs) * n_rows
    Sweep.objects.filter(pk=sweep.pk).update(
        total=total, completed=total, best_score=max(r[1] for r in run_rows), **totals
    )
    Experiment.objects.filter(pk=experiment.pk).update(status=Experiment.Status.COMPLETED)
    sweep.refresh_from_db()
    return sweep


# ------------------------------------------------------------------------------------------
# standalone: a throwaway database, migrated, with a user and the seeded sweep
# ------------------------------------------------------------------------------------------


def setup_django(db: str) -> str:
    """Point Django at a fresh bench database (never DATABASE_URL's), migrate it; returns its URL."""
    if db == "postgres":
        url = recreate_pg_database(PG_DB)
    else:
        SQLITE_PATH.unlink(missing_ok=True)
        url = f"sqlite:///{SQLITE_PATH}"
    configure_django(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    url = setup_django(args.db)
    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(12)
    user = get_user_model().objects.create_user("bench", password=password)
    t0 = time.perf_counter()
    sweep = seed(user, args.samples, args.runs)
    wall = time.perf_counter() - t0
    print(f"seeded experiment {sweep.experiment_id}, sweep {sweep.pk}: {sweep.total:,} samples in "
          f"{sweep.runs.count()} runs, {wall:.1f} s ({sweep.total / wall:,.0f} samples/s) into {url}")  # fmt: skip
    print(f"try it: DATABASE_URL={url} DEBUG=True .venv/bin/python manage.py runserver  (login bench / {password})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

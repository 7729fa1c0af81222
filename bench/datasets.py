#!/usr/bin/env python
"""How a 100,000-row dataset fares, end to end: a measuring tool run by hand, not a test.

    .venv/bin/python bench/datasets.py                 # SQLite in a temp dir, 100,000 rows
    .venv/bin/python bench/datasets.py --db postgres   # the throwaway database promptlooper_bench_datasets
    .venv/bin/python bench/datasets.py --rows 20000    # smaller

Prints, for one CSV of N rows (about 40 bytes each) and one configuration on mock/echo at zero
latency: reading it line by line (engine.datasets, as PUT .../dataset does) with the peak of
Python memory it took; validating and storing the spec; planning the sweep (its runs and N
samples, in bulk); executing it (samples/s); a run page deep in its samples and the API's run
page; and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdb import configure_django, recreate_pg_database  # noqa: E402

PG_DB = "promptlooper_bench_datasets"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    if args.db == "sqlite":
        configure_django(f"sqlite:///{tempfile.mkdtemp(prefix='promptlooper-bench-')}/bench.sqlite3")
    else:
        configure_django(recreate_pg_database(PG_DB))
    os.environ["PROMPTLOOPER_MAX_BODY_BYTES"] = str(64 * 1024 * 1024)
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    import sweeps.services.sweeps
    from sweeps.engine.datasets import read_lines
    from sweeps.models import Provider
    from sweeps.runner import execution
    from sweeps.services.experiments import experiment_create
    from sweeps.services.tokens import token_create

    call_command("migrate", verbosity=0, interactive=False)
    sweeps.services.sweeps.dispatch_sweep = lambda sweep, **kwargs: []  # executed inline below
    Provider.objects.filter(name="mock").update(options={"latency_ms": 0})
    user = get_user_model().objects.create_user("bench", password="bench-password-1")

    body = b"ticket,expected\n" + b"".join(f"ticket {i} about billing,billing\n".encode() for i in range(args.rows))
    figures: list[tuple[str, str]] = [("rows", f"{args.rows:,} ({len(body) / 1e6:.1f} MB of CSV)")]

    tracemalloc.start()
    began = time.perf_counter()
    dataset = read_lines("csv", iter(body.splitlines(keepends=True)))
    read_s = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    figures.append(
        ("read line by line", f"{read_s:.2f} s ({args.rows / read_s:,.0f} rows/s), peak {peak / 1e6:.0f} MB")
    )

    spec = {"name": "big", "pipeline": [{"name": "label", "prompt": "Label: {{ ticket }}", "model": "mock/echo"}],
            "dataset": dataset.rows, "scorers": [{"type": "icontains", "value": "{{ expected }}"}],
            "max_concurrency": 64}  # fmt: skip
    began = time.perf_counter()
    experiment = experiment_create(owner=user, data=spec)
    figures.append(("validate and store the spec", f"{time.perf_counter() - began:.2f} s"))

    began = time.perf_counter()
    sweep = sweeps.services.sweeps.sweep_start(experiment=experiment)
    asyncio.run(execution.execute_sweep(sweep.pk))
    run_s = time.perf_counter() - began
    sweep.refresh_from_db()
    assert sweep.status == "completed" and sweep.completed == args.rows, (sweep.status, sweep.completed)
    figures.append(("plan and execute (0 ms mock)", f"{run_s:.1f} s, {args.rows / run_s:,.0f} samples/s"))

    run = sweep.runs.get()
    client = Client()
    client.force_login(user)
    token = token_create(user=user, name="bench")[1]
    for label, url, headers in (
        ("run page, deep page", f"/runs/{run.pk}/?page={args.rows // 100}", {}),
        ("API run, deep offset", f"/api/v1/runs/{run.pk}?limit=50&offset={args.rows - 50}",
         {"Authorization": f"Bearer {token}"}),
        ("experiment page", f"/experiments/{experiment.pk}/", {}),
    ):  # fmt: skip
        client.get(url, headers=headers, secure=True)  # warm
        began = time.perf_counter()
        status = client.get(url, headers=headers, secure=True).status_code
        figures.append((label, f"{(time.perf_counter() - began) * 1000:.0f} ms (HTTP {status})"))
    figures.append(("peak RSS", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"))

    print(f"Datasets benchmark on {args.db}")
    for label, figure in figures:
        print(f"  {label:<32} {figure}")
    if args.db == "postgres":
        from django.db import connections

        connections.close_all()
        recreate_pg_database(PG_DB, drop_only=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

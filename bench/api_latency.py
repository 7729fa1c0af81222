#!/usr/bin/env python
"""Latency of the JSON API's read routes on a 100,000-sample experiment, and export throughput:
a measuring tool run by hand, not a test.

    .venv/bin/python bench/api_latency.py                  # PostgreSQL, 100,000 samples (~2 min)
    .venv/bin/python bench/api_latency.py --quick          # 20,000 samples, 50 requests a route
    .venv/bin/python bench/api_latency.py --db sqlite      # or on SQLite
    .venv/bin/python bench/api_latency.py --no-analyze     # skip ANALYZE after seeding (stale statistics)

Seeds a completed sweep (bench/seed_api.py: 200 runs x 500 rows, two stages, two scores a
sample) into the throwaway database `promptlooper_bench_api` (dropped and re-created; or a
SQLite file in the temporary directory), then runs ANALYZE on PostgreSQL, as autovacuum would
soon after so large an insert. Requests go through Django's test Client: real URL resolution,
middleware, authentication (a Bearer token) and serialisation, in process, no network. Each
route is warmed up, then requested --requests times; the run and page asked for vary from one
request to the next. The export is read to its last byte, as a client would; it is timed
(first byte, total) and sized, and samples/s is reported.

Target: p95 <= 100 ms per route.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed_api import seed, setup_django  # noqa: E402

TARGET_P95_MS = 100.0
WARMUP = 5


def timed_get(client, url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    response = client.get(url)
    if response.streaming:
        b"".join(response.streaming_content)
    return (time.perf_counter() - t0) * 1e3, response.status_code


def measure_route(client, name: str, urls: list[str]) -> dict:
    """Warm up, then GET each url once; latencies of the 200s, and the statuses of the rest."""
    for url in urls[:WARMUP]:
        timed_get(client, url)
    times, failures = [], {}
    for url in urls:
        ms, status = timed_get(client, url)
        if status == 200:
            times.append(ms)
        else:
            failures[status] = failures.get(status, 0) + 1
    out = {"route": name, "n": len(times), "failures": failures, "example": urls[0]}
    if times:
        out |= {"p50": statistics.median(times), "p95": statistics.quantiles(times, n=20, method="inclusive")[-1],
                "max": max(times)}  # fmt: skip
    return out


def measure_export(client, experiment_id: int, fmt: str, samples: int) -> dict:
    url = f"/api/v1/experiments/{experiment_id}/export?format={fmt}"
    t0 = time.perf_counter()
    response = client.get(url)
    out = {"format": fmt, "status": response.status_code, "url": url}
    if response.status_code != 200 or not response.streaming:
        return out | {"streamed": response.streaming}
    size, first_byte, lines = 0, None, 0
    for part in response.streaming_content:
        first_byte = first_byte or time.perf_counter() - t0
        size += len(part)
        lines += part.count(b"\n")
    wall = time.perf_counter() - t0
    return out | {"streamed": True, "wall": wall, "first_byte": first_byte, "bytes": size, "lines": lines,
                  "rows_per_s": samples / wall}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--quick", action="store_true", help="20,000 samples, 50 requests a route")
    parser.add_argument("--requests", type=int, help="requests per route (default 200, 50 with --quick)")
    parser.add_argument("--no-analyze", action="store_true", help="keep the statistics the seeding left")
    args = parser.parse_args()
    n_samples, n_runs = (20_000, 40) if args.quick else (100_000, 200)
    n_requests = args.requests or (50 if args.quick else 200)

    os.environ["ALLOWED_HOSTS"] = "testserver"  # the test Client's host; DEBUG is off here
    os.environ["SECURE_SSL_REDIRECT"] = "False"  # the test Client speaks plain http: no redirects timed
    # WhiteNoise warns that collectstatic never ran: no static file is requested here.
    warnings.filterwarnings("ignore", message="No directory at")
    url = setup_django(args.db)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from sweeps.services.tokens import token_create

    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
    print(f"seeding {n_samples:,} samples ({n_runs} runs) into {url} ...", flush=True)
    t0 = time.perf_counter()
    sweep = seed(user, n_samples, n_runs)
    print(f"seeded in {time.perf_counter() - t0:.1f} s", flush=True)
    if connection.vendor == "postgresql" and not args.no_analyze:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    experiment_id = sweep.experiment_id
    run_ids = list(sweep.runs.order_by("id").values_list("id", flat=True))
    _, raw = token_create(user=user, name="bench")
    client = Client(headers={"Authorization": f"Bearer {raw}"})

    def cycle(make) -> list[str]:
        return [make(i) for i in range(n_requests)]

    api = "/api/v1"
    routes = [
        ("GET /experiments/{id}/runs?order=-score&limit=50",
         cycle(lambda i: f"{api}/experiments/{experiment_id}/runs?order=-score&limit=50&offset={i % 4 * 50}")),
        ("GET /experiments/{id}/leaderboard", cycle(lambda i: f"{api}/experiments/{experiment_id}/leaderboard")),
        ("GET /sweeps/{id}", cycle(lambda i: f"{api}/sweeps/{sweep.pk}")),
        ("GET /runs/{id}", cycle(lambda i: f"{api}/runs/{run_ids[i * 7 % len(run_ids)]}")),
        ("(info) GET /experiments/{id}/runs?param=model=mock/echo&order=latency",
         cycle(lambda i: f"{api}/experiments/{experiment_id}/runs?param=model=mock/echo&order=latency&limit=50")),
        ("(info) GET /runs/{id}?offset=450 (last page of samples)",
         cycle(lambda i: f"{api}/runs/{run_ids[i * 7 % len(run_ids)]}?offset=450&limit=50")),
    ]  # fmt: skip
    results = []
    for name, urls in routes:
        print(f"  {name}: {len(urls)} requests, e.g. {urls[0]}", flush=True)
        results.append(measure_route(client, name, urls))
    exports = []
    for fmt in ("csv", "jsonl"):
        print(f"  export {fmt} ...", flush=True)
        exports.append(measure_export(client, experiment_id, fmt, sweep.total))

    print(f"\n===== PromptLooper API latency: {connection.vendor}, {sweep.total:,} samples in {len(run_ids)} runs, "
          f"{n_requests} requests a route, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} =====")  # fmt: skip
    width = max(len(r["route"]) for r in results)
    print(f"{'route':<{width}}  {'n':>4}  {'p50 ms':>7}  {'p95 ms':>7}  {'max ms':>7}  {'target':>8}  result")
    for r in results:
        if not r["n"]:
            print(f"{r['route']:<{width}}  {0:>4}  no 200 answer: statuses {r['failures']} for {r['example']}")
            continue
        info = r["route"].startswith("(info)")
        verdict = "" if info else ("PASS" if r["p95"] <= TARGET_P95_MS else "MISS")
        target = "(info)" if info else f"<= {TARGET_P95_MS:.0f}"
        failed = f"  (non-200: {r['failures']})" if r["failures"] else ""
        print(f"{r['route']:<{width}}  {r['n']:>4}  {r['p50']:>7.1f}  {r['p95']:>7.1f}  {r['max']:>7.1f}  "
              f"{target:>8}  {verdict}{failed}")  # fmt: skip
    for e in exports:
        if e["status"] != 200 or not e["streamed"]:
            print(f"export {e['format']}: status {e['status']}, streamed {e['streamed']} ({e['url']})")
            continue
        print(f"export {e['format']}: {e['lines']:,} lines, {e['bytes'] / 1e6:.1f} MB in {e['wall']:.2f} s "
              f"(first byte after {e['first_byte'] * 1e3:.0f} ms): {e['rows_per_s']:,.0f} samples/s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Search efficiency of the sweep strategies: a measuring tool run by hand, not a test.

    .venv/bin/python bench/search_efficiency.py             # 20 seeds (~6.5 min)
    .venv/bin/python bench/search_efficiency.py --quick     # 3 seeds (~1 min)
    .venv/bin/python bench/search_efficiency.py --seeds 5 --trials 90
    .venv/bin/python bench/search_efficiency.py --db postgres   # instead of a SQLite file (~1.5x slower)
    .venv/bin/python bench/search_efficiency.py --json out.json # also save every per-seed figure;
    .venv/bin/python bench/search_efficiency.py --report out.json   # ... and print its table again

How many tokens does each strategy spend before it has run a configuration whose score is
within 2 % of the best the full grid finds? And how many does early stopping save on a grid?

The landscape (mock provider, no network; every figure comes from real sweeps run by
`sweeps.runner.execution.execute_sweep`, as the embedded worker runs them)
--------------------------------------------------------------------------------------------
Task: quote a support ticket's first sentence. 60 rows; each ticket is an 8-word headline
("The printer keeps crashing since the last update.") followed by a second sentence of 8 to 10
words; `expected` is the headline. Scorer: `similarity` (rapidfuzz ratio of the output to
`{{ expected }}`, 0..1 per row; a run's score is the mean over the rows). One stage on
`mock/echo`, which answers with the text after the prompt's last colon, so:

- `stages.quote.prompt`, 4 choices: the answer is the ticket itself, or the ticket after a
  greeting of 1, 2 or 4 words ("Hello,", "Dear team,", "Good morning support team,") that
  costs similarity;
- `params.max_tokens`, [6, 9, 11, 13, 16, 20]: the mock cuts an answer longer than max_tokens
  to max_tokens x 10 // 13 words, i.e. 4, 6, 8, 10, 12 or 15 words; only 11 keeps exactly the
  8 words of the headline;
- `params.temperature`, 0.1 to 0.9 by 0.2 (5 values), and `params.top_p`, [0.5, 0.75, 1.0]:
  the mock drops, doubles or swaps each word with probability 0.4 x temperature x
  (0.5 + 0.5 x top_p), seeded by the request and the provider's seed, so per-row scores are
  noisy and no configuration is noise-free (there is no temperature 0, whose ties over top_p
  would make a plateau).

5 x 3 x 4 x 6 = 360 configurations, 60 samples each: 21,600 samples per grid sweep.

The optimum: no greeting, max_tokens 11, temperature 0.1, top_p 0.5, scoring 0.971-0.986
depending on the seed (measured over seeds 0-19; a 3 % chance per word of a mistake still
spoils about one answer in five). Its two top_p neighbours (0.75, 1.0; same prompt, max_tokens
and temperature) score 0-2 % lower, so on a given seed the grid's winner is one of these three
(top_p 0.5 on 14 of the 20 seeds) and 2 or 3 configurations of the 360 are within 2 % of it.
The best of the rest is 2-6 % below (temperature 0.3 is 3-6 % below); every configuration with
another prompt or max_tokens is at least 7.8 % below. So "within 2 %" means finding one cell of
120 (prompt x max_tokens x temperature) and, mostly, the right top_p in it.

Per seed s (0..N-1, or from --first-seed) the mock provider's `seed` option is s (it changes
every noise draw) and so is the sweep's `seed` (random, guided and tpe proposals; early
stopping's row order). The database is emptied (and with it the response cache) between seeds;
within a seed the strategies share the response cache, which is why tokens are counted as if
nothing were cached: a run's tokens are the sum of its samples' tokens_in + tokens_out, which
include cached stages.

Measures
--------
- grid: the whole grid's tokens (it has to run everything to know its optimum). The grid's
  optimum = the best run score of that seed's grid sweep; the target = 0.98 x that.
- random, guided, tpe, n_trials = 120 (a third of the grid; `--trials`): runs ordered by when
  they were made (round, id), tokens accumulated up to and including the first run whose score
  reaches the target. A seed whose sweep never reaches it is left out of the mean and counts
  as infinitely many tokens in the median ("seeds reached" says how many got there). For
  random search the report also gives what uniform draws without replacement would do on average with that many qualifying configurations (the share of the
  grid before the first one is (N + 1) / (k + 1) / N, about 1/(k + 1)). Guided and tpe plan
  in rounds of 24 (engine/strategies/base.py: ADAPTIVE_ROUNDS = 5), each round from every score so far.
- early stopping: the same grid with `early_stopping: {rungs: [0.1, 0.3, 1.0], alpha: 0.05}`
  on the same seed (hence the same per-sample scores). Tokens spent = every sample it ran
  (pruned runs included); saved = 1 - that / the plain grid's. "Winner kept": its best
  non-pruned run is the plain grid's best configuration; "within 2 %": that run reaches the
  target. `--no-early-stopping` leaves it out.

Targets: tpe or guided reach the target for <= 25 % of the grid's tokens (median); early
stopping saves >= 50 % of the grid's tokens and keeps the winner in >= 95 % of the seeds.

Set-up: a SQLite file in a temporary directory (default), or with `--db postgres` the
throwaway PostgreSQL database `promptlooper_bench_search` (dropped and re-created, dropped again
at the end; BENCH_PG_URL overrides the server, default postgres://postgres@127.0.0.1:5432).
No Redis: the in-memory channel layer, as in the embedded mode. Sweeps are created with
sweep_start and executed in-process with asyncio.run(execute_sweep(id));
dispatch_sweep is replaced by a no-op so the embedded worker thread does not run the
same sweep a second time (as in bench/throughput.py). Mock latency is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchdb import configure_django, recreate_pg_database  # noqa: E402

PG_DB = "promptlooper_bench_search"  # the only database this script creates, drops or writes

SEEDS, QUICK_SEEDS = 20, 3
N_TRIALS = 120  # random / guided / tpe: a third of the 360-configuration grid
WITHIN = 0.02  # "within 2 % of the grid optimum"
CONCURRENCY = 64
EARLY_STOPPING = {"rungs": [0.1, 0.3, 1.0], "alpha": 0.05}
TARGET_SEARCH_RATIO = 0.25  # tpe or guided: <= 25 % of the grid's tokens
TARGET_SAVED = 0.50  # early stopping saves >= 50 %
TARGET_KEPT = 0.95  # ... and keeps the winner in >= 95 % of the seeds
STRATEGIES = ("random", "guided", "tpe")

err = Console(stderr=True)
out = Console()
for _console in (err, out):
    if not _console.is_terminal:
        _console.width = 120  # piped to a file: no wrapping at 80 columns

# ------------------------------------------------------------------------------------------
# the landscape
# ------------------------------------------------------------------------------------------

ROWS = 60
SUBJECTS = ["The printer", "My laptop", "The invoices", "Our drive", "The app", "The login", "My monitor",
            "Payroll export", "Office wifi", "Video calls", "The backups", "My keyboard"]  # fmt: skip
PROBLEMS = ["stopped working", "keeps crashing", "shows errors", "freezes again", "fails silently", "runs slowly"]
WHEN = ["every single morning here", "since the last update", "since last Tuesday morning",
        "during our big meetings", "on the third floor", "whenever I print something"]  # fmt: skip
DETAILS = ["I already restarted it twice and cleared the cache", "my manager needs the report by Friday afternoon",
           "two colleagues in accounting see the same problem", "the help page did not answer my question at all",
           "it worked fine before the holiday break last month",
           "please call me back on my desk phone soon"]  # fmt: skip
PROMPT = "Quote the first sentence of this ticket: "
PROMPTS = [  # the mock echoes what follows the last colon: the ticket, after a greeting of 0, 1, 2, 4 words
    PROMPT + "{{ ticket }}",
    PROMPT + "Hello, {{ ticket }}",
    PROMPT + "Dear team, {{ ticket }}",
    PROMPT + "Good morning support team, {{ ticket }}",
]
SPACE = {
    "params.temperature": {"min": 0.1, "max": 0.9, "step": 0.2},
    "params.top_p": [0.5, 0.75, 1.0],
    "params.max_tokens": [6, 9, 11, 13, 16, 20],
    "stages.quote.prompt": PROMPTS,
}


def dataset() -> list[dict[str, str]]:
    """60 tickets: an 8-word headline (the expected answer) and a second sentence. The same for
    every seed: the seed changes the noise, not the task."""
    rng = random.Random("search-efficiency")
    rows = []
    for _ in range(ROWS):
        headline = f"{rng.choice(SUBJECTS)} {rng.choice(PROBLEMS)} {rng.choice(WHEN)}."
        assert len(headline.split()) == 8, headline
        detail = rng.choice(DETAILS)
        rows.append({"ticket": f"{headline} {detail[0].upper()}{detail[1:]}.", "expected": headline})
    return rows


def build_spec(kind: str, seed: int, *, n_trials: int, early_stopping: bool = False) -> dict[str, Any]:
    sweep: dict[str, Any] = {"type": kind, "params": SPACE, "seed": seed}
    if kind != "grid":
        sweep["n_trials"] = n_trials
    if early_stopping:
        sweep["early_stopping"] = EARLY_STOPPING
    label = f"{kind} + early stopping" if early_stopping else kind
    return {
        "name": f"search efficiency seed {seed}: {label}",
        "pipeline": [{"name": "quote", "prompt": PROMPTS[0], "model": "mock/echo"}],
        "dataset": dataset(),
        "scorers": [{"type": "similarity"}],
        "sweep": sweep,
        "max_concurrency": CONCURRENCY,
    }


def describe(config: dict[str, Any]) -> str:
    params = config.get("params", {})
    prompt = config.get("stages", {}).get("quote", {}).get("prompt", "")
    greeting = ["none", "Hello", "Dear team", "Good morning..."][PROMPTS.index(prompt)] if prompt in PROMPTS else "?"
    return (f"greeting {greeting}, max_tokens {params.get('max_tokens')}, temperature {params.get('temperature')}, "
            f"top_p {params.get('top_p')}")  # fmt: skip


# ------------------------------------------------------------------------------------------
# Django, the database, running a sweep
# ------------------------------------------------------------------------------------------


def setup_django(db: str) -> str | None:
    """Configure a fresh throwaway database and migrate it; returns the temp dir (SQLite)."""
    tmp = None
    if db == "sqlite":
        tmp = tempfile.mkdtemp(prefix="promptlooper-bench-search-")
        configure_django(f"sqlite:///{tmp}/bench.sqlite3")
    else:
        configure_django(recreate_pg_database(PG_DB))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)

    # This script runs each sweep itself; without the no-op, sweep_start's on_commit hook would
    # also start it in the embedded worker thread.
    import sweeps.services.sweeps

    sweeps.services.sweeps.dispatch_sweep = lambda sweep, **kwargs: []  # the sweep is executed inline
    return tmp


def reset_database(mock_seed: int) -> None:
    """Empty every table a sweep writes (the response cache too: its key does not include the
    mock's seed) and give the mock provider this seed, no latency."""
    from django.db import connection, transaction

    from sweeps.models import (
        Experiment,
        Provider,
        ResponseCache,
        Run,
        RunSample,
        Score,
        Sweep,
    )

    with transaction.atomic(), connection.cursor() as cursor:
        for model in (Score, RunSample, Run, Sweep, Experiment, ResponseCache):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
    Provider.objects.filter(name="mock").update(options={"latency_ms": 0, "jitter": 0, "seed": mock_seed})


@dataclass
class RunRow:
    id: int
    round: int
    config: dict[str, Any]
    config_hash: str
    status: str
    score: float | None
    tokens: int  # tokens_in + tokens_out of the samples it ran, cached stages included
    samples: int  # samples it ran (finished: completed or failed)


@dataclass
class SweepResult:
    kind: str
    wall: float
    runs: list[RunRow]
    sweep: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.runs)


def run_sweep(user: Any, kind: str, seed: int, *, n_trials: int, early_stopping: bool = False) -> SweepResult:
    from django.db.models import Count, Q, Sum

    from sweeps.models import Run, RunSample, Sweep
    from sweeps.runner import execution
    from sweeps.services.experiments import experiment_create
    from sweeps.services.sweeps import sweep_start

    experiment = experiment_create(
        owner=user, data=build_spec(kind, seed, n_trials=n_trials, early_stopping=early_stopping)
    )
    sweep = sweep_start(experiment=experiment)
    t0 = time.perf_counter()
    reason = asyncio.run(execution.execute_sweep(sweep.pk))
    wall = time.perf_counter() - t0
    sweep.refresh_from_db()
    if reason != "drained" or sweep.status != Sweep.Status.COMPLETED:
        raise RuntimeError(
            f"{kind} sweep {sweep.pk} (seed {seed}) ended {reason!r}, status {sweep.status}: {sweep.error}"
        )
    # Tokens from the samples themselves (whatever a pruned run's own aggregate says).
    finished = Q(samples__status__in=(RunSample.Status.COMPLETED, RunSample.Status.FAILED))
    rows = (
        Run.objects.filter(sweep=sweep)
        .annotate(
            t_in=Sum("samples__tokens_in", filter=finished),
            t_out=Sum("samples__tokens_out", filter=finished),
            n=Count("samples", filter=finished),
        )
        .order_by("round", "id")
        .values_list("id", "round", "config", "config_hash", "status", "score", "t_in", "t_out", "n")
    )
    runs = [RunRow(i, rnd, cfg, h, st, sc, (ti or 0) + (to or 0), n) for i, rnd, cfg, h, st, sc, ti, to, n in rows]
    info = {f: getattr(sweep, f) for f in ("total", "completed", "failed", "cached", "tokens_in", "tokens_out")}
    for f in ("pruned", "pruned_tokens"):  # the early-stopping counters, once they exist
        if hasattr(sweep, f):
            info[f] = getattr(sweep, f)
    return SweepResult(kind, wall, runs, info)


# ------------------------------------------------------------------------------------------
# the measures
# ------------------------------------------------------------------------------------------


def tokens_to_reach(runs: list[RunRow], target: float) -> tuple[int | None, int]:
    """Tokens spent up to and including the first run (in creation order) scoring >= target,
    or None; and how many runs that took."""
    spent = 0
    for n, run in enumerate(runs, 1):
        spent += run.tokens
        if run.score is not None and run.score >= target:
            return spent, n
    return None, len(runs)


def best_run(runs: list[RunRow], *, statuses: tuple[str, ...] = ("completed",)) -> RunRow:
    # Ties: the earlier run, as the leaderboard ranks them.
    return max((r for r in runs if r.status in statuses and r.score is not None), key=lambda r: (r.score, -r.id))


def measure_seed(user: Any, seed: int, args: argparse.Namespace, progress: Progress, task: Any) -> dict[str, Any]:
    reset_database(seed)
    result: dict[str, Any] = {"seed": seed}

    progress.update(task, description=f"seed {seed}: grid")
    grid = run_sweep(user, "grid", seed, n_trials=args.trials)
    progress.advance(task)
    winner = best_run(grid.runs)
    target = (1 - WITHIN) * winner.score
    scores = {r.config_hash: r.score for r in grid.runs}
    ranked = sorted((r for r in grid.runs if r.score is not None), key=lambda r: -r.score)
    in_order, in_order_runs = tokens_to_reach(grid.runs, target)
    result["grid"] = {
        "tokens": grid.tokens, "wall": grid.wall, "runs": len(grid.runs), "best_score": winner.score,
        "best_config": winner.config, "best_hash": winner.config_hash, "target": target,
        "within": sum(r.score >= target for r in ranked), "second_score": ranked[1].score,
        "next_outside_score": next(r.score for r in ranked if r.score < target),
        "in_order_tokens": in_order, "in_order_runs": in_order_runs,
    }  # fmt: skip

    for kind in STRATEGIES:
        progress.update(task, description=f"seed {seed}: {kind}")
        r = run_sweep(user, kind, seed, n_trials=args.trials)
        progress.advance(task)
        spent, n_runs = tokens_to_reach(r.runs, target)
        # The same config on the same seed makes the same requests: its score must be the grid's.
        mismatched = sum(
            1 for run in r.runs if run.score is not None and abs(scores[run.config_hash] - run.score) > 1e-9
        )
        result[kind] = {
            "tokens_to_reach": spent, "runs_to_reach": n_runs if spent is not None else None,
            "ratio": spent / grid.tokens if spent is not None else None, "runs": len(r.runs),
            "rounds": max(run.round for run in r.runs) + 1, "tokens_total": r.tokens, "wall": r.wall,
            "best_score": best_run(r.runs).score, "score_mismatches": mismatched,
        }  # fmt: skip

    if args.early_stopping:
        progress.update(task, description=f"seed {seed}: grid + early stopping")
        es = run_sweep(user, "grid", seed, n_trials=args.trials, early_stopping=True)
        progress.advance(task)
        survivor = best_run(es.runs)
        statuses: dict[str, int] = {}
        pruned_after: dict[int, int] = {}  # rows seen -> runs pruned there
        for run in es.runs:
            statuses[run.status] = statuses.get(run.status, 0) + 1
            if run.status == "pruned":
                pruned_after[run.samples] = pruned_after.get(run.samples, 0) + 1
        result["early_stopping"] = {
            "tokens": es.tokens, "saved": 1 - es.tokens / grid.tokens, "wall": es.wall,
            "winner_kept": survivor.config_hash == winner.config_hash, "within": survivor.score >= target,
            "best_score": survivor.score, "best_config": survivor.config, "runs_by_status": statuses,
            "pruned_after_rows": pruned_after,
            "samples_run": sum(run.samples for run in es.runs), "samples_grid": sum(run.samples for run in grid.runs),
            "winner_status": next((run.status for run in es.runs if run.config_hash == winner.config_hash), None),
            "sweep": es.sweep,
            # A run that finished scores on every row, the same samples as in the grid: the same score.
            "score_mismatches": sum(1 for run in es.runs if run.status == "completed"
                                    and abs(scores[run.config_hash] - run.score) > 1e-9),
        }  # fmt: skip
    return result


def log_seed(r: dict[str, Any]) -> None:
    g = r["grid"]
    parts = [
        (
            f"seed {r['seed']}: grid best {g['best_score']:.4f} ({describe(g['best_config'])}), "
            f"{g['within']} of {g['runs']} runs within 2 %, best outside {g['next_outside_score']:.4f}; "
            f"grid {g['tokens']:,} tokens in {g['wall']:.1f} s"
        )
    ]
    for kind in STRATEGIES:
        k = r[kind]
        reach = (f"{k['tokens_to_reach']:,} tokens ({k['ratio']:.1%}, run {k['runs_to_reach']})"
                 if k["tokens_to_reach"] is not None else f"not reached in {k['runs']} runs")  # fmt: skip
        parts.append(f"{kind} {reach}, best {k['best_score']:.4f}, {k['wall']:.1f} s"
                     + (f", {k['score_mismatches']} SCORE MISMATCHES" if k["score_mismatches"] else ""))  # fmt: skip
    if es := r.get("early_stopping"):
        parts.append(
            f"early stopping {es['tokens']:,} tokens (saved {es['saved']:.1%}), runs {es['runs_by_status']}, "
            f"winner {'kept' if es['winner_kept'] else 'LOST (' + str(es['winner_status']) + ')'}, "
            f"best {es['best_score']:.4f}{'' if es['within'] else ' NOT within 2 %'}, {es['wall']:.1f} s"
            + (f", {es['score_mismatches']} SCORE MISMATCHES" if es["score_mismatches"] else "")
        )
    err.print("  " + "\n    ".join(parts), highlight=False)


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


def fmt_tokens(x: float | None) -> str:
    if x is None:
        return "—"
    return "not reached" if math.isinf(x) else f"{x:,.0f}"


def random_expectation(n_configs: int, good: int, n_trials: int) -> tuple[float, float]:
    """Uniform random search without replacement over n_configs with `good` qualifying ones:
    (expected share of the configurations run up to the first good one, uncapped;
    probability of drawing one within n_trials)."""
    miss = 1.0
    for i in range(min(n_trials, n_configs - good)):
        miss *= (n_configs - good - i) / (n_configs - i)
    return (n_configs + 1) / (good + 1) / n_configs, 1 - miss


def report(results: list[dict[str, Any]], args: argparse.Namespace, es_note: str, wall: float) -> None:
    n = len(results)
    n_configs = results[0]["grid"]["runs"]
    grid_tokens = [r["grid"]["tokens"] for r in results]
    table = Table(title=f"Tokens spent until a run is within 2 % of the grid's optimum ({n} seeds; random, guided "
                  f"and tpe with n_trials {args.trials} of {n_configs})")  # fmt: skip
    for col, justify in (("strategy", "left"), ("seeds reached", "right"), ("median tokens", "right"),
                         ("mean tokens (reached)", "right"), ("median ratio to grid", "right"),
                         ("target", "left")):  # fmt: skip
        table.add_column(col, justify=justify)
    table.add_row("grid (all of it)", f"{n}/{n}", fmt_tokens(statistics.median(grid_tokens)),
                  fmt_tokens(statistics.fmean(grid_tokens)), "1.000", "")  # fmt: skip
    medians: dict[str, float] = {}
    for kind in STRATEGIES:
        reached = [r[kind]["tokens_to_reach"] for r in results if r[kind]["tokens_to_reach"] is not None]
        # A seed that never reached the target counts as infinitely many tokens: the median stays
        # honest (it is "not reached" when half the seeds or more never got there).
        tokens = [math.inf if r[kind]["tokens_to_reach"] is None else r[kind]["tokens_to_reach"] for r in results]
        ratio = statistics.median(math.inf if r[kind]["ratio"] is None else r[kind]["ratio"] for r in results)
        medians[kind] = ratio
        target = ""
        if kind in ("guided", "tpe"):
            target = f"≤ {TARGET_SEARCH_RATIO:.2f} ({'met' if ratio <= TARGET_SEARCH_RATIO else 'missed'})"
        table.add_row(kind, f"{len(reached)}/{n}", fmt_tokens(statistics.median(tokens)),
                      fmt_tokens(statistics.fmean(reached) if reached else None),
                      "not reached" if math.isinf(ratio) else f"{ratio:.3f}", target)  # fmt: skip
    out.print(table)
    best_search = min(medians["guided"], medians["tpe"])
    within = [r["grid"]["within"] for r in results]
    in_order = [r["grid"]["in_order_tokens"] / r["grid"]["tokens"] for r in results]
    expected = [random_expectation(n_configs, k, args.trials) for k in within]
    out.print(
        f"Target: tpe or guided ≤ {TARGET_SEARCH_RATIO:.0%} of the grid's tokens (median): "
        f"{'met' if best_search <= TARGET_SEARCH_RATIO else 'missed'} ({best_search:.3f}). A seed that never "
        f"reached the target counts as infinite in the medians and is left out of the means.\n"
        f"Configurations within 2 % of the optimum per seed: median {statistics.median(within):g} of {n_configs} "
        f"(min {min(within)}, max {max(within)}). Uniform random search would need on average "
        f"{statistics.fmean(e[0] for e in expected):.0%} of the grid to reach one, and would reach one within "
        f"{args.trials} runs with probability {statistics.fmean(e[1] for e in expected):.0%} (expected "
        f"{sum(e[1] for e in expected):.1f} of {n} seeds). The grid in its own run order (itertools.product over "
        f"the sorted keys) passes its first such run after a median {statistics.median(in_order):.1%} of its tokens.",
        highlight=False,
    )
    winners: dict[str, int] = {}
    for r in results:
        winners[describe(r["grid"]["best_config"])] = winners.get(describe(r["grid"]["best_config"]), 0) + 1
    out.print(
        "Grid winners: " + "; ".join(f"{k} ({v}x)" for k, v in sorted(winners.items(), key=lambda kv: -kv[1])),
        highlight=False,
    )

    if not args.early_stopping:
        out.print(f"\nEarly stopping: skipped ({es_note}).", highlight=False)
    else:
        es = [r["early_stopping"] for r in results]
        saved = [e["saved"] for e in es]
        kept = sum(e["winner_kept"] for e in es)
        within2 = sum(e["within"] for e in es)
        t = Table(title=f"Early stopping on the grid, rungs {EARLY_STOPPING['rungs']}, alpha {EARLY_STOPPING['alpha']} "
                  f"({n} seeds)")  # fmt: skip
        for col, justify in (("measure", "left"), ("figure", "right"), ("target", "left")):
            t.add_column(col, justify=justify)
        t.add_row("tokens spent (median)", f"{fmt_tokens(statistics.median(e['tokens'] for e in es))} of "
                  f"{fmt_tokens(statistics.median(grid_tokens))}", "")  # fmt: skip
        verdict = "met" if min(saved) >= TARGET_SAVED else "missed"
        if verdict == "missed" and statistics.median(saved) >= TARGET_SAVED:
            verdict = "met by the median, not every seed"
        t.add_row("tokens saved: median (min)", f"{statistics.median(saved):.1%} ({min(saved):.1%})",
                  f"≥ {TARGET_SAVED:.0%} ({verdict})")  # fmt: skip
        t.add_row("winner kept (best non-pruned run = grid's best config)", f"{kept}/{n}",
                  f"≥ {TARGET_KEPT:.0%} of seeds ({'met' if kept >= TARGET_KEPT * n else 'missed'})")  # fmt: skip
        t.add_row("best non-pruned run within 2 % of the optimum", f"{within2}/{n}", "")
        runs_pruned = [e["runs_by_status"].get("pruned", 0) for e in es]
        t.add_row(f"runs pruned (median of {n_configs})", f"{statistics.median(runs_pruned):g}", "")
        after = [{int(rows): runs for rows, runs in e["pruned_after_rows"].items()} for e in es]  # JSON: str keys
        rungs = sorted({rows for a in after for rows in a})
        t.add_row(f"... after {' / '.join(map(str, rungs))} rows (median)",
                  " / ".join(f"{statistics.median(a.get(rows, 0) for a in after):g}" for rows in rungs), "")  # fmt: skip
        finished = [e["runs_by_status"].get("completed", 0) for e in es]
        t.add_row("runs finished on every row (median, min-max)",
                  f"{statistics.median(finished):g} ({min(finished)}-{max(finished)})", "")  # fmt: skip
        if all("pruned_tokens" in e["sweep"] for e in es):
            estimated = [e["sweep"]["pruned_tokens"] for e in es]
            actual = [r["grid"]["tokens"] - r["early_stopping"]["tokens"] for r in results]
            t.add_row("Sweep.pruned_tokens ÷ tokens actually saved (median)",
                      f"{statistics.median(a / b for a, b in zip(estimated, actual) if b):.2f}", "")  # fmt: skip
        out.print(t)
    out.print(f"\n{n} seeds in {wall / 60:.1f} min ({args.db}).", highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, help=f"how many seeds (default {SEEDS}, --quick {QUICK_SEEDS})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SEEDS} seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--trials", type=int, default=N_TRIALS, help=f"n_trials of random/guided/tpe ({N_TRIALS})")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--no-early-stopping", dest="early_stopping", action="store_false",
                        help="skip the grid with early stopping")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write every per-seed figure to this file")
    parser.add_argument("--report", type=Path, metavar="JSON", help="only print the report of a file --json wrote")
    args = parser.parse_args()
    n_seeds = args.seeds or (QUICK_SEEDS if args.quick else SEEDS)
    if args.report:
        saved = json.loads(args.report.read_text())
        args.trials, args.db, args.early_stopping = saved["trials"], saved["db"], saved["early_stopping"]
        report(saved["results"], args, saved["early_stopping_note"], saved["wall"])
        return

    es_note = "turned off with --no-early-stopping"
    tmp = setup_django(args.db)
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
        sweeps_per_seed = 1 + len(STRATEGIES) + int(args.early_stopping)
        columns = (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TextColumn("sweeps"),
                   TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("starting", total=n_seeds * sweeps_per_seed)
            for seed in range(args.first_seed, args.first_seed + n_seeds):
                result = measure_seed(user, seed, args, progress, task)
                results.append(result)
                log_seed(result)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.db == "postgres":
            from django.db import connections

            connections.close_all()
            recreate_pg_database(PG_DB, drop_only=True)
    wall = time.perf_counter() - t0
    if args.json:
        saved = {"trials": args.trials, "db": args.db, "early_stopping": args.early_stopping,
                 "early_stopping_note": es_note, "wall": wall, "results": results}  # fmt: skip
        args.json.write_text(json.dumps(saved, indent=1, default=str))
    report(results, args, es_note, wall)


if __name__ == "__main__":
    main()

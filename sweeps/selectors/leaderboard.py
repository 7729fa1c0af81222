"""The ranking of a sweep's runs: the leaderboard, its orders, the verdict on the top two, the
Pareto front and what varies between runs."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.cache import cache
from django.db.models import Case, F, QuerySet, Value, When

from sweeps.engine import importance, ranking, stats
from sweeps.engine.space import flatten
from sweeps.models import Run, Sweep
from sweeps.selectors.runs import row_scores, run_search

# Full-data scores first, then runs early stopping pruned (scored on part of the rows only),
# then unscored ones; ties in the order made.
BEST_FIRST = (
    Case(
        When(score__isnull=True, then=Value(2)), When(status=Run.Status.PRUNED, then=Value(1)), default=Value(0)
    ).asc(),
    F("score").desc(nulls_last=True),
    "id",
)


def leaderboard(sweep: Sweep, *, limit: int = 50) -> list[Run]:
    """Runs ranked by score, best first."""
    return list(sweep.runs.order_by(*BEST_FIRST)[:limit])


MISSING = object()


def top_two_verdict(sweep: Sweep, *, alpha: float = 0.05) -> dict[str, Any] | None:
    """Whether the two best finished runs are really different, or their order may be noise: a
    paired comparison over the dataset's rows (engine/stats.py). None with fewer than two.
    Finished runs never change, so it is cached by which runs they are and when they finished."""
    top = list(sweep.runs.filter(status=Run.Status.COMPLETED, score__isnull=False).order_by(*BEST_FIRST)[:2])
    if len(top) < 2:
        return None
    key = "sweeps:verdict:" + ":".join(
        f"{run.pk}@{run.finished_at.isoformat() if run.finished_at else ''}" for run in top
    )
    if (verdict := cache.get(key, MISSING)) is not MISSING:
        return verdict
    per_run = row_scores([run.pk for run in top])
    first, second = (stats.row_means(per_run[run.pk]) for run in top)
    comparison = stats.compare_paired(first, second, alpha=alpha, seed=top[0].pk)
    verdict = None
    if comparison is not None:
        verdict = {"run_ids": [run.pk for run in top], "alpha": alpha, **dataclasses.asdict(comparison)}
    cache.set(key, verdict, timeout=24 * 3600)  # None too: too few rows stays too few
    return verdict


def leaderboard_ranks(sweep: Sweep, run_ids: list[int], *, within: int = 1000) -> dict[int, int]:
    """The rank (1 = best) the leaderboard gives each of these runs, in its default order; runs
    ranked below `within` are left out (the verdict's runs are near the top)."""
    ranked = sweep.runs.order_by(*BEST_FIRST).values_list("id", flat=True)[:within]
    wanted = set(run_ids)
    return {run_id: rank for rank, run_id in enumerate(ranked, 1) if run_id in wanted}


def verdict_names(sweep: Sweep, run_ids: list[int], *, ranked: list[int] | None = None) -> list[str]:
    """The verdict's runs named as the leaderboard numbers them: "#1", "#2" (else "run 15").
    `ranked`: the ids of the best runs in the leaderboard's order, when the caller has them."""
    if ranked is not None:
        ranks = {run_id: rank for rank, run_id in enumerate(ranked, 1) if run_id in run_ids}
    else:
        ranks = leaderboard_ranks(sweep, run_ids)
    return [f"#{ranks[i]}" if i in ranks else f"run {i}" for i in run_ids]


def varying_params(runs: list[Run]) -> list[str]:
    """The dotted parameter paths whose value differs between runs: what distinguishes them."""
    return varying_keys([r.config for r in runs])


def varying_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted paths whose value differs between configurations (all of them when none does)."""
    flat = [flatten(config) for config in configs]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1] or keys


def pareto_run_ids(sweep: Sweep) -> list[int]:
    """The runs no other run beats on score, cost and latency at once, best score first. Pruned
    runs are left out: their cost and score are of part of the rows, not comparable."""
    runs = list(sweep.runs.exclude(status=Run.Status.PRUNED).values("id", "score", "cost_usd", "latency_ms"))
    points = [{"score": r["score"], "cost": r["cost_usd"], "latency": r["latency_ms"]} for r in runs]
    return [runs[i]["id"] for i in ranking.pareto_front(points, (ranking.SCORE, ranking.COST, ranking.LATENCY))]


RUN_FIGURES = ("id", "config", "status", "score", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "score_ci_low",
               "score_ci_high", "score_spread", "consistency", "samples_failed", "samples_truncated", "finished_at",
               "scorer_means")  # fmt: skip


def sweep_importances(
    sweep: Sweep, raw_params: dict[str, Any], history: list[tuple[int, float, bool]]
) -> dict[str, float] | None:
    """Optuna's parameter importances over the sweep's finished full-data runs (engine/importance.py),
    cached until another run finishes: `history` is run_history's list, which says when."""
    space = importance.space_of(raw_params)
    full = [pk for pk, _, is_full in history if is_full]
    if space is None or len(full) < importance.MIN_RUNS:
        return None
    key = f"sweeps:importance:{sweep.pk}:{len(full)}:{full[-1]}"
    if (found := cache.get(key, MISSING)) is not MISSING:
        return found
    # The same runs as `full`, selected as run_history selects them: thousands of ids would not
    # fit in one IN list on every backend.
    runs = sweep.runs.filter(finished_at__isnull=False, score__isnull=False).exclude(status=Run.Status.PRUNED)
    scored = runs.values_list("config", "score")
    found = importance.param_importances(space, [(config, score) for config, score in scored if score is not None])
    cache.set(key, found, timeout=24 * 3600)
    return found


def run_history(sweep: Sweep) -> list[tuple[int, float, bool]]:
    """Every scored run's (id, score, full: not pruned), in the order the runs finished: what the
    best-so-far chart draws. Three numbers a run, whatever the sweep's size."""
    runs = sweep.runs.filter(finished_at__isnull=False, score__isnull=False).order_by("finished_at", "id")
    found = runs.values_list("id", "score", "status")
    return [(pk, score, status != Run.Status.PRUNED) for pk, score, status in found if score is not None]


def chart_runs(sweep: Sweep, *, limit: int, top: int) -> list[Run]:
    """The runs the charts draw, best first: all of them up to `limit`; beyond, the best `top`
    and an even sample of the rest by rank, so the charts show the whole sweep's shape rather
    than only its best corner (and the leaderboard's first page is among them)."""
    best = list(run_ranking(sweep)[: limit + 1])
    if len(best) <= limit:
        return best
    ranked = list(sweep.runs.order_by(*BEST_FIRST).values_list("id", flat=True))
    rest = ranked[top:]
    step = len(rest) / (limit - top)
    chosen = [rest[int(i * step)] for i in range(limit - top)]
    sampled = run_ranking(sweep).in_bulk(chosen)
    return best[:top] + [sampled[pk] for pk in chosen]


def run_ranking(sweep: Sweep) -> QuerySet[Run]:
    """A sweep's runs best first (unscored last), with what the leaderboard shows."""
    return sweep.runs.only(*RUN_FIGURES).order_by(*BEST_FIRST)


def runs_recently_finished(sweep: Sweep, *, limit: int) -> list[dict[str, Any]]:
    finished = sweep.runs.filter(finished_at__isnull=False).order_by("-finished_at", "-id")
    return [dict(row) for row in finished.values("id", "status", "score", "finished_at")[:limit]]


LEADERBOARD_DEFAULT = "-score"


# The sorts the page offers, the default first: a subset of the API's RUN_ORDERS, so both
# rank the same way (free runs first for score per dollar, ties in the order made).
LEADERBOARD_ORDERS = {LEADERBOARD_DEFAULT: "Score", "-score_per_dollar": "Score per dollar"}


def leaderboard_order(value: str | None) -> str:
    """The page's sort from its ?order= value; anything else (a typo, an old link) is the default."""
    return value if value in LEADERBOARD_ORDERS else LEADERBOARD_DEFAULT


def run_leaderboard(sweep: Sweep, *, order: str = LEADERBOARD_DEFAULT) -> QuerySet[Run]:
    """A sweep's runs in one of the page's sorts, with what the leaderboard shows."""
    if order == LEADERBOARD_DEFAULT:
        return run_ranking(sweep)  # the charts' order: the page reuses their runs for page 1
    return run_search(sweep, order=order).only(*RUN_FIGURES)

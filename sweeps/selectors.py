"""Reads, always scoped to the user asking."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from django.core.cache import cache
from django.db.models import Avg, Case, Count, F, FloatField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from sweeps import formatting
from sweeps.engine import ranking, stats
from sweeps.engine.space import flatten
from sweeps.engine.values import value_problems
from sweeps.models import Experiment, Run, RunSample, Score, Sweep


def experiment_list(*, user: Any) -> QuerySet[Experiment]:
    return Experiment.objects.filter(owner=user)


def experiment_get(*, user: Any, experiment_id: int) -> Experiment:
    return get_object_or_404(Experiment, pk=experiment_id, owner=user)


def experiment_visible_to(user: Any, experiment_id: int) -> bool:
    if user is None or not user.is_authenticated:
        return False
    return Experiment.objects.filter(pk=experiment_id, owner=user).exists()


def sweep_get(*, user: Any, sweep_id: int) -> Sweep:
    return get_object_or_404(Sweep.objects.select_related("experiment"), pk=sweep_id, experiment__owner=user)


def sweep_latest(experiment: Experiment) -> Sweep | None:
    return experiment.sweeps.order_by("-created_at").first()


def run_get(*, user: Any, run_id: int) -> Run:
    return get_object_or_404(Run.objects.select_related("experiment", "sweep"), pk=run_id, experiment__owner=user)


# Full-data scores first, then runs early stopping pruned (scored on part of the rows only),
# then unscored ones; ties in the order made.
BEST_FIRST = (
    Case(When(score__isnull=True, then=Value(2)), When(status=Run.Status.PRUNED, then=Value(1)), default=Value(0)).asc(),
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
    key = "sweeps:verdict:" + ":".join(f"{run.pk}@{run.finished_at.isoformat() if run.finished_at else ''}" for run in top)
    if (verdict := cache.get(key, MISSING)) is not MISSING:
        return verdict
    per_run: dict[int, list[tuple[int, int, float]]] = {run.pk: [] for run in top}
    scored = RunSample.objects.filter(run__in=top, status__in=(RunSample.Status.COMPLETED, RunSample.Status.FAILED))
    for run_id, row, replicate, score in scored.values_list("run_id", "row_index", "replicate", "score"):
        per_run[run_id].append((row, replicate, score or 0.0))
    first, second = (stats.row_means(per_run[run.pk]) for run in top)
    comparison = stats.compare_paired(first, second, alpha=alpha, seed=top[0].pk)
    verdict = comparison and {"run_ids": [run.pk for run in top], "alpha": alpha, **dataclasses.asdict(comparison)}
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


def failure_reasons(sweep: Sweep, *, limit: int = 10) -> list[tuple[str, int]]:
    """The sweep's distinct sample errors with how many samples each failed, most frequent first."""
    rows = (
        RunSample.objects.filter(sweep=sweep, status=RunSample.Status.FAILED)
        .values("error").annotate(n=Count("id")).order_by("-n", "error")[:limit]
    )  # fmt: skip
    return [(row["error"] or "(no error message)", row["n"]) for row in rows]


def run_samples(run: Run) -> QuerySet[RunSample]:
    return run.samples.prefetch_related("scores")


def varying_params(runs: list[Run]) -> list[str]:
    """The dotted parameter paths whose value differs between runs: what distinguishes them."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1] or keys



SPEC_JSON = ("pipeline", "dataset", "scorers", "parameter_space")


def experiment_search(*, user: Any, status: str | None = None, search: str | None = None) -> QuerySet[Experiment]:
    """The user's experiments, newest activity first, each with the id of its latest sweep."""
    latest = Sweep.objects.filter(experiment=OuterRef("pk")).order_by("-created_at").values("id")[:1]
    # A list never shows the spec, whose JSON (the dataset above all) can be megabytes.
    experiments = experiment_list(user=user).defer(*SPEC_JSON).annotate(latest_sweep_id=Subquery(latest))
    if status:
        experiments = experiments.filter(status=status)
    if search:
        experiments = experiments.filter(name__icontains=search)
    return experiments


def sweeps_by_id(ids: list[int | None]) -> dict[int, Sweep]:
    return Sweep.objects.defer("spec").in_bulk([i for i in ids if i is not None])  # spec: see SPEC_JSON


def sweep_of(experiment: Experiment, sweep_id: int | None) -> Sweep | None:
    """The experiment's sweep `sweep_id` (404 when it is another's), or its latest."""
    if sweep_id is None:
        return sweep_latest(experiment)
    return get_object_or_404(Sweep, pk=sweep_id, experiment=experiment)


def sweep_progress(sweep: Sweep) -> dict[str, Any]:
    """How far a sweep is, how long it may still take, and what may be done to it now."""
    from sweeps.services import ALLOWED  # the rules of transitions live with the transitions

    done = sweep.done
    eta = None
    if sweep.status == Sweep.Status.RUNNING and sweep.started_at and done:
        elapsed = (timezone.now() - sweep.started_at).total_seconds()
        eta = max(0.0, elapsed / done * (sweep.total - done))
    return {
        "progress": sweep.progress,
        "progress_text": formatting.progress(total=sweep.total, finished=done, cancelled=sweep.cancelled),
        "eta_seconds": eta,
        "allowed_actions": [action for action, states in ALLOWED.items() if sweep.status in states],
    }


RUN_ORDERS = {
    "-score": F("score").desc(nulls_last=True),
    "score": F("score").asc(nulls_last=True),
    "cost": F("cost_usd").asc(),
    "-cost": F("cost_usd").desc(),
    "latency": F("latency_ms").asc(nulls_last=True),
    "-latency": F("latency_ms").desc(nulls_last=True),
    "created": F("id").asc(),
    "-created": F("id").desc(),
    # Free runs (all from the cache, or a free model) first, then score per dollar, best first;
    # pruned runs last: they paid for part of the rows only, so their ratio flatters them.
    "-score_per_dollar": (
        Case(When(status=Run.Status.PRUNED, then=Value(1)), default=Value(0)).asc(),
        F("free").desc(), F("score_per_dollar").desc(nulls_last=True), F("score").desc(nulls_last=True),
    ),
}
SCORE_PER_DOLLAR = {
    "free": Case(When(cost_usd=0, score__gt=0, then=Value(1)), default=Value(0)),
    "score_per_dollar": Case(When(cost_usd__gt=0, then=F("score") / F("cost_usd")), default=None, output_field=FloatField()),
}
PARAM_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


def param_filter(expression: str) -> Q:
    """"params.temperature=0.2" -> runs whose config has that value (JSON-typed: 0.2 is a number,
    "0.2" in quotes a string). Raises ValueError naming what is wrong."""
    path, sep, raw = expression.partition("=")
    segments = path.split(".")
    if not sep or not all(PARAM_SEGMENT.match(s) for s in segments):
        raise ValueError(f"param {expression!r} must look like path=value, e.g. model=mock/echo or params.temperature=0.2")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # a bare word: a string
    if problems := value_problems(value):  # 1e999 is infinite, 1e30 beyond 64 bits: nothing matches them
        raise ValueError(f"param {path!r}: the value {problems[0].message}")
    return Q(**{"config__" + "__".join(segments) + "__exact": value})


def run_search(
    sweep: Sweep | None, *, status: str | None = None, order: str = "-score", params: list[str] = ()
) -> QuerySet[Run]:
    if sweep is None:
        return Run.objects.none()
    runs = sweep.runs.all()
    if status:
        runs = runs.filter(status=status)
    for expression in params:
        runs = runs.filter(param_filter(expression))
    ordering = RUN_ORDERS[order]
    return runs.annotate(**SCORE_PER_DOLLAR).order_by(*(ordering if isinstance(ordering, tuple) else (ordering,)), "id")


def pareto_run_ids(sweep: Sweep) -> list[int]:
    """The runs no other run beats on score, cost and latency at once, best score first. Pruned
    runs are left out: their cost and score are of part of the rows, not comparable."""
    runs = list(sweep.runs.exclude(status=Run.Status.PRUNED).values("id", "score", "cost_usd", "latency_ms"))
    points = [{"score": r["score"], "cost": r["cost_usd"], "latency": r["latency_ms"]} for r in runs]
    return [runs[i]["id"] for i in ranking.pareto_front(points, (ranking.SCORE, ranking.COST, ranking.LATENCY))]


SAMPLE_FIELDS = ("id", "row_index", "replicate", "status", "inputs", "stages", "output", "score", "tokens_in",
                 "tokens_out", "cost_usd", "latency_ms", "cache_hit", "error", "attempts", "truncated")  # fmt: skip


def sample_get(*, user: Any, sample_id: int, run_id: int | None = None) -> RunSample:
    """One of the user's samples (of that run, when given); another's is a 404."""
    samples = RunSample.objects.filter(run__experiment__owner=user)
    if run_id is not None:
        samples = samples.filter(run_id=run_id)
    return get_object_or_404(samples, pk=sample_id)


def run_sample_page(run: Run, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """A page of the run's samples as plain rows with their scores: two queries, and no model
    instances to build (the API answers them as JSON as they are)."""
    samples = list(run.samples.order_by("row_index", "replicate").values(*SAMPLE_FIELDS)[offset : offset + limit])
    scores: dict[int, list[dict[str, Any]]] = {sample["id"]: [] for sample in samples}
    for score in Score.objects.filter(sample_id__in=scores).order_by("scorer_index").values(
        "sample_id", "name", "value", "passed", "reason", "weight"
    ):
        scores[score.pop("sample_id")].append(score)
    return [{**sample, "scores": scores[sample["id"]]} for sample in samples]


# --- run page and compare page (views_runs.py) ---

# An experiment's spec and a sweep's snapshot of it (dataset included) can be megabytes of
# JSON; a run's page needs neither, and loading them would cost more than the page itself.
RUN_PAGE_DEFERRED = (*(f"experiment__{field}" for field in SPEC_JSON), "sweep__spec")


def run_page_get(*, user: Any, run_id: int) -> Run:
    runs = Run.objects.select_related("experiment", "sweep").defer(*RUN_PAGE_DEFERRED)
    return get_object_or_404(runs, pk=run_id, experiment__owner=user)


def sweep_pipeline(sweep_id: int) -> list[dict[str, Any]]:
    """The stages of a sweep's spec snapshot, read without the rest of the snapshot."""
    return Sweep.objects.filter(pk=sweep_id).values_list("spec__pipeline", flat=True).first() or []


def run_sample_search(run: Run, *, status: str | None = None, max_score: float | None = None) -> QuerySet[RunSample]:
    """A run's samples in dataset order, scores prefetched. `max_score` keeps the samples scoring
    at most that, failed ones included: they count as 0 in the run's score."""
    samples = run_samples(run)
    if status:
        samples = samples.filter(status=status)
    if max_score is not None:
        samples = samples.filter(Q(score__lte=max_score) | Q(status=RunSample.Status.FAILED))
    return samples


def runs_get(*, user: Any, run_ids: list[int]) -> list[Run]:
    """The user's runs with these ids, in the order asked; 404 when any is missing or another's."""
    found = Run.objects.filter(experiment__owner=user).in_bulk(run_ids)
    if len(found) != len(set(run_ids)):
        raise Http404("No such run")
    return [found[i] for i in run_ids]


def compare_row_keys(runs: list[Run]) -> QuerySet:
    """The (row_index, replicate) pairs that any of the runs has a sample for, in dataset order."""
    keys = RunSample.objects.filter(run__in=runs).values_list("row_index", "replicate")
    return keys.distinct().order_by("row_index", "replicate")


def compare_samples(runs: list[Run], keys: list[tuple[int, int]]) -> list[RunSample]:
    """The runs' samples for these (row_index, replicate) pairs, scores prefetched."""
    if not keys:
        return []
    # The pairs of a page are consecutive in dataset order: a range on row_index finds them,
    # and only the replicates of the first and last row may fall outside the page.
    samples = RunSample.objects.filter(run__in=runs, row_index__gte=keys[0][0], row_index__lte=keys[-1][0])
    wanted = set(keys)
    return [s for s in samples.prefetch_related("scores") if (s.row_index, s.replicate) in wanted]


RUN_FINISHED = (Run.Status.COMPLETED, Run.Status.FAILED, Run.Status.CANCELLED)


def scorer_means(runs: list[Run]) -> dict[int, list[dict[str, Any]]]:
    """Per run: each scorer's name, mean value and number of scored samples, in scorer order.

    Averaging every verdict of six runs of thousands of samples is the slowest part of the compare
    page, and a finished run's verdicts never change: its means are cached, keyed by when it
    finished, so paging through a comparison computes them once."""
    keys = {run.pk: f"sweeps:scorer-means:{run.pk}:{run.finished_at.isoformat()}"
            for run in runs if run.status in RUN_FINISHED and run.finished_at}  # fmt: skip
    cached = cache.get_many(list(keys.values()))
    means = {run.pk: cached[keys[run.pk]] for run in runs if keys.get(run.pk) in cached}
    missing = [run.pk for run in runs if run.pk not in means]
    if missing:
        means.update({run_id: [] for run_id in missing})
        rows = (
            Score.objects.filter(sample__run__in=missing)
            .values("sample__run_id", "scorer_index", "name")
            .annotate(mean=Avg("value"), n=Count("id"))
            .order_by("sample__run_id", "scorer_index")
        )
        for row in rows:
            means[row["sample__run_id"]].append({"name": row["name"], "mean": row["mean"], "n": row["n"]})
        cache.set_many({keys[i]: means[i] for i in missing if i in keys}, timeout=24 * 3600)
    return means


# --- experiment page (views.py): runs only, never samples, so it stays fast at any size ---


def experiment_page_get(*, user: Any, experiment_id: int) -> Experiment:
    """The experiment without its spec's JSON, which the page does not show."""
    return get_object_or_404(Experiment.objects.defer(*SPEC_JSON), pk=experiment_id, owner=user)


def sweep_latest_figures(experiment: Experiment) -> Sweep | None:
    """The latest sweep without its spec snapshot (which holds the whole dataset)."""
    return experiment.sweeps.defer("spec").order_by("-created_at").first()


RUN_FIGURES = ("id", "config", "status", "score", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "score_ci_low",
               "score_ci_high", "score_spread", "consistency", "samples_failed", "samples_truncated")  # fmt: skip


def run_ranking(sweep: Sweep) -> QuerySet[Run]:
    """A sweep's runs best first (unscored last), with what the leaderboard shows."""
    return sweep.runs.only(*RUN_FIGURES).order_by(*BEST_FIRST)


def runs_recently_finished(sweep: Sweep, *, limit: int) -> list[dict[str, Any]]:
    finished = sweep.runs.filter(finished_at__isnull=False).order_by("-finished_at", "-id")
    return list(finished.values("id", "status", "score", "finished_at")[:limit])


# --- experiment page: the leaderboard's sorts (issue 7, cost-aware ranking) ---

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

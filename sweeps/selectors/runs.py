"""Reads of runs and their samples, always scoped to the user asking: search and filters, a
run's page of samples, the rows the compare page sets side by side."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Case, Count, F, FloatField, Q, QuerySet, Sum, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404

from sweeps.engine.values import value_problems
from sweeps.models import Run, RunSample, Score, Sweep
from sweeps.selectors.experiments import SPEC_JSON


def run_get(*, user: Any, run_id: int) -> Run:
    return get_object_or_404(Run.objects.select_related("experiment", "sweep"), pk=run_id, experiment__owner=user)


def run_samples(run: Run) -> QuerySet[RunSample]:
    return run.samples.prefetch_related("scores")


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
    # The ratio is Run.score_per_dollar (engine/ranking.py) in SQL, so that a page can be sorted.
    "-score_per_dollar": (
        Case(When(status=Run.Status.PRUNED, then=Value(1)), default=Value(0)).asc(),
        Case(When(cost_usd=0, score__gt=0, then=Value(1)), default=Value(0)).desc(),
        Case(When(cost_usd__gt=0, then=F("score") / F("cost_usd")), output_field=FloatField()).desc(nulls_last=True),
        F("score").desc(nulls_last=True),
    ),
}


PARAM_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


def param_filter(expression: str) -> Q:
    """ "params.temperature=0.2" -> runs whose config has that value (JSON-typed: 0.2 is a number,
    "0.2" in quotes a string). Raises ValueError naming what is wrong."""
    path, sep, raw = expression.partition("=")
    segments = path.split(".")
    if not sep or not all(PARAM_SEGMENT.match(s) for s in segments):
        raise ValueError(
            f"param {expression!r} must look like path=value, e.g. model=mock/echo or params.temperature=0.2"
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # a bare word: a string
    if problems := value_problems(value):  # 1e999 is infinite, 1e30 beyond 64 bits: nothing matches them
        raise ValueError(f"param {path!r}: the value {problems[0].message}")
    return Q(**{"config__" + "__".join(segments) + "__exact": value})


def run_search(
    sweep: Sweep | None, *, status: str | None = None, order: str = "-score", params: Sequence[str] = ()
) -> QuerySet[Run]:
    if sweep is None:
        return Run.objects.none()
    runs = sweep.runs.all()
    if status:
        runs = runs.filter(status=status)
    for expression in params:
        runs = runs.filter(param_filter(expression))
    ordering = RUN_ORDERS[order]
    return runs.order_by(*(ordering if isinstance(ordering, tuple) else (ordering,)), "id")


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
    for score in (
        Score.objects.filter(sample_id__in=scores)
        .order_by("scorer_index")
        .values("sample_id", "name", "value", "passed", "reason", "weight")
    ):
        row: dict[str, Any] = dict(score)
        scores[row.pop("sample_id")].append(row)
    return [{**sample, "scores": scores[sample["id"]]} for sample in samples]


# An experiment's spec and a sweep's snapshot of it (dataset included) can be megabytes of
# JSON; a run's page needs neither, and loading them would cost more than the page itself.
RUN_PAGE_DEFERRED = (*(f"experiment__{field}" for field in SPEC_JSON), "sweep__spec")


def run_page_get(*, user: Any, run_id: int) -> Run:
    runs = Run.objects.select_related("experiment", "sweep").defer(*RUN_PAGE_DEFERRED)
    return get_object_or_404(runs, pk=run_id, experiment__owner=user)


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


def scorer_means(runs: Iterable[Run], *, live: bool = True) -> dict[int, list[dict[str, Any]]]:
    """Per run: each scorer's name, mean and number of samples counted, in scorer order. A
    closed run's were stored as it closed; a run in progress has its computed now, or none
    without `live` (a leaderboard, which shows no score either until a run closes, and must
    not read the samples of every run it lists)."""
    means = {run.pk: run.scorer_means for run in runs if run.finished_at or not live}
    open_runs = [run.pk for run in runs if live and not run.finished_at]
    return {**means, **(compute_scorer_means(open_runs) if open_runs else {})}


def compute_scorer_means(run_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each scorer's mean over the run's scored samples, where a failed sample (which no scorer
    saw) counts 0, as in the run's score: so the means are the parts of the weighted score."""
    counted = dict(
        RunSample.objects.filter(run_id__in=run_ids, status__in=RunSample.SCORED)
        .values("run_id")
        .annotate(n=Count("id"))
        .values_list("run_id", "n")
    )
    means: dict[int, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    totals = (
        Score.objects.filter(sample__run_id__in=run_ids, sample__status__in=RunSample.SCORED)
        .values("sample__run_id", "scorer_index", "name")
        .annotate(total=Sum("value"))
        .order_by("sample__run_id", "scorer_index")
    )
    for row in totals:
        n = counted.get(row["sample__run_id"], 0)
        mean = round(row["total"] / n, 9) if n else None  # rounded: sums come in no fixed order
        means[row["sample__run_id"]].append({"name": row["name"], "mean": mean, "n": n})
    return means


def run_configs(run_ids: Iterable[int]) -> dict[int, Any]:
    """Each run's configuration, by id (the executor's, for samples claimed from new runs)."""
    return dict(Run.objects.filter(id__in=list(run_ids)).values_list("id", "config"))


def row_scores(run_ids: Iterable[int], *, rows: Iterable[int] | None = None) -> dict[int, list[tuple[int, int, float]]]:
    """Per run, its scored samples as (row, replicate, score), where a failed sample scores 0, as
    in the run's own score: what early stopping and the verdict compare, row by row."""
    found: dict[int, list[tuple[int, int, float]]] = {run_id: [] for run_id in run_ids}
    samples = RunSample.objects.filter(run_id__in=list(found), status__in=RunSample.SCORED)
    if rows is not None:
        samples = samples.filter(row_index__in=list(rows))
    for run_id, row, replicate, score in samples.values_list("run_id", "row_index", "replicate", "score"):
        found[run_id].append((row, replicate, score or 0.0))
    return found

"""Reads, always scoped to the user asking."""

from __future__ import annotations

import json
import re
from typing import Any

from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone

from sweeps.engine.space import flatten
from sweeps.models import Experiment, Run, RunSample, Sweep


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


def leaderboard(sweep: Sweep, *, limit: int = 50) -> list[Run]:
    """Runs ranked by score (unscored last), best first."""
    return list(sweep.runs.order_by(F("score").desc(nulls_last=True), "id")[:limit])


def run_samples(run: Run) -> QuerySet[RunSample]:
    return run.samples.prefetch_related("scores")


def varying_params(runs: list[Run]) -> list[str]:
    """The dotted parameter paths whose value differs between runs: what distinguishes them."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1] or keys



def experiment_search(*, user: Any, status: str | None = None, search: str | None = None) -> QuerySet[Experiment]:
    """The user's experiments, newest activity first, each with the id of its latest sweep."""
    latest = Sweep.objects.filter(experiment=OuterRef("pk")).order_by("-created_at").values("id")[:1]
    experiments = experiment_list(user=user).annotate(latest_sweep_id=Subquery(latest))
    if status:
        experiments = experiments.filter(status=status)
    if search:
        experiments = experiments.filter(name__icontains=search)
    return experiments


def sweeps_by_id(ids: list[int | None]) -> dict[int, Sweep]:
    return Sweep.objects.in_bulk([i for i in ids if i is not None])


def sweep_of(experiment: Experiment, sweep_id: int | None) -> Sweep | None:
    """The experiment's sweep `sweep_id` (404 when it is another's), or its latest."""
    if sweep_id is None:
        return sweep_latest(experiment)
    return get_object_or_404(Sweep, pk=sweep_id, experiment=experiment)


def sweep_progress(sweep: Sweep) -> dict[str, Any]:
    """How far a sweep is, how long it may still take, and what may be done to it now."""
    from sweeps.services import ALLOWED  # the rules of transitions live with the transitions

    done = sweep.completed + sweep.failed + sweep.cancelled
    eta = None
    if sweep.status == Sweep.Status.RUNNING and sweep.started_at and done:
        elapsed = (timezone.now() - sweep.started_at).total_seconds()
        eta = max(0.0, elapsed / done * (sweep.total - done))
    return {
        "progress": done / sweep.total if sweep.total else 0.0,
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
    return runs.order_by(RUN_ORDERS[order], "id")


def run_sample_page(run: Run, *, limit: int, offset: int) -> list[RunSample]:
    return list(run_samples(run)[offset : offset + limit])

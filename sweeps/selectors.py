"""Reads, always scoped to the user asking."""

from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404

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


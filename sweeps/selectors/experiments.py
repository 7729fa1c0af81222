"""Reads of experiments, always scoped to the user asking."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from sweeps.models import Experiment, Sweep


def experiment_list(*, user: Any) -> QuerySet[Experiment]:
    return Experiment.objects.filter(owner=user)


def experiment_get(*, user: Any, experiment_id: int) -> Experiment:
    return get_object_or_404(Experiment, pk=experiment_id, owner=user)


def experiment_visible_to(user: Any, experiment_id: int) -> bool:
    if user is None or not user.is_authenticated:
        return False
    return Experiment.objects.filter(pk=experiment_id, owner=user).exists()


SPEC_JSON = ("spec",)


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


def experiment_page_get(*, user: Any, experiment_id: int) -> Experiment:
    """The experiment without its spec's JSON, which the page does not show."""
    return get_object_or_404(Experiment.objects.defer(*SPEC_JSON), pk=experiment_id, owner=user)

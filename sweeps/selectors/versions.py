"""Reads of spec versions: an experiment's list, one by number, and its diff against the one before."""

from __future__ import annotations

import difflib

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from sweeps.models import Experiment, SpecVersion, Sweep


def version_list(experiment: Experiment) -> QuerySet[SpecVersion]:
    """Newest first, with their authors and the ids of the sweeps that ran each, without texts."""
    ran = Prefetch("sweeps", queryset=Sweep.objects.only("pk", "spec_version_id", "status").order_by("pk"))
    return experiment.versions.defer("text", "spec").select_related("author").prefetch_related(ran).order_by("-number")


def version_latest(experiment: Experiment) -> SpecVersion | None:
    return experiment.versions.order_by("-number").first()


def version_get(experiment: Experiment, number: int) -> SpecVersion:
    """The experiment's version `number` (404 when it has none such)."""
    return get_object_or_404(SpecVersion.objects.select_related("author"), experiment=experiment, number=number)


def version_previous(version: SpecVersion) -> SpecVersion | None:
    return (
        SpecVersion.objects.filter(experiment_id=version.experiment_id, number__lt=version.number)
        .order_by("-number")
        .first()
    )


def version_diff(version: SpecVersion, previous: SpecVersion | None) -> list[str]:
    """A unified diff of the texts, previous to this one (every line added for the first)."""
    before = previous.text.splitlines() if previous else []
    return list(
        difflib.unified_diff(
            before,
            version.text.splitlines(),
            fromfile=f"version {previous.number}" if previous else "(none)",
            tofile=f"version {version.number}",
            lineterm="",
        )
    )

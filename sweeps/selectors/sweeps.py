"""Reads of sweeps: a user's, an experiment's latest, progress and failure reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count, F, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from sweeps.engine import formatting
from sweeps.models import Experiment, RunSample, Sweep
from sweeps.services.leases import LEASE, lease_expired, stale


def sweep_get(*, user: Any, sweep_id: int) -> Sweep:
    return get_object_or_404(
        with_version_number(Sweep.objects.select_related("experiment")), pk=sweep_id, experiment__owner=user
    )


def sweep_latest(experiment: Experiment) -> Sweep | None:
    return with_version_number(experiment.sweeps.order_by("-created_at")).first()


def failure_reasons(sweep: Sweep, *, limit: int = 10) -> list[tuple[str, int]]:
    """The sweep's distinct sample errors with how many samples each failed, most frequent first."""
    rows = (
        RunSample.objects.filter(sweep=sweep, status=RunSample.Status.FAILED)
        .values("error").annotate(n=Count("id")).order_by("-n", "error")[:limit]
    )  # fmt: skip
    return [(row["error"] or "(no error message)", row["n"]) for row in rows]


def latest_sweeps(experiments: Sequence[Experiment]) -> list[Sweep | None]:
    """Each experiment's latest sweep (`latest_sweep_id`, annotated by experiment_search), in one query."""
    ids = [getattr(e, "latest_sweep_id", None) for e in experiments]  # an annotation: the stubs cannot see it
    found = with_version_number(Sweep.objects.defer("spec")).in_bulk(
        [i for i in ids if i is not None]
    )  # spec: see SPEC_JSON
    return [None if i is None else found.get(i) for i in ids]


def with_version_number(sweeps: QuerySet[Sweep]) -> QuerySet[Sweep]:
    """Sweeps with the number of the spec version each ran, in the same query (not its text)."""
    return sweeps.select_related("spec_version").defer("spec_version__text", "spec_version__spec")


def sweep_of(experiment: Experiment, sweep_id: int | None) -> Sweep | None:
    """The experiment's sweep `sweep_id` (404 when it is another's), or its latest."""
    if sweep_id is None:
        return sweep_latest(experiment)
    return get_object_or_404(Sweep, pk=sweep_id, experiment=experiment)


def sweep_progress(sweep: Sweep) -> dict[str, Any]:
    """How far a sweep is, how long it may still take, and what may be done to it now."""
    from sweeps.services.sweeps import (
        ALLOWED,  # the rules of transitions live with the transitions
    )

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


def sweep_pipeline(sweep_id: int) -> list[dict[str, Any]]:
    """The stages of a sweep's spec snapshot, read without the rest of the snapshot."""
    return Sweep.objects.filter(pk=sweep_id).values_list("spec__pipeline", flat=True).first() or []


HISTORY = 50  # sweeps an experiment page lists


def sweep_history(experiment: Experiment) -> list[Sweep]:
    """The experiment's latest sweeps, newest first, without their spec snapshots; with who started
    each (and with which API token) and the spec version it ran, in the same query."""
    return list(
        experiment.sweeps.select_related("started_by", "started_token", "spec_version")
        .defer("spec", "spec_version__text", "spec_version__spec", "started_token__digest")
        .order_by("-created_at", "-pk")[:HISTORY]
    )


def sweep_shown(experiment: Experiment, asked: str | None, history: list[Sweep]) -> Sweep | None:
    """The sweep a page shows: the one `?sweep=` names (404 unless it is this experiment's), or
    the latest (the first of its `history`)."""
    if not asked:
        return history[0] if history else None
    if not (asked.isascii() and asked.isdigit() and len(asked) <= 18):  # beyond 64 bits: no such row
        raise Http404("No such sweep")
    return get_object_or_404(experiment.sweeps.defer("spec"), pk=int(asked))


def sweep_latest_figures(experiment: Experiment) -> Sweep | None:
    """The latest sweep without its spec snapshot (which holds the whole dataset)."""
    return experiment.sweeps.defer("spec").order_by("-created_at").first()


def sweep_scorer_names(sweep: Sweep) -> list[str]:
    """The names of the sweep's scorers, in order, read without the rest of its spec."""
    return scorer_names(sweep_page_facts(sweep)[0])


def scorer_names(scorers: list[dict[str, Any]]) -> list[str]:
    return [scorer.get("name", scorer.get("type", "?")) for scorer in scorers]


def sweep_page_facts(sweep: Sweep) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What the experiment page needs of a sweep's spec, read without the rest of it (the dataset
    above all): its scorers and its swept parameters, as written."""
    found = Sweep.objects.filter(pk=sweep.pk).values_list("spec__scorers", "spec__sweep__params").first()
    scorers, params = found or (None, None)
    return (scorers if isinstance(scorers, list) else []), (params if isinstance(params, dict) else {})


def sweeps_with_owner() -> QuerySet[Sweep]:
    """Sweeps that carry their experiment owner's id (`owner_id`), which the events need for the
    owner's group (the experiments list). Load sweeps that events are built from this way:
    events are built in async code too, where looking the owner up would be a query. Without the
    spec snapshot, which holds the whole dataset: read after every batch of results, a 100,000-row
    spec was decoded a thousand times a sweep (code that needs it loads it on first use)."""
    return Sweep.objects.annotate(owner_id=F("experiment__owner_id")).defer("spec")


def work_left(sweep_id: int, owner: str) -> str:
    """ "pending" when samples wait to be claimed, "held" when only other workers hold some, else ""."""
    samples = RunSample.objects.filter(sweep_id=sweep_id)
    if samples.filter(status=RunSample.Status.PENDING).exists():
        return "pending"
    if samples.filter(status=RunSample.Status.RUNNING).exclude(lease_owner=owner).exists():
        return "held"
    return ""


def sweep_status(sweep_id: int) -> str:
    return Sweep.objects.values_list("status", flat=True).get(id=sweep_id)


def sweeps_running_stale() -> QuerySet[Sweep]:
    """Running sweeps whose executors have been silent for a lease: maybe orphaned."""
    return Sweep.objects.filter(stale(), status=Sweep.Status.RUNNING)


def sweeps_with_abandoned_samples(status: str) -> QuerySet[Sweep]:
    """Sweeps in `status` that still have samples `running` under an expired lease."""
    abandoned = RunSample.objects.filter(lease_expired(), status=RunSample.Status.RUNNING)
    return Sweep.objects.filter(pk__in=abandoned.values("sweep_id"), status=status)


def sweeps_queued_for_a_lease() -> QuerySet[Sweep]:
    """Queued sweeps no worker has taken on for a lease: perhaps their jobs are gone."""
    return Sweep.objects.filter(status=Sweep.Status.QUEUED, updated_at__lt=timezone.now() - LEASE)


def sweep_by_id(sweep_id: int) -> Sweep:
    """Any user's sweep (Sweep.DoesNotExist when there is none): for the command line, which acts as the operator."""
    return Sweep.objects.get(pk=sweep_id)

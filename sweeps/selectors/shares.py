"""Reads for share links: the owner's list of them, and everything a link's holder may see.

A link's token is its id signed with SECRET_KEY and a salt of its own, so a token cannot be
guessed or changed into another link's, and no secret needs storing. Every failure (bad
signature, revoked link, deleted experiment or sweep, a run or sample outside the link's
scope) is the same 404: the holder learns nothing about what else exists.
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse

from sweeps.models import Run, RunSample, ShareLink, Sweep
from sweeps.selectors.experiments import SPEC_JSON
from sweeps.selectors.runs import RUN_PAGE_DEFERRED

SALT = "sweeps.share-link"
MAX_TOKEN_LENGTH = 200  # ours are ~30 characters; a longer one is not worth checking


def share_token(link: ShareLink) -> str:
    return signing.Signer(salt=SALT).sign(str(link.pk))


def share_path(link: ShareLink) -> str:
    return reverse("share_experiment", args=[share_token(link)])


def share_resolve(token: str) -> ShareLink:
    """The live link this token names, with its experiment (spec deferred) and sweep; else 404."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise Http404("No such share link")
    try:
        link_id = signing.Signer(salt=SALT).unsign(token)
    except signing.BadSignature:
        raise Http404("No such share link") from None
    if not (link_id.isascii() and link_id.isdigit()):
        raise Http404("No such share link")
    links = ShareLink.objects.select_related("experiment", "sweep").defer(
        *(f"experiment__{field}" for field in SPEC_JSON), "sweep__spec"
    )
    return get_object_or_404(links, pk=int(link_id), revoked_at__isnull=True)


def share_list(*, user: Any, experiment_id: int) -> QuerySet[ShareLink]:
    """The links to one of the user's experiments, revoked ones too (they say when)."""
    return ShareLink.objects.filter(experiment_id=experiment_id, experiment__owner=user).select_related("sweep")


def share_get(*, user: Any, share_id: int) -> ShareLink:
    """One of the user's links; another user's is a 404."""
    return get_object_or_404(ShareLink.objects.select_related("experiment"), pk=share_id, experiment__owner=user)


def share_sweeps(link: ShareLink, history: list[Sweep]) -> list[Sweep]:
    """The sweeps the link shows out of the experiment's `history`: all, or its own sweep alone."""
    if link.sweep_id is None:
        return history
    # Beyond the history's length: the link's own sweep, loaded with it.
    return [sweep for sweep in history if sweep.pk == link.sweep_id] or ([link.sweep] if link.sweep else [])


def share_check_sweep(link: ShareLink, asked: str | None) -> None:
    """`?sweep=` on a sweep-scoped link may only name that sweep."""
    if asked and link.sweep_id is not None and asked != str(link.sweep_id):
        raise Http404("No such sweep")


def share_runs(link: ShareLink) -> QuerySet[Run]:
    runs = Run.objects.filter(experiment_id=link.experiment_id)
    return runs.filter(sweep_id=link.sweep_id) if link.sweep_id is not None else runs


def share_run_get(link: ShareLink, run_id: int) -> Run:
    runs = share_runs(link).select_related("experiment", "sweep").defer(*RUN_PAGE_DEFERRED)
    return get_object_or_404(runs, pk=run_id)


def share_sample_get(link: ShareLink, sample_id: int) -> RunSample:
    return get_object_or_404(RunSample.objects.filter(run__in=share_runs(link)), pk=sample_id)

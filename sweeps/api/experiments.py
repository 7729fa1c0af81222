"""Experiments: create from a spec, list, read, edit, delete; and everything read per experiment
(its sweeps, runs, leaderboard and export)."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, StreamingHttpResponse
from ninja import Query, Router, Status
from ninja.errors import HttpError

from sweeps.api.auth import ApiRequest, request_token
from sweeps.api.schemas import (
    MAX_PAGE,
    Conflict,
    ExperimentDetail,
    ExperimentPage,
    ExperimentStatus,
    ExportFormat,
    Leaderboard,
    Message,
    Page,
    QueryText,
    RunOrder,
    RunPage,
    RunStatus,
    SpecBody,
    SweepOut,
    SweepPage,
    VersionDetail,
    VersionPage,
    spec_body_docs,
)  # fmt: skip
from sweeps.api.serialize import experiment_out, leaderboard_out, runs_out, sweep_out, version_out
from sweeps.models import Experiment, Sweep
from sweeps.selectors import export
from sweeps.selectors.experiments import experiment_get, experiment_search
from sweeps.selectors.leaderboard import leaderboard as ranked_runs
from sweeps.selectors.runs import run_get, run_search
from sweeps.selectors.sweeps import latest_sweeps, sweep_latest, sweep_of, with_version_number
from sweeps.selectors.versions import version_diff, version_get, version_list, version_previous
from sweeps.services.experiments import (
    experiment_create,
    experiment_delete,
    experiment_update,
)
from sweeps.services.sweeps import sweep_start

router = Router(tags=["experiments"])
ERRORS = {401: Message, 404: Message}


def detail(experiment) -> dict:
    return experiment_out(experiment, sweep_latest(experiment), spec=True)


@router.get("", response={200: ExperimentPage, **ERRORS})
def list_experiments(
    request: ApiRequest, page: Query[Page], status: ExperimentStatus | None = None, search: QueryText | None = None
):
    """The user's experiments, most recently active first; `search` matches the name."""
    experiments = experiment_search(user=request.auth, status=status, search=search)
    items = list(experiments[page.offset : page.offset + page.limit])
    latest = latest_sweeps(items)
    return {"items": [experiment_out(e, s) for e, s in zip(items, latest, strict=True)], "count": experiments.count()}


@router.post("", response={201: ExperimentDetail, 413: Message, 422: dict, **ERRORS}, openapi_extra=spec_body_docs())
def create_experiment(request: ApiRequest, spec: SpecBody):
    """Create an experiment from a spec. Nothing is saved when the spec is invalid: the 422 names
    every bad field by its path."""
    experiment = experiment_create(owner=request.auth, data=spec, source=Experiment.Source.API, text=body_text(request))
    return Status(201, detail(experiment))


def body_text(request: ApiRequest) -> str | None:
    """The JSON body as it was sent, kept as the version's text (None: written out instead)."""
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError:  # ninja parsed it anyway (a BOM, say): the normal form will do
        return None


@router.get("/{int:experiment_id}", response={200: ExperimentDetail, **ERRORS})
def get_experiment(request: ApiRequest, experiment_id: int):
    return detail(experiment_get(user=request.auth, experiment_id=experiment_id))


@router.patch(
    "/{int:experiment_id}",
    response={200: ExperimentDetail, 409: Message, 413: Message, 422: dict, **ERRORS},
    openapi_extra=spec_body_docs(partial=True),
)
def update_experiment(request: ApiRequest, experiment_id: int, spec: SpecBody):
    """Replace the spec's top-level keys given in the body. Refused (409) while a sweep runs; while
    one is paused, only name, description, budget, max_concurrency and fail_fast may change."""
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    data = {**experiment.spec, **spec}
    return detail(experiment_update(experiment=experiment, data=data, author=request.auth, via=Experiment.Source.API))


@router.delete("/{int:experiment_id}", response={204: None, 409: Message, **ERRORS})
def delete_experiment(request: ApiRequest, experiment_id: int):
    """Delete the experiment with its sweeps, runs, samples and scores (refused while it runs)."""
    experiment_delete(experiment=experiment_get(user=request.auth, experiment_id=experiment_id))
    return Status(204, None)


@router.post("/{int:experiment_id}/sweeps", response={202: SweepOut, 409: Message, **ERRORS})
def start_sweep(request: ApiRequest, experiment_id: int):
    """Start a sweep of the experiment's parameter space (409 while another is active or paused)."""
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    return Status(
        202,
        sweep_out(
            sweep_start(
                experiment=experiment, started_by=request.auth, via=Experiment.Source.API, token=request_token(request)
            )
        ),
    )


@router.get("/{int:experiment_id}/sweeps", response={200: SweepPage, **ERRORS})
def list_sweeps(request: ApiRequest, experiment_id: int, page: Query[Page]):
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    sweeps = with_version_number(experiment.sweeps.order_by("-created_at"))
    return {"items": [sweep_out(s) for s in sweeps[page.offset : page.offset + page.limit]], "count": sweeps.count()}


@router.get("/{int:experiment_id}/runs", response={200: RunPage, 422: dict, **ERRORS})
def list_runs(
    request: ApiRequest,
    experiment_id: int,
    page: Query[Page],
    status: RunStatus | None = None,
    order: RunOrder = "-score",
    sweep: int | None = None,
    param: Query[list[QueryText] | None] = None,
):
    """The runs of the latest sweep (or `sweep`), ordered, filtered by status and by parameter
    values: `param=model=mock/echo&param=params.temperature=0.2` (values are JSON when they parse)."""
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    try:
        runs = run_search(sweep_of(experiment, sweep), status=status, order=order, params=param or [])
    except ValueError as e:
        raise HttpError(422, str(e)) from e
    return {"items": runs_out(list(runs[page.offset : page.offset + page.limit])), "count": runs.count()}


@router.get("/{int:experiment_id}/leaderboard", response={200: Leaderboard, **ERRORS})
def leaderboard(
    request: ApiRequest, experiment_id: int, sweep: int | None = None, limit: int = Query(50, ge=1, le=MAX_PAGE)
):
    """Runs ranked by score, best first, with the parameters that distinguish them."""
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    chosen = sweep_of(experiment, sweep)
    return leaderboard_out(chosen, ranked_runs(chosen, limit=limit) if chosen else [])


@router.get("/{int:experiment_id}/export", response={200: None, 404: Message, 401: Message, 409: Conflict})
def export_results(
    request: ApiRequest, experiment_id: int, format: ExportFormat = "csv", sweep: int | None = None,
    run: int | None = None,
):  # fmt: skip
    """Every sample of the latest sweep (or `sweep`; or only `run`'s) as CSV or JSON Lines, streamed."""
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    chosen: Sweep | None
    if run is not None:
        chosen = run_get(user=request.auth, run_id=run).sweep
        if chosen.experiment_id != experiment.pk:
            raise Http404
    else:
        chosen = sweep_of(experiment, sweep)
    if chosen is None:
        raise HttpError(409, "This experiment has no sweep yet: start one, then export its results.")
    rows = export.EXPORTERS[format](chosen, run)
    # Under ASGI (daphne) Django would read a plain iterator whole before sending a byte.
    streamed = export.astream(rows) if isinstance(request, ASGIRequest) else rows
    response = StreamingHttpResponse(streamed, content_type=export.FORMATS[format])
    response["Content-Disposition"] = f'attachment; filename="{export.export_filename(chosen, format, run)}"'
    return response


@router.get("/{int:experiment_id}/versions", response={200: VersionPage, **ERRORS})
def list_versions(request: ApiRequest, experiment_id: int, page: Query[Page]):
    """The spec's versions, newest first: who saved each, when, how, and which sweeps ran it."""
    versions = version_list(experiment_get(user=request.auth, experiment_id=experiment_id))
    items = versions[page.offset : page.offset + page.limit]
    return {"items": [version_out(v) for v in items], "count": versions.count()}


@router.get("/{int:experiment_id}/versions/{int:number}", response={200: VersionDetail, **ERRORS})
def get_version(request: ApiRequest, experiment_id: int, number: int):
    """One version: its text as submitted, its normal form, and a unified diff against the one before."""
    version = version_get(experiment_get(user=request.auth, experiment_id=experiment_id), number)
    diff = "\n".join(version_diff(version, version_previous(version)))
    return {**version_out(version), "text": version.text, "spec": version.spec, "diff": diff}

"""Creating, editing, duplicating and deleting experiments, and the pre-flight estimate.

The spec is validated by the same services as the API and the CLI. On any error the page comes
back with the text as typed and every error by field path; nothing is saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from sweeps.engine.errors import FieldError, SpecError
from sweeps.engine.spec import dump_spec_text
from sweeps.models import Experiment
from sweeps.selectors import estimates
from sweeps.selectors.experiments import experiment_get
from sweeps.selectors.versions import version_latest
from sweeps.services import ServiceError
from sweeps.services import experiments as experiment_services
from sweeps.services.experiments import (
    experiment_create,
    experiment_update,
    validate_spec,
)
from sweeps.web.editor_text import editor_text, large_dataset
from sweeps.web.spec_submission import DATASET_TYPES, SpecSubmission, error_lines

EXAMPLE_SPEC = settings.BASE_DIR / "examples" / "ticket-triage.yaml"


@login_required
@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return editor(request, SpecSubmission(EXAMPLE_SPEC.read_text(encoding="utf-8")))
    submission = SpecSubmission.from_request(request.POST, request.FILES)
    if request.POST.get("action") != "save":
        return editor(request, submission, **checked_estimate(submission))
    try:
        experiment = experiment_create(owner=request.user, data=submission.spec_data(), text=submission.text)
    except SpecError as e:
        return editor(request, submission, errors=e.errors)
    messages.success(request, f"Experiment “{experiment.name}” created: start a sweep when you are ready.")
    return redirect("experiment_detail", experiment_id=experiment.pk)


@login_required
@require_http_methods(["GET", "POST"])
def experiment_edit(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_get(user=request.user, experiment_id=experiment_id)
    if request.method == "GET":
        version = version_latest(experiment)
        text, summary = editor_text(version) if version else (dump_spec_text(experiment.spec), None)
        kept_from = experiment.spec if summary else None
        return editor(request, SpecSubmission(text, kept_from=kept_from), experiment=experiment)
    submission = SpecSubmission.from_request(request.POST, request.FILES, saved=experiment.spec)
    if request.POST.get("action") != "save":
        return editor(request, submission, experiment=experiment, **checked_estimate(submission))
    try:
        experiment_update(
            experiment=experiment, data=submission.spec_data(), text=submission.text, author=request.user,
            via=Experiment.Source.WEB,
        )  # fmt: skip
    except SpecError as e:
        return editor(request, submission, experiment=experiment, errors=e.errors)
    except ServiceError as e:  # e.g. a sweep is running: the spec is fine, the moment is not
        return editor(request, submission, experiment=experiment, errors=[FieldError("", str(e))])
    messages.success(request, f"Experiment “{experiment.name}” saved.")
    return redirect("experiment_detail", experiment_id=experiment.pk)


@login_required
@require_POST
def experiment_estimate(request: HttpRequest) -> HttpResponse:
    """The estimate (or the errors) alone, for the editor's script to swap in without a reload."""
    saved = None
    if (experiment_id := request.POST.get("experiment_id", "")).isdigit():  # editing: its dataset may be kept
        saved = experiment_get(user=request.user, experiment_id=int(experiment_id)).spec
    submission = SpecSubmission.from_request(request.POST, request.FILES, saved=saved)
    return render(request, "sweeps/editor_feedback.html", feedback(submission, **checked_estimate(submission)))


@login_required
@require_POST
def experiment_duplicate(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_get(user=request.user, experiment_id=experiment_id)
    try:
        copy = experiment_services.experiment_duplicate(experiment=experiment)
    except ServiceError as e:
        messages.error(request, str(e))
        return redirect("experiment_detail", experiment_id=experiment.pk)
    messages.success(request, f"Duplicated as “{copy.name}”: change what you like, then save.")
    return redirect("experiment_edit", experiment_id=copy.pk)


@login_required
@require_http_methods(["GET", "POST"])
def experiment_delete(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_get(user=request.user, experiment_id=experiment_id)
    if request.method == "GET":
        return render(request, "sweeps/editor_delete.html", {"experiment": experiment})
    try:
        experiment_services.experiment_delete(experiment=experiment)
    except ServiceError as e:
        messages.error(request, str(e))
        return redirect("experiment_detail", experiment_id=experiment.pk)
    messages.success(request, f"Experiment “{experiment.name}” deleted.")
    return redirect("experiment_list")


# --- helpers ---


def checked_estimate(submission: SpecSubmission) -> dict[str, Any]:
    """The estimate of a valid spec, or its errors; saves nothing and calls no provider."""
    try:
        spec = validate_spec(submission.spec_data())
    except SpecError as e:
        return {"errors": e.errors}
    return {"estimate": estimates.estimate_spec(spec)}


def feedback(submission: SpecSubmission, *, errors: Sequence[FieldError] = (), estimate: Any = None) -> dict[str, Any]:
    """What the page shows under the heading: each error with its line in the text, or the estimate."""
    located = error_lines(submission.text, list(errors), dataset_from_file=submission.dataset_from_file)
    return {"errors": located, "estimate": estimate}


def editor(
    request: HttpRequest, submission: SpecSubmission, *, experiment: Experiment | None = None, **results: Any
) -> HttpResponse:
    context = {
        "experiment": experiment,
        "submission": submission,
        "dataset_types": DATASET_TYPES,
        "dataset_summary": large_dataset(submission.kept_from) if submission.kept_from else None,
        **feedback(submission, **results),
    }
    return render(request, "sweeps/editor.html", context)

"""An experiment's spec versions (who changed it, when, through what, and which sweeps ran each),
one version with its diff against the one before, and the dataset as a file to download."""

from __future__ import annotations

import csv
import io
import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from sweeps.engine.datasets import dataset_columns
from sweeps.selectors.experiments import experiment_get
from sweeps.selectors.export import csv_cell
from sweeps.selectors.versions import version_diff, version_get, version_list, version_previous

VERSIONS_PER_PAGE = 50


@login_required
def experiment_versions(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_get(user=request.user, experiment_id=experiment_id)
    page = Paginator(version_list(experiment), VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"experiment": experiment, "page": page}
    return render(request, "sweeps/versions.html", context)


@login_required
def experiment_version(request: HttpRequest, experiment_id: int, number: int) -> HttpResponse:
    experiment = experiment_get(user=request.user, experiment_id=experiment_id)
    version = version_get(experiment, number)
    previous = version_previous(version)
    diff = [(diff_kind(line), line) for line in version_diff(version, previous)]
    context = {"experiment": experiment, "version": version, "previous": previous, "diff": diff}
    return render(request, "sweeps/version.html", context)


def diff_kind(line: str) -> str:
    """The class a diff line is coloured by."""
    if line.startswith(("---", "+++")):
        return "file"
    return {"+": "added", "-": "removed", "@": "hunk"}.get(line[:1], "same")


@login_required
def experiment_dataset(request: HttpRequest, experiment_id: int, fmt: str) -> HttpResponse:
    """The experiment's dataset as CSV (values that are not text as JSON, a cell a spreadsheet would
    run as a formula prefixed with ') or JSON Lines."""
    experiment = experiment_get(user=request.user, experiment_id=experiment_id)
    rows = experiment.spec.get("dataset") or []
    if fmt == "jsonl":
        body, content_type = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "application/x-ndjson"
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=dataset_columns(rows))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: csv_cell(value) for key, value in row.items()})  # formulas neutralised, as in exports
        body, content_type = out.getvalue(), "text/csv"
    else:
        raise Http404("The dataset downloads as csv or jsonl")
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="experiment-{experiment.pk}-dataset.{fmt}"'
    return response

"""PUT /experiments/{id}/dataset: replace an experiment's rows with a CSV or JSON Lines body,
read line by line as it is given (every error names its line) within the request size limit."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from ninja import Router, Schema
from ninja.errors import HttpError

from sweeps.api.auth import ApiRequest
from sweeps.api.schemas import Message
from sweeps.engine.datasets import DatasetError, format_of, read_lines
from sweeps.engine.errors import SpecError
from sweeps.selectors.experiments import experiment_get
from sweeps.services.experiments import experiment_set_dataset

router = Router(tags=["experiments"])
TYPES = ("text/csv", "application/x-ndjson", "application/jsonl", "application/json")
BODY_DOCS = {
    "requestBody": {
        "required": True,
        "description": "CSV with a header row, JSON Lines (one object per line), or one JSON array of objects",
        "content": {kind: {"schema": {"type": "string"}} for kind in TYPES},
    }
}


class DatasetOut(Schema):
    rows: int
    columns: list[str]
    sha256: str


@router.put(
    "/{int:experiment_id}/dataset",
    response={200: DatasetOut, 401: Message, 404: Message, 409: Message, 413: Message, 415: Message, 422: dict},
    openapi_extra=BODY_DOCS,
)
def replace_dataset(request: ApiRequest, experiment_id: int):
    """Replace the dataset with the rows of the body (`Content-Type: text/csv` or
    `application/x-ndjson`; `application/json` for an array). The spec is validated with the new
    rows as on any edit (409 while a sweep is active); its `sources.dataset` records the body's
    SHA-256. Nothing changes when a row is bad: the 422 names the line."""
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type not in TYPES:
        raise HttpError(415, f"send the rows as {', '.join(TYPES)}; got {content_type or 'no Content-Type'}")
    try:
        dataset = read_lines(format_of(content_type), body_lines(request))
    except DatasetError as e:
        raise SpecError.at("dataset", str(e)) from None
    experiment_set_dataset(
        experiment=experiment, dataset=dataset, source=f"request body ({content_type})", author=request.auth
    )
    return {"rows": len(dataset.rows), "columns": dataset.columns, "sha256": dataset.sha256}


def body_lines(request: ApiRequest) -> Iterator[bytes]:
    """The body's lines as they are read; RequestDataTooBig (a 413) past the size limit."""
    limit = settings.PROMPTLOOPER_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise RequestDataTooBig("body over the limit")
    read = 0
    while line := request.readline(64 * 1024):
        read += len(line)
        if read > limit:
            raise RequestDataTooBig("body over the limit")
        yield line

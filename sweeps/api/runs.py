"""One run with its samples: inputs, every stage's output, scores with reasons."""

from __future__ import annotations

from django.http import HttpResponse
from ninja import Query, Router, Status

from sweeps.api.auth import ApiRequest
from sweeps.api.schemas import Message, Page, QueryText, RunDetail
from sweeps.api.serialize import runs_out
from sweeps.selectors.ratings import sample_ratings
from sweeps.selectors.runs import run_get, run_sample_page, sample_get
from sweeps.services import text_limits
from sweeps.services.ratings import rating_out

router = Router(tags=["runs"])


@router.get("/{int:run_id}", response={200: RunDetail, 401: Message, 404: Message})
def get_run(request: ApiRequest, run_id: int, page: Query[Page]):
    """The run and a page of its samples (`limit`, `offset`), in dataset order."""
    run = run_get(user=request.auth, run_id=run_id)
    samples = run_sample_page(run, limit=page.limit, offset=page.offset)
    ratings = sample_ratings(user=request.auth, sample_ids=[sample["id"] for sample in samples])
    for sample in samples:  # long texts are cut; `cut` names them, and .../text gives each in full
        sample["cut"] = text_limits.cut_for_showing(sample)
        sample["rating"] = rating_out(ratings.get(sample["id"]))
    [out] = runs_out([run])
    return {**out, "samples": {"items": samples, "count": run.samples_total}}


@router.get("/{int:run_id}/samples/{int:sample_id}/text", response={200: str, 401: Message, 404: Message})
def get_sample_text(request: ApiRequest, run_id: int, sample_id: int, part: QueryText = "output"):
    """One stored text of a sample in full, as text/plain: `part` is `output`, `inputs.<column>`
    or `stages.<i>.system|prompt|output` (what a sample's `cut` list names)."""
    sample = sample_get(user=request.auth, sample_id=sample_id, run_id=run_id)
    text = text_limits.full_text(sample, part)
    if text is None:
        return Status(
            404, {"detail": f"no text {part!r}: use output, inputs.<column> or stages.<i>.system|prompt|output"}
        )
    return HttpResponse(text, content_type="text/plain; charset=utf-8")

"""One run with its samples: inputs, every stage's output, scores with reasons."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router

from sweeps import selectors
from sweeps.api.schemas import Message, Page, RunDetail, RunOut
from sweeps.engine.ranking import score_per_dollar

router = Router(tags=["runs"])


@router.get("/{int:run_id}", response={200: RunDetail, 401: Message, 404: Message})
def get_run(request: HttpRequest, run_id: int, page: Query[Page]):
    """The run and a page of its samples (`limit`, `offset`), in dataset order."""
    run = selectors.run_get(user=request.auth, run_id=run_id)
    samples = selectors.run_sample_page(run, limit=page.limit, offset=page.offset)
    run.score_per_dollar = score_per_dollar(run.score, run.cost_usd)  # as the runs list annotates it
    return {**RunOut.from_orm(run).model_dump(), "samples": {"items": samples, "count": run.samples_total}}

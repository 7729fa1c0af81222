"""A person's 👍/👎 on one of their samples: the same service as the run and compare pages."""

from __future__ import annotations

from ninja import Router, Status

from sweeps.api.auth import ApiRequest
from sweeps.api.schemas import Message, RatingIn, RatingOut
from sweeps.services.ratings import rating_clear, rating_out, rating_set

router = Router(tags=["samples"])
ERRORS = {401: Message, 404: Message}


@router.put("/{int:sample_id}/rating", response={200: RatingOut, **ERRORS})
def put_rating(request: ApiRequest, sample_id: int, rating: RatingIn):
    """Rate the sample (again): the newest rating wins. Another user's sample is a 404."""
    return rating_out(rating_set(user=request.auth, sample_id=sample_id, value=rating.value, note=rating.note))


@router.delete("/{int:sample_id}/rating", response={204: None, **ERRORS})
def delete_rating(request: ApiRequest, sample_id: int):
    """Take the rating back (none to take back is fine too)."""
    rating_clear(user=request.auth, sample_id=sample_id)
    return Status(204, None)

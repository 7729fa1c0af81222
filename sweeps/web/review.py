"""A person's 👍/👎 on a sample, from the run and compare pages (static/sweeps/review.js), or
from a plain form when the script is off. Thin: services/ratings.py decides."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from sweeps.services.ratings import RatingProblem, rating_clear, rating_out, rating_set

CLEAR = "clear"


@require_POST
@login_required
def sample_rating(request: HttpRequest, sample_id: int) -> HttpResponse:
    """Set (`value` up or down, `note`) or take back (`value` clear) the user's rating, from a
    JSON body or a form. Answers the new state as JSON, or sends a form back where it came from."""
    wants_json = request.content_type == "application/json" or "application/json" in request.headers.get("Accept", "")
    try:
        fields = read_fields(request)
        if fields.get("value") == CLEAR:
            rating_clear(user=request.user, sample_id=sample_id)
            state = None
        else:
            state = rating_out(
                rating_set(user=request.user, sample_id=sample_id, value=fields.get("value"),
                           note=fields.get("note", ""))
            )  # fmt: skip
    except RatingProblem as e:
        return JsonResponse({"detail": [{"field": e.field, "msg": e.message}]}, status=422)
    if wants_json:
        return JsonResponse({"sample_id": sample_id, "rating": state})
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, require_https=request.is_secure()):
        back = reverse("experiment_list")
    return HttpResponseRedirect(f"{back}#sample-{sample_id}")


def read_fields(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        return {"value": request.POST.get("value"), "note": request.POST.get("note", "")}
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise RatingProblem("body", "is not valid JSON") from e
    if not isinstance(body, dict):
        raise RatingProblem("body", 'must be an object like {"value": "up", "note": ""}')
    return body

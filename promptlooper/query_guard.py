"""Query strings with text no page or route can use (NUL, lone surrogates) get a 400 before any
view runs: the database would refuse them with an error, a 500, deep inside a search."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from promptlooper.middleware import API_PREFIX
from sweeps.engine.values import text_problem


class RefuseUnusableQueryText:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for key, values in request.GET.lists():
            for text in (key, *values):
                if problem := text_problem(text):
                    return refused(request, f"The query parameter {key!r} {problem}.")
        return self.get_response(request)


def refused(request: HttpRequest, message: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": message}, status=400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")

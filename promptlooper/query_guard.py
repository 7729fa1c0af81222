"""Requests no page or route can answer are refused before any view runs, where the database
would fail on them with a 500 deep inside a query: query strings with text it cannot store (NUL,
lone surrogates) get a 400, and a path naming an id beyond 64 bits (no row has one; SQLite
raises OverflowError on it) gets a 404."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound, JsonResponse

from promptlooper.middleware import API_PREFIX
from sweeps.engine.values import INT64_MAX, text_problem

# Only what a URL converter accepts as an id: str.isdigit() is also true of "¹" and "٣", and
# int("¹") raises, which was a 500 on /api/v1/runs/¹.
ASCII_DIGITS = re.compile(r"[0-9]+")


class RefuseUnusableQueryText:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for key, values in request.GET.lists():
            for text in (key, *values):
                if problem := text_problem(text):
                    return refused(request, f"The query parameter {key!r} {problem}.")
        if any(ASCII_DIGITS.fullmatch(segment) and int(segment) > INT64_MAX for segment in request.path.split("/")):
            return not_found(request)
        return self.get_response(request)


def refused(request: HttpRequest, message: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": message}, status=400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def not_found(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not Found"}, status=404)
    return HttpResponseNotFound("Not Found", content_type="text/plain; charset=utf-8")

"""API clients get JSON for every error, including the ones Django answers before a route runs
(unknown path, wrong method, bad host) and any unexpected exception: never an HTML page or a
traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
log = logging.getLogger("promptlooper.api")


class ApiErrorsAsJson:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400 or is_json(response):
            return response
        return JsonResponse(
            {"detail": describe(response.status_code)}, status=response.status_code, headers=kept(response)
        )

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return internal_error(request) if request.path.startswith(API_PREFIX) else None


def internal_error(request: HttpRequest) -> JsonResponse:
    """The answer to an unexpected exception, from a route (ninja's handler) or around one (above):
    logged with its traceback for the administrator, and never shown to the client."""
    log.exception("API %s %s failed", request.method, request.path)
    return JsonResponse({"detail": "Internal error; it was logged for the administrator."}, status=500)


def is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


def describe(status: int) -> str:
    if status == 404:
        return "Not found: no such API route. See /api/v1/docs for the routes."
    if status == 405:
        return "Method not allowed on this route. See /api/v1/docs for the routes."
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "Error."


def kept(response: HttpResponse) -> dict[str, str]:
    return {h: response[h] for h in ("Allow", "Retry-After") if h in response}

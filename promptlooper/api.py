"""The JSON API at /api/v1/: one NinjaAPI, a router per area, and the one place where domain
errors become HTTP statuses. Every error is JSON a person can act on."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.parser import Parser

from promptlooper.middleware import internal_error
from sweeps.api import datasets, experiments, notifications, providers, runs, samples, shares, sweeps
from sweeps.api.auth import BearerToken, BrowserSession
from sweeps.engine.errors import SpecError
from sweeps.engine.spec import load_spec_text
from sweeps.services import ServiceError
from sweeps.services.sweeps import TransitionError

UNAUTHENTICATED = (
    "Authentication required: send `Authorization: Bearer <token>` with a valid, unrevoked token "
    "(create one with `python manage.py create_api_token USER` or on the Tokens page), or log in."
)


def login_or_token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The docs and the OpenAPI schema, like every route, are for signed-in users and tokens."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated or BearerToken()(request) is not None:
            return view(request, *args, **kwargs)
        if request.path.endswith(".json"):
            return JsonResponse({"detail": UNAUTHENTICATED}, status=401)
        return redirect_to_login(request.get_full_path())

    return guarded


class JsonOrYaml(Parser):
    """JSON bodies, and YAML ones sent as application/yaml: a CI job can post its spec file as it
    is, with nothing but curl."""

    YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

    def parse_body(self, request: HttpRequest) -> Any:
        if request.content_type in self.YAML_TYPES:
            try:
                return load_spec_text(request.body.decode())
            except UnicodeDecodeError as e:
                raise SpecError.at("", "the body is not UTF-8 text") from e
        return super().parse_body(request)


api = NinjaAPI(
    title="PromptLooper",
    version="1",
    description="Prompt experiments for scripts and CI. Authenticate with `Authorization: Bearer <token>` "
    "(`python manage.py create_api_token USER`, or the Tokens page) or a browser session with CSRF.",
    urls_namespace="api",
    auth=[BearerToken(), BrowserSession()],
    parser=JsonOrYaml(),
    docs_decorator=login_or_token_required,
)
api.add_router("/experiments", experiments.router)
api.add_router("/experiments", datasets.router)
api.add_router("/sweeps", sweeps.router)
api.add_router("/runs", runs.router)
api.add_router("/providers", providers.router)
api.add_router("/experiments", shares.experiment_router)
api.add_router("/shares", shares.router)
api.add_router("/samples", samples.router)
api.add_router("/notifications", notifications.router)


def spec_error_loc(path: str) -> list[str | int]:
    """ "pipeline[0].prompt" -> ["body", "pipeline", 0, "prompt"]."""
    parts = re.findall(r"\[(\d+)\]|([^.\[\]]+)", path)
    return ["body", *(int(index) if index else name for index, name in parts)]


@api.exception_handler(SpecError)
def invalid_spec(request: HttpRequest, exc: SpecError) -> HttpResponse:
    detail = [
        {"loc": spec_error_loc(e.path), "field": e.path, "msg": e.message, "type": "invalid_spec"} for e in exc.errors
    ]
    return api.create_response(request, {"detail": detail}, status=422)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # ninja turns any body it cannot parse into a bare 400; say what is wrong with it instead.
    cause = exc.__cause__
    if isinstance(cause, SpecError):
        return invalid_spec(request, cause)
    if isinstance(cause, json.JSONDecodeError):
        message = f"The body is not valid JSON (line {cause.lineno}, column {cause.colno}: {cause.msg})."
        return api.create_response(request, {"detail": message}, status=400)
    return api.create_response(request, {"detail": exc.message}, status=exc.status_code)


@api.exception_handler(TransitionError)
def not_allowed_now(request: HttpRequest, exc: TransitionError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc), "allowed": exc.allowed}, status=409)


@api.exception_handler(ServiceError)
def refused(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=409)


@api.exception_handler(AuthenticationError)
def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(request, {"detail": UNAUTHENTICATED}, status=401)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, {"detail": "Not found."}, status=404)


@api.exception_handler(RequestDataTooBig)
def too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    message = f"The request body is larger than {limit:,} bytes (PROMPTLOOPER_MAX_BODY_BYTES); send a smaller dataset."
    return api.create_response(request, {"detail": message}, status=413)


@api.exception_handler(Exception)
def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    return internal_error(request)

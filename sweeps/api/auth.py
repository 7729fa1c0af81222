"""How API callers sign in: `Authorization: Bearer pl_…` (checked by sweeps.services.tokens), or the browser session."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from sweeps.services.tokens import token_find


class BearerToken(HttpBearer):
    def __call__(self, request: HttpRequest) -> Any | None:
        # HttpBearer.__call__ logs the whole header when its scheme is not "Bearer" (with
        # DEBUG on): a token sent as "Token pl_…" would land in the log. Same parsing, no log.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme or not token.strip():
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        found = token_find(token)
        if found is None:
            return None
        # ninja sets request.auth to what this returns; request.user too, so operations
        # read request.user whichever way (token or session) the caller came in. The token
        # itself is kept for what records which token did it (a sweep's started_token).
        request.user = found.user
        request.api_token = found  # type: ignore[attr-defined]
        return found.user


def request_token(request: HttpRequest) -> Any | None:
    """The API token the request came with (None for a browser session)."""
    return getattr(request, "api_token", None)


class BrowserSession(SessionAuth):
    """The signed-in browser, with CSRF checked. Without a session there is nothing to check:
    the caller is unauthenticated (401), not forbidden (ninja would answer 403 for the CSRF)."""

    def __call__(self, request: HttpRequest) -> Any | None:
        return super().__call__(request) if request.user.is_authenticated else None


class ApiRequest(HttpRequest):
    """The request as an API operation sees it: ninja sets `auth` to what authenticated it (the
    user, by token or session). Only for annotations: ninja passes its own HttpRequest."""

    auth: Any

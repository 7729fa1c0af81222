"""A JSON client for /api/v1 with a user's Bearer token, over Django's full request path
(URL resolution, middleware, CSRF)."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from sweeps.services.tokens import token_create

PREFIX = "/api/v1"


class ApiClient:
    def __init__(self, user: Any | None = None, token: str | None = None) -> None:
        self.token = token or (token_create(user=user, name="tests")[1] if user else None)
        self.client = Client(enforce_csrf_checks=True)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, body: Any = None, **params: Any):
        kwargs: dict[str, Any] = {"headers": self.headers()}
        if body is not None:
            kwargs.update(
                data=json.dumps(body) if not isinstance(body, bytes) else body, content_type="application/json"
            )
        elif params:
            kwargs["data"] = params
        return getattr(self.client, method)(PREFIX + path, **kwargs)

    def get(self, path: str, **params: Any):
        return self.request("get", path, **params)

    def post(self, path: str, body: Any = None):
        return self.request("post", path, body)

    def patch(self, path: str, body: Any = None):
        return self.request("patch", path, body)

    def delete(self, path: str):
        return self.request("delete", path)

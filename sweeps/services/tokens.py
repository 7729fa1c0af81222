"""API tokens: create, authenticate, revoke, list. The user's page, the admin, the CLI and the
API's bearer auth all go through these.

A raw token is `pl_` + 32 random bytes (url-safe base64). It is returned once by token_create
and never stored or logged: the database keeps its sha256 digest and a short prefix.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any, cast

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from sweeps.models import ApiToken
from sweeps.services import ServiceError

TOKEN_PREFIX = "pl_"
NAME_MAX_LENGTH = cast(int, ApiToken._meta.get_field("name").max_length)  # set on every CharField
# last_used_at is for people ("used 3 minutes ago"), not an audit log: one write a minute per
# token at most, instead of a write on every API request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Longer than any token we issue (46 characters); anything longer is not worth hashing.
MAX_RAW_LENGTH = 200


def digest_of(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """A new token for user. Returns it with the raw token, which the caller shows once."""
    name = (name or "").strip()
    if not name:
        raise ServiceError("Give the token a name, such as “ci” or “laptop”, to tell it apart later.")
    if len(name) > NAME_MAX_LENGTH:
        raise ServiceError(f"A token name has at most {NAME_MAX_LENGTH} characters; this one has {len(name)}.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[: ApiToken.PREFIX_LENGTH], digest=digest_of(raw))
    return token, raw


def token_authenticate(raw: str) -> Any | None:
    """The active user owning this live token, or None."""
    token = token_find(raw)
    return token.user if token is not None else None


def token_find(raw: str) -> ApiToken | None:
    """This live token of an active user (its user loaded), or None.

    Looking the token up by its digest is constant-time in the sense that matters: a timing
    difference could at most reveal how much of a stored digest a guess's digest shares, and
    that says nothing about a raw token, as sha256 cannot be run backwards.
    """
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > MAX_RAW_LENGTH:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=digest_of(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests with the same token write once between them.
        ApiToken.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION), pk=token.pk
        ).update(last_used_at=now)
    return token


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoked at once: the next request with it is refused. The row stays, for the record."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    if not revoked:
        raise ServiceError(f"Token {token} is already revoked.")
    return token


def token_list(*, user: Any) -> QuerySet[ApiToken]:
    """The user's tokens, newest first, revoked ones included (marked by revoked_at)."""
    return ApiToken.objects.filter(user=user)


def token_get(*, user: Any, token_id: int) -> ApiToken:
    """One of the user's own tokens; another user's is a 404, like a token that does not exist."""
    return get_object_or_404(ApiToken, pk=token_id, user=user)

"""Users the commands act for: the demo user of a fresh install, and the owner of sweeps
started from the command line."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model

from sweeps.services import ServiceError


def user_named(username: str) -> Any:
    """The user called `username`; ServiceError when there is none."""
    User = get_user_model()
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise ServiceError(f"no user named {username!r}") from None


def demo_user_ensure() -> tuple[Any, str | None]:
    """The demo superuser, created on first call; returns it with its new password (shown once),
    or with None when it already existed."""
    User = get_user_model()
    if user := User.objects.filter(username="demo").first():
        return user, None
    password = secrets.token_urlsafe(12)
    return User.objects.create_superuser("demo", password=password), password


def cli_user() -> Any:
    """Who owns what `manage.py sweep` creates without --user: the demo user, else a superuser,
    else a user `cli` that cannot sign in."""
    User = get_user_model()
    user = User.objects.filter(username="demo").first() or User.objects.filter(is_superuser=True).first()
    if user is None:
        user, created = User.objects.get_or_create(username="cli")
        if created:
            user.set_unusable_password()
            user.save()
    return user

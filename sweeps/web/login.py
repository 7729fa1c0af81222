"""Login throttling: after too many wrong passwords, sign-ins are refused for a while.

Failures are counted per (username, client address) and per client address, in fixed windows of
PROMPTLOOPER_LOGIN_WINDOW_SECONDS, in the `login_throttle` cache (Redis when REDIS_URL is set,
so every web process shares the counts; this process's memory in embedded mode). A throttled
attempt is refused without checking the password, so it tells a guesser nothing. The backend
applies to every sign-in through django.contrib.auth.authenticate() (the login page and the
admin's); API tokens never pass through it.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import caches
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or what the reverse proxy in front says (PROMPTLOOPER_CLIENT_ADDRESS_HEADER).
    Of a list (X-Forwarded-For), the last entry: the one our proxy added. The entries before it
    came from the client, which may write anything there to escape its count."""
    header = settings.PROMPTLOOPER_CLIENT_ADDRESS_HEADER
    forwarded = request.META.get(header, "") if header else ""
    address = forwarded.rsplit(",", 1)[-1].strip() or request.META.get("REMOTE_ADDR", "")
    return address[:100] or "unknown"


def _keys(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    address = client_address(request)
    user = hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return [
        (f"login-failures:user:{user}:{address}", settings.PROMPTLOOPER_LOGIN_ATTEMPTS_PER_USER),
        (f"login-failures:address:{address}", settings.PROMPTLOOPER_LOGIN_ATTEMPTS_PER_ADDRESS),
    ]


def throttled(request: HttpRequest, username: str) -> bool:
    cache = caches["throttle"]
    counts = cache.get_many([key for key, _ in _keys(request, username)])
    return any(counts.get(key, 0) >= limit for key, limit in _keys(request, username))


def record_failure(request: HttpRequest, username: str) -> None:
    cache = caches["throttle"]
    for key, _ in _keys(request, username):
        cache.add(key, 0, timeout=settings.PROMPTLOOPER_LOGIN_WINDOW_SECONDS)  # the window starts now
        try:
            cache.incr(key)
        except ValueError:  # the window ended between add and incr
            cache.add(key, 1, timeout=settings.PROMPTLOOPER_LOGIN_WINDOW_SECONDS)


def forget_failures(request: HttpRequest, username: str) -> None:
    """A correct password clears that user's count from that address (not the address's)."""
    caches["throttle"].delete(_keys(request, username)[0][0])


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or username is None:
            return super().authenticate(request, username, password, **kwargs)
        if throttled(request, username):
            raise PermissionDenied("too many failed sign-ins")  # authenticate() stops here: no other backend
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            record_failure(request, username)
        else:
            forget_failures(request, username)
        return user


class ThrottleMessage:
    """Says why a throttled sign-in is refused, instead of "wrong password"."""

    def get_invalid_login_error(self):
        username = self.cleaned_data.get("username")
        if self.request is not None and username and throttled(self.request, username):
            minutes = max(1, round(settings.PROMPTLOOPER_LOGIN_WINDOW_SECONDS / 60))
            return ValidationError(
                f"Too many failed sign-ins from your address. Sign-in is paused: try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}.",
                code="throttled",
            )
        return super().get_invalid_login_error()


class LoginForm(ThrottleMessage, AuthenticationForm):
    pass


class AdminLoginForm(ThrottleMessage, AdminAuthenticationForm):
    pass

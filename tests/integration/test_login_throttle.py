"""Login throttling on the real login pages (issue 12, item 10): wrong passwords are counted per
username and address and per address; beyond the limits sign-in is refused with a clear message
(even with the right password), other addresses are unaffected, and API tokens keep working."""

from __future__ import annotations

import os
import uuid

import pytest
from django.test import Client

from tests.conftest import PASSWORDS
from tests.integration.api_client import ApiClient

A, B = "203.0.113.7", "198.51.100.9"
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
THROTTLED = "Too many failed sign-ins"


def sign_in(address: str, username: str, password: str, page: str = "/login/"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(page, {"username": username, "password": password, "next": "/"})
    return response, client


def signed_in(response) -> bool:
    return response.status_code == 302


@pytest.fixture(params=["memory", "redis"])
def throttle_cache(request, settings):
    """Embedded mode counts in this process's memory; with REDIS_URL, in Redis."""
    if request.param == "redis":
        settings.CACHES = {**settings.CACHES, "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}  # fmt: skip
    return request.param


def test_wrong_passwords_for_one_user_throttle_that_user_from_that_address(throttle_cache, user):
    for _ in range(9):
        response, _ = sign_in(A, "alice", "wrong")
        assert response.status_code == 200 and THROTTLED not in response.content.decode()
    assert THROTTLED in sign_in(A, "alice", "wrong")[0].content.decode()  # the 10th says what happens next

    refused, client = sign_in(A, "alice", PASSWORDS["alice"])  # the right password, too late
    assert refused.status_code == 200 and THROTTLED in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert signed_in(sign_in(B, "alice", PASSWORDS["alice"])[0])  # another address is not affected

    assert ApiClient(user).get("/experiments").status_code == 200  # nor are API tokens


def test_the_admin_login_counts_and_refuses_the_same_way(throttle_cache, admin_user):
    for _ in range(10):
        assert sign_in(A, "admin", "wrong", page="/admin/login/")[0].status_code == 200
    refused, _ = sign_in(A, "admin", "password", page="/admin/login/")
    assert refused.status_code == 200 and THROTTLED in refused.content.decode()
    assert THROTTLED in sign_in(A, "admin", "password")[0].content.decode()


def test_many_usernames_from_one_address_throttle_the_address(user, other_user):
    for i in range(50):
        sign_in(A, f"guess{i}", "wrong")
    refused, _ = sign_in(A, "bob", PASSWORDS["bob"])
    assert THROTTLED in refused.content.decode()
    assert signed_in(sign_in(B, "bob", PASSWORDS["bob"])[0])


def test_a_correct_password_clears_that_users_count(user):
    for _ in range(9):
        sign_in(A, "alice", "wrong")
    assert signed_in(sign_in(A, "alice", PASSWORDS["alice"])[0])
    for _ in range(9):
        sign_in(A, "alice", "wrong")
    assert signed_in(sign_in(A, "alice", PASSWORDS["alice"])[0])


PROXY = "10.0.0.2"


def sign_in_through_proxy(forwarded_for: str, username: str, password: str):
    client = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)
    return client.post("/login/", {"username": username, "password": password, "next": "/"})


def test_behind_a_proxy_each_client_is_counted_by_the_address_the_proxy_forwards(user, settings):
    settings.PROMPTLOOPER_CLIENT_ADDRESS_HEADER = "HTTP_X_FORWARDED_FOR"
    for _ in range(10):
        sign_in_through_proxy(A, "alice", "wrong")
    assert THROTTLED in sign_in_through_proxy(A, "alice", PASSWORDS["alice"]).content.decode()
    # Another client behind the same proxy is not locked out by A's guesses.
    assert signed_in(sign_in_through_proxy(B, "alice", PASSWORDS["alice"]))
    # A forged entry before the proxy's own does not make A someone else.
    forged = sign_in_through_proxy(f"{B}, {A}", "alice", PASSWORDS["alice"])
    assert THROTTLED in forged.content.decode()


def test_without_the_setting_forwarded_headers_are_ignored(user, settings):
    assert settings.PROMPTLOOPER_CLIENT_ADDRESS_HEADER is None  # the default: a client cannot pick its address
    for _ in range(10):
        sign_in_through_proxy(A, "alice", "wrong")
    assert THROTTLED in sign_in_through_proxy(B, "alice", PASSWORDS["alice"]).content.decode()

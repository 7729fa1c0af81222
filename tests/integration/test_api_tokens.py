"""API tokens: the services, the bearer auth class, `manage.py create_api_token`, the account page
and the admin, on the real database. The raw token is shown once and is found nowhere after."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, RequestFactory
from django.utils import timezone

from sweeps.api.auth import BearerToken
from sweeps.models import ApiToken
from sweeps.services import ServiceError
from sweeps.services.tokens import (
    token_authenticate,
    token_create,
    token_list,
    token_revoke,
)
from tests.conftest import logged_in

pytestmark = pytest.mark.django_db

PAGE = "/account/tokens/"


# --- helpers ---


def revoke_url(token: ApiToken) -> str:
    return f"/account/tokens/{token.pk}/revoke/"


def shown_token(page: str) -> str | None:
    found = re.search(r'<pre id="new-token">([^<]*)</pre>', page)
    return found.group(1) if found else None


def csrf_token(page: str) -> str:
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    return token.group(1)


def database_text() -> str:
    """Every cell of every table, plus the decoded sessions (stored signed and encoded), as text."""
    cells = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                cells.extend(bytes(c).decode("latin-1") if isinstance(c, bytes | memoryview) else str(c) for c in row)
    cells.extend(str(s.get_decoded()) for s in Session.objects.all())
    return "\n".join(cells)


def age(token: ApiToken, **delta) -> None:
    """Pretend the token was last used `delta` ago."""
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(**delta))


# --- services ---


def test_create_returns_the_raw_token_once_and_stores_only_its_digest_and_prefix(user):
    token, raw = token_create(user=user, name="ci")

    assert re.fullmatch(r"pl_[A-Za-z0-9_-]{43}", raw)
    token.refresh_from_db()
    assert (token.user, token.name) == (user, "ci")
    assert token.prefix == raw[:12] and len(token.prefix) == 12
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert token.last_used_at is None and token.revoked_at is None
    assert str(token) == f"ci ({raw[:12]}…)"


def test_the_raw_token_is_nowhere_in_the_database(user):
    _, raw = token_create(user=user, name="ci")
    token_authenticate(raw)

    text = database_text()
    assert raw[:12] in text  # the scan does see the token's row ...
    assert raw not in text and raw[12:] not in text  # ... but not the token, nor its secret part


def test_each_token_is_new_and_names_may_repeat(user):
    made = [token_create(user=user, name="ci") for _ in range(3)]

    assert len({raw for _, raw in made}) == 3
    assert len({t.digest for t, _ in made}) == 3
    assert [token_authenticate(raw) for _, raw in made] == [user] * 3


@pytest.mark.parametrize("name", ["", "   ", None])
def test_a_name_is_required(user, name):
    with pytest.raises(ServiceError, match="Give the token a name"):
        token_create(user=user, name=name)
    assert not ApiToken.objects.exists()


def test_a_name_has_at_most_100_characters_and_is_trimmed(user):
    with pytest.raises(ServiceError, match="at most 100 characters; this one has 101"):
        token_create(user=user, name="x" * 101)
    token, _ = token_create(user=user, name=f"  {'x' * 100}  ")
    assert token.name == "x" * 100


def test_authenticate_finds_the_owner_of_each_token(user, other_user):
    _, alice_raw = token_create(user=user, name="ci")
    _, bob_raw = token_create(user=other_user, name="ci")

    assert token_authenticate(alice_raw) == user
    assert token_authenticate(bob_raw) == other_user


@pytest.mark.parametrize("raw", ["", "pl_", "pl_not-a-token", "Bearer", "x" * 10_000, "pl_" + "a" * 10_000])
def test_authenticate_refuses_what_is_not_a_live_token(user, raw):
    token_create(user=user, name="ci")
    assert token_authenticate(raw) is None


def test_authenticate_refuses_a_token_that_differs_in_one_character(user):
    _, raw = token_create(user=user, name="ci")
    altered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    assert token_authenticate(altered) is None


def test_authenticate_refuses_a_revoked_token_and_an_inactive_user(user):
    revoked, revoked_raw = token_create(user=user, name="old")
    token_revoke(token=revoked)
    _, raw = token_create(user=user, name="ci")
    assert token_authenticate(revoked_raw) is None

    user.is_active = False
    user.save()
    assert token_authenticate(raw) is None

    user.is_active = True
    user.save()
    assert token_authenticate(raw) == user


def test_last_used_is_written_at_most_once_a_minute(user, django_assert_num_queries):
    token, raw = token_create(user=user, name="ci")

    before = timezone.now()
    assert token_authenticate(raw) == user
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and first >= before

    with django_assert_num_queries(1):  # the lookup only: no write within the minute
        assert token_authenticate(raw) == user
    token.refresh_from_db()
    assert token.last_used_at == first

    age(token, seconds=59)
    token.refresh_from_db()
    still = token.last_used_at
    token_authenticate(raw)
    token.refresh_from_db()
    assert token.last_used_at == still  # 59 s ago: not yet

    age(token, seconds=61)
    token_authenticate(raw)
    token.refresh_from_db()
    assert token.last_used_at >= before and token.last_used_at > still + timedelta(seconds=1)


def test_revoke_refuses_at_once_and_says_so_the_second_time(user):
    token, raw = token_create(user=user, name="ci")

    assert token_revoke(token=token).revoked_at is not None
    assert token_authenticate(raw) is None
    with pytest.raises(ServiceError, match=r"ci \(pl_.{9}…\) is already revoked"):
        token_revoke(token=token)


def test_list_is_the_users_own_tokens_newest_first_revoked_included(user, other_user):
    first, _ = token_create(user=user, name="first")
    second, _ = token_create(user=user, name="second")
    token_create(user=other_user, name="bobs")
    token_revoke(token=first)

    assert list(token_list(user=user)) == [second, first]
    assert [t.name for t in token_list(user=other_user)] == ["bobs"]


def test_deleting_a_user_deletes_their_tokens(user):
    token_create(user=user, name="ci")
    user.delete()
    assert not ApiToken.objects.exists()


def test_nothing_logs_the_raw_token(user, caplog, settings):
    settings.DEBUG = True  # ninja's HttpBearer logs an unexpected Authorization header in DEBUG
    caplog.set_level(logging.DEBUG)
    token, raw = token_create(user=user, name="ci")
    for header in (f"Bearer {raw}", f"Token {raw}", raw):
        BearerToken()(RequestFactory().get("/api/v1/experiments", HTTP_AUTHORIZATION=header))
    token_revoke(token=token)
    BearerToken()(RequestFactory().get("/api/v1/experiments", HTTP_AUTHORIZATION=f"Bearer {raw}"))

    assert raw not in caplog.text and raw[12:] not in caplog.text


# --- BearerToken ---


def bearer(header: str | None):
    """(what BearerToken returns, the request) for a request with this Authorization header."""
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    request = RequestFactory().get("/api/v1/experiments", **extra)
    return BearerToken()(request), request


def test_bearer_accepts_a_good_token_and_sets_request_user(user):
    _, raw = token_create(user=user, name="ci")

    result, request = bearer(f"Bearer {raw}")
    assert result == user
    assert request.user == user

    assert bearer(f"bearer {raw}")[0] == user  # the scheme is case-insensitive (RFC 7235)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer pl_wrong", "Basic YWxpY2U6cHc="])
def test_bearer_refuses_a_missing_or_bad_token(user, header):
    token_create(user=user, name="ci")

    result, request = bearer(header)
    assert result is None
    assert not hasattr(request, "user")  # left for the session auth that may come next


def test_bearer_refuses_a_token_under_another_scheme(user):
    _, raw = token_create(user=user, name="ci")
    assert bearer(f"Token {raw}")[0] is None
    assert bearer(raw)[0] is None


def test_bearer_refuses_a_revoked_token(user):
    token, raw = token_create(user=user, name="ci")
    token_revoke(token=token)
    assert bearer(f"Bearer {raw}")[0] is None


# --- manage.py create_api_token ---


def create_api_token(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_prints_the_token_alone_on_stdout_and_a_warning_on_stderr(user):
    out, err = create_api_token("alice")

    raw = out.strip()
    assert out == raw + "\n"  # only the token: `TOKEN=$(manage.py create_api_token alice)` works
    assert token_authenticate(raw) == user
    token = ApiToken.objects.get()
    assert (token.name, token.prefix) == ("cli", raw[:12])
    assert "will not be shown again" in err and "'cli'" in err and "alice" in err
    assert "Authorization: Bearer" in err
    assert raw not in err


def test_command_takes_a_name(user):
    out, _ = create_api_token("alice", "--name", "ci")
    assert ApiToken.objects.get().name == "ci"
    assert token_authenticate(out.strip()) == user


def test_command_refuses_an_unknown_user_naming_it_with_exit_status_2(user):
    with pytest.raises(CommandError, match="no user named 'mallory'") as e:
        create_api_token("mallory")
    assert e.value.returncode == 2
    assert not ApiToken.objects.exists()


def test_command_refuses_a_bad_name_with_exit_status_2(user):
    with pytest.raises(CommandError, match="at most 100 characters") as e:
        create_api_token("alice", "--name", "x" * 101)
    assert e.value.returncode == 2


def test_command_warns_that_an_inactive_users_token_does_not_work_yet(user):
    user.is_active = False
    user.save()
    out, err = create_api_token("alice")
    assert "inactive" in err
    assert token_authenticate(out.strip()) is None


# --- the account page ---


def test_page_requires_login():
    client = Client()
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"] == f"/login/?next={PAGE}"
    assert client.post(PAGE, {"name": "ci"}).status_code == 302
    assert not ApiToken.objects.exists()


def test_page_links_from_the_header(user):
    page = logged_in(user).get("/").content.decode()
    assert f'href="{PAGE}"' in page


def test_page_lists_only_the_users_own_tokens(user, other_user):
    mine, _ = token_create(user=user, name="laptop")
    revoked, _ = token_create(user=user, name="old-ci")
    token_revoke(token=revoked)
    theirs, _ = token_create(user=other_user, name="bobs-secret-box")

    response = logged_in(user).get(PAGE)
    page = response.content.decode()

    assert response.status_code == 200
    assert "laptop" in page and f"{mine.prefix}…" in page and "old-ci" in page
    assert "bobs-secret-box" not in page and theirs.prefix not in page
    assert f'action="{revoke_url(mine)}"' in page
    assert f'action="{revoke_url(revoked)}"' not in page  # nothing left to revoke
    assert "never" in page  # last used
    assert mine.digest not in page and revoked.digest not in page


def test_creating_shows_the_token_once_and_a_reload_does_not(user):
    client = logged_in(user)

    response = client.post(PAGE, {"name": "ci"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = shown_token(response.content.decode())
    assert raw and token_authenticate(raw) == user
    assert "will not be shown again" in response.content.decode()
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (user, "ci")

    reload = client.get(PAGE).content.decode()
    assert shown_token(reload) is None and raw not in reload and raw[12:] not in reload
    assert f"{raw[:12]}…" in reload  # listed by its prefix
    assert raw not in str(client.cookies)
    assert raw not in database_text() and raw[12:] not in database_text()


def test_creating_without_a_name_says_why_and_creates_nothing(user):
    response = logged_in(user).post(PAGE, {"name": "  "})

    assert response.status_code == 200
    page = response.content.decode()
    assert shown_token(page) is None
    assert "Give the token a name" in page
    assert not ApiToken.objects.exists()


def test_revoking_from_the_page(user):
    token, raw = token_create(user=user, name="ci")
    client = logged_in(user)

    response = client.post(revoke_url(token), follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token_authenticate(raw) is None
    page = response.content.decode()
    assert f"Token {token} revoked" in page
    assert f'action="{revoke_url(token)}"' not in page

    again = client.post(revoke_url(token), follow=True).content.decode()
    assert "already revoked" in again


def test_revoking_another_users_token_is_a_404_and_changes_nothing(user, other_user):
    theirs, raw = token_create(user=other_user, name="ci")

    assert logged_in(user).post(revoke_url(theirs)).status_code == 404
    assert logged_in(user).post("/account/tokens/999999/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert token_authenticate(raw) == other_user


def test_revoking_needs_post(user):
    token, _ = token_create(user=user, name="ci")
    assert logged_in(user).get(revoke_url(token)).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


def test_revoking_requires_login(user):
    token, _ = token_create(user=user, name="ci")
    assert Client().post(revoke_url(token)).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is None


def test_csrf_is_enforced_on_create_and_revoke(user):
    token, _ = token_create(user=user, name="ci")
    client = logged_in(user, enforce_csrf_checks=True)

    assert client.post(PAGE, {"name": "forged"}).status_code == 403
    assert client.post(revoke_url(token)).status_code == 403
    assert list(ApiToken.objects.values_list("name", "revoked_at")) == [("ci", None)]

    # with the token from the page, the same requests go through
    csrf = csrf_token(client.get(PAGE).content.decode())
    created = client.post(PAGE, {"name": "real", "csrfmiddlewaretoken": csrf})
    assert created.status_code == 200 and shown_token(created.content.decode())
    assert client.post(revoke_url(token), {"csrfmiddlewaretoken": csrf}).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


# --- the admin ---

TOKENS_ADMIN = "/admin/sweeps/apitoken/"


def test_admin_lists_tokens_without_their_digest_and_cannot_add_or_edit(admin_client, user):
    token, raw = token_create(user=user, name="ci")

    changelist = admin_client.get(TOKENS_ADMIN)
    assert changelist.status_code == 200
    page = changelist.content.decode()
    assert "ci" in page and token.prefix in page and "alice" in page
    assert token.digest not in page
    assert admin_client.get(f"{TOKENS_ADMIN}?revoked_at__isempty=1").status_code == 200
    assert admin_client.get(f"{TOKENS_ADMIN}?q=alice").status_code == 200

    assert admin_client.get(f"{TOKENS_ADMIN}add/").status_code == 403
    view = admin_client.get(f"{TOKENS_ADMIN}{token.pk}/change/")
    assert view.status_code == 200 and token.digest not in view.content.decode()
    assert 'name="_save"' not in view.content.decode()
    assert admin_client.post(f"{TOKENS_ADMIN}{token.pk}/change/", {"name": "x", "digest": "0" * 64}).status_code == 403
    token.refresh_from_db()
    assert (token.name, token_authenticate(raw)) == ("ci", user)


def test_admin_revoke_action_reports_per_token(admin_client, user, other_user):
    live, raw = token_create(user=user, name="ci")
    gone, _ = token_create(user=other_user, name="old")
    token_revoke(token=gone)

    response = admin_client.post(
        TOKENS_ADMIN, {"action": "revoke", "_selected_action": [live.pk, gone.pk]}, follow=True
    )

    assert response.status_code == 200
    reported = sorted((m.level_tag, m.message) for m in response.context["messages"])
    assert reported == [("success", f"{live}: revoked"), ("warning", f"{gone}: Token {gone} is already revoked.")]
    assert token_authenticate(raw) is None

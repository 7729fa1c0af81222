"""Provider rows choose where a key is sent: only those the admin would let edit them may, and
the key variable can never be one of the application's own secrets (issue 12, item 9)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from sweeps.engine.provider import ProviderError
from sweeps.models import Provider
from sweeps.providers.registry import build_adapter
from tests.integration.api_client import ApiClient

BODY = {"name": "mine", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "MINE_API_KEY"}


def grant(user, *codenames: str):
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="sweeps", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance


@pytest.fixture
def api(user, mock_latency) -> ApiClient:
    return ApiClient(user)


def test_staff_without_the_model_permissions_is_refused_like_in_the_admin(api, user):
    grant(user)  # staff, no permission: the admin shows him no Provider page
    refused = api.post("/providers", BODY)
    assert refused.status_code == 403 and "add_provider" in refused.json()["detail"]
    assert not Provider.objects.filter(name="mine").exists()

    grant(user, "add_provider")
    assert api.post("/providers", BODY).status_code == 201
    patched = api.patch("/providers/mine", {"base_url": "http://127.0.0.1:10/v1"})
    assert patched.status_code == 403 and "change_provider" in patched.json()["detail"]
    assert Provider.objects.get(name="mine").base_url == BODY["base_url"]

    grant(user, "change_provider")
    assert api.patch("/providers/mine", {"base_url": "http://127.0.0.1:10/v1"}).status_code == 200
    assert Provider.objects.get(name="mine").base_url == "http://127.0.0.1:10/v1"


@pytest.mark.parametrize("name", ["DATABASE_URL", "SECRET_KEY", "REDIS_URL", "DJANGO_SETTINGS_MODULE",
                                  "PROMPTLOOPER_LEASE_SECONDS", "PGPASSWORD", "HOME", "mine_api_key"])  # fmt: skip
def test_a_key_variable_outside_the_allowed_names_is_a_422_naming_the_field(api, user, name):
    grant(user, "add_provider", "change_provider")
    created = api.post("/providers", {**BODY, "api_key_env": name})
    assert created.status_code == 422
    assert [e["loc"] for e in created.json()["detail"]] == [["body", "api_key_env"]]
    assert name in created.json()["detail"][0]["msg"]
    assert not Provider.objects.filter(name="mine").exists()

    assert api.post("/providers", BODY).status_code == 201
    patched = api.patch("/providers/mine", {"api_key_env": name})
    assert patched.status_code == 422 and patched.json()["detail"][0]["loc"] == ["body", "api_key_env"]
    assert Provider.objects.get(name="mine").api_key_env == "MINE_API_KEY"


def test_settings_names_stay_refused_whatever_the_pattern_allows(api, user, settings):
    grant(user, "add_provider")
    settings.PROMPTLOOPER_PROVIDER_KEY_PATTERN = r"[A-Z_]+"
    assert api.post("/providers", {**BODY, "api_key_env": "SECRET_KEY"}).status_code == 422
    assert api.post("/providers", {**BODY, "api_key_env": "MY_TOKEN"}).status_code == 201


def test_an_empty_key_variable_is_a_keyless_server(api, user):
    grant(user, "add_provider")
    created = api.post("/providers", {**BODY, "api_key_env": ""})
    assert created.status_code == 201 and created.json()["available"] is True


def test_the_admin_form_refuses_the_same_names(client: Client, user):
    staff = grant(user)
    client.force_login(staff)
    assert client.get("/admin/sweeps/provider/add/").status_code == 403

    grant(user, "add_provider")
    form = {"name": "mine", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "DATABASE_URL",
            "price_in_per_mtok": "0", "price_out_per_mtok": "0", "options": "{}", "enabled": "on"}  # fmt: skip
    refused = client.post("/admin/sweeps/provider/add/", form)
    assert refused.status_code == 200 and "DATABASE_URL is one of the application" in refused.content.decode()
    assert not Provider.objects.filter(name="mine").exists()
    accepted = client.post("/admin/sweeps/provider/add/", {**form, "api_key_env": "MINE_API_KEY"})
    assert accepted.status_code == 302 and Provider.objects.get(name="mine").api_key_env == "MINE_API_KEY"


def test_a_row_saved_before_the_rule_never_reads_the_secret(db, monkeypatch):
    """A row written around validation (an old row, a raw UPDATE) is checked again at call time."""
    monkeypatch.setenv("DATABASE_URL", "postgres://owner:hunter2@db/prod")
    Provider.objects.update_or_create(name="mine", defaults={"kind": "openai", "base_url": "http://127.0.0.1:9/v1"})
    Provider.objects.filter(name="mine").update(api_key_env="DATABASE_URL")
    row = Provider.objects.get(name="mine")

    assert row.api_key() is None
    available, reason = row.availability()
    assert available is False and "api_key_env" in reason and "hunter2" not in reason
    with pytest.raises(ProviderError, match="unavailable"):
        build_adapter(row)

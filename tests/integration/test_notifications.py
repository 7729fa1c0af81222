"""Notifications end to end: sweeps run by the embedded worker tell a real HTTP receiver on
127.0.0.1 (allowed by the setting, as an operator would) and the locmem mail outbox."""

from __future__ import annotations

import re
import threading

import pytest
from django.core import mail
from django.utils import timezone

from sweeps.engine.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from sweeps.models import Notification, Provider, Sweep
from sweeps.services.experiments import experiment_create
from sweeps.services.notifications import (
    PER_USER,
    TEST_INTERVAL_S,
    notification_create,
    notification_secret,
    notification_set_active,
    notifications_deliver,
)
from sweeps.services.sweeps import sweep_fail, sweep_start
from tests.conftest import logged_in, spec, wait_for_sweep
from tests.fakes.llm_server import FakeLLMServer, Scripted
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.api_client import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(settings):
    settings.PROMPTLOOPER_WEBHOOK_ALLOW = "127.0.0.1"
    settings.PROMPTLOOPER_SITE_URL = "https://pl.example"
    with WebhookReceiver() as receiver:
        yield receiver


def deliveries_done() -> None:
    """Every notification thread has finished (each sweep end starts at most one)."""
    for thread in threading.enumerate():
        if thread.name.startswith("sweep-notify-"):
            thread.join(timeout=30)


def run_sweep(user, **overrides) -> Sweep:
    sweep = wait_for_sweep(sweep_start(experiment=experiment_create(owner=user, data=spec(**overrides))))
    for thread in threading.enumerate():
        if thread.name == f"sweep-{sweep.pk}":
            thread.join(timeout=30)  # its on_commit has started the notification thread
    deliveries_done()
    return sweep


def test_a_completed_sweep_posts_its_signed_summary(user, receiver, mock_latency):
    notification, secret = notification_create(owner=user, data={"webhook_url": receiver.url})
    sweep = run_sweep(user)

    [request] = receiver.requests
    assert secret == notification_secret(notification) and secret.startswith("whsec_")
    assert verify(secret, request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])
    assert not verify("whsec_other", request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])
    body = request.json
    assert body["event"] == "sweep.completed" and request.headers["X-PromptLooper-Event"] == "sweep.completed"
    assert body["sweep"]["id"] == sweep.pk and body["sweep"]["status"] == "completed"
    assert (body["sweep"]["total"], body["sweep"]["completed"]) == (12, 12)
    assert body["experiment"]["url"] == f"https://pl.example/experiments/{sweep.experiment_id}/"
    assert secret not in request.body.decode() and notification.salt not in str(request.headers)


def test_a_500_is_retried_and_the_second_attempt_delivers(user, receiver, mock_latency, caplog):
    notification_create(owner=user, data={"webhook_url": receiver.url})
    receiver.script(500)
    with caplog.at_level("INFO", logger="sweeps.services.notifications"):
        run_sweep(user)
    assert [r.status for r in receiver.requests] == [500, 200]
    assert "delivered=True attempts=2 status=200" in caplog.text


def test_delivery_gives_up_after_the_configured_attempts(user, receiver, settings, mock_latency, caplog):
    settings.PROMPTLOOPER_WEBHOOK_ATTEMPTS = 2
    notification, secret = notification_create(owner=user, data={"webhook_url": receiver.url})
    receiver.script(500, 503, 500)
    with caplog.at_level("INFO", logger="sweeps.services.notifications"):
        run_sweep(user)
    assert [r.status for r in receiver.requests] == [500, 503]
    assert "delivered=False attempts=2 status=503 error=HTTP 503" in caplog.text
    assert secret not in caplog.text
    notification.refresh_from_db()  # and its owner, who cannot read that log, sees it too
    assert (notification.last_event, notification.last_ok) == ("sweep.completed", False)
    assert notification.last_result == "webhook failed after 2 attempts: HTTP 503"


def test_a_url_allowed_when_saved_but_not_when_sent_is_not_called(user, receiver, settings, mock_latency, caplog):
    notification_create(owner=user, data={"webhook_url": receiver.url})
    settings.PROMPTLOOPER_WEBHOOK_ALLOW = ""
    with caplog.at_level("INFO", logger="sweeps.services.notifications"):
        run_sweep(user)
    assert receiver.requests == []
    assert "delivered=False attempts=1 status=None error=refused: the host 127.0.0.1" in caplog.text


def test_email_is_sent_through_django_mail(user, mock_latency, settings):
    settings.PROMPTLOOPER_SITE_URL = "https://pl.example"
    notification_create(owner=user, data={"email": "alice@example.com", "events": ["completed"]})
    sweep = run_sweep(user)
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == f"PromptLooper: sweep {sweep.pk} of “Test experiment” completed"
    assert "Samples: 12 completed, 0 failed of 12" in message.body
    assert f"https://pl.example/experiments/{sweep.experiment_id}/" in message.body


def test_a_budget_pause_notifies_with_its_event(user, receiver, mock_latency):
    notification_create(owner=user, data={"webhook_url": receiver.url, "events": ["budget"]})
    sweep = run_sweep(user, budget={"max_cost_usd": 0.00001}, max_concurrency=1)
    assert sweep.status == "paused"
    [request] = receiver.requests
    assert request.json["event"] == "sweep.budget" and request.json["sweep"]["stopped_reason"] == "cost_budget"


def test_a_provider_out_of_quota_pauses_the_sweep_and_notifies_with_its_event(user, receiver, mock_latency,
                                                                              monkeypatch, settings):  # fmt: skip
    """The quota answer comes from a real OpenAI-protocol server on 127.0.0.1."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    notification_create(owner=user, data={"webhook_url": receiver.url, "events": ["provider"], "email": "a@b.example"})
    quota = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota", "code": None}}
    with FakeLLMServer() as server:
        server.script(*[Scripted(429, body=quota) for _ in range(20)])
        Provider.objects.update_or_create(
            name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY"}
        )
        pipeline = [{"name": "answer", "prompt": "Answer: {{ ticket }}", "model": "openai/gpt-4o-mini"}]
        grid = {"type": "grid", "params": {"params.temperature": [0.0]}}
        sweep = run_sweep(user, pipeline=pipeline, sweep=grid, max_concurrency=1, fail_fast=True)

    assert sweep.status == "paused" and sweep.stopped_reason == "provider_error"
    [request] = receiver.requests
    assert request.json["event"] == "sweep.provider" and request.json["sweep"]["stopped_reason"] == "provider_error"
    [message] = mail.outbox
    assert message.subject.endswith("paused by its provider") and "quota" in message.body


def test_a_failed_sweep_notifies(user, receiver, mock_latency):
    experiment = experiment_create(owner=user, data=spec())
    sweep = Sweep.objects.create(
        experiment=experiment, spec=experiment.spec, status="running", started_at=timezone.now()
    )
    notification_create(owner=user, data={"webhook_url": receiver.url, "events": ["failed"]})
    sweep_fail(sweep.pk, "the worker ran out of memory")
    deliveries_done()
    [request] = receiver.requests
    assert request.json["event"] == "sweep.failed"
    assert request.json["sweep"]["error"] == "the worker ran out of memory"


def test_only_matching_events_experiments_and_owners_are_told(user, other_user, receiver, mock_latency):
    experiment = experiment_create(owner=user, data=spec(name="Elsewhere"))
    notification_create(owner=user, data={"webhook_url": receiver.url + "?failed", "events": ["failed"]})
    notification_create(owner=user, data={"webhook_url": receiver.url + "?other", "experiment_id": experiment.pk})
    notification_create(owner=other_user, data={"webhook_url": receiver.url + "?bob"})
    notification_create(owner=user, data={"webhook_url": receiver.url + "?all"})
    Notification.objects.create(
        owner=user, webhook_url=receiver.url + "?off", salt="x", events=["completed"], active=False
    )
    run_sweep(user)
    assert [r.path for r in receiver.requests] == ["/hook?all"]


def test_no_thread_is_started_for_a_user_without_notifications(user, other_user, receiver, mock_latency):
    notification_create(owner=other_user, data={"webhook_url": receiver.url})
    started = []
    original = threading.Thread.start

    def recording(self):
        started.append(self.name)
        original(self)

    threading.Thread.start = recording  # type: ignore[method-assign]
    try:
        run_sweep(user)
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    assert not [name for name in started if name.startswith("sweep-notify-")]


# Saving a URL that is not allowed


def test_the_api_refuses_an_internal_webhook_url_naming_the_field(user):
    api = ApiClient(user)
    response = api.post("/notifications", {"webhook_url": "http://169.254.169.254/latest/meta-data"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "webhook_url"]
    assert "169.254.169.254 is at 169.254.169.254, an internal address" in error["msg"]
    assert "PROMPTLOOPER_WEBHOOK_ALLOW" in error["msg"]
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"webhook_url": "ftp://93.184.216.34/"}, "webhook_url", "http:// or https://"),
        ({}, "webhook_url", "Give a webhook URL, an e-mail address, or both."),
        ({"email": "not-an-address"}, "email", "is not an e-mail address"),
        ({"email": "a@example.com", "events": []}, "events", "Choose at least one event"),
        ({"email": "a@example.com", "experiment_id": 999999}, "experiment_id", "You have no experiment 999999"),
    ],
)
def test_the_api_names_each_bad_field(user, body, field, message):
    response = ApiClient(user).post("/notifications", body)
    assert response.status_code == 422
    assert any(e["loc"] == ["body", field] and message in e["msg"] for e in response.json()["detail"])


def test_the_api_refuses_an_unknown_event(user):
    response = ApiClient(user).post("/notifications", {"email": "a@example.com", "events": ["started"]})
    assert response.status_code == 422 and "events" in str(response.json()["detail"])


def test_the_api_creates_lists_and_deletes_only_its_users_notifications(user, other_user, receiver):
    api, theirs = ApiClient(user), ApiClient(other_user)
    response = api.post("/notifications", {"webhook_url": receiver.url, "events": ["completed", "budget"]})
    assert response.status_code == 201
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["completed", "budget"]
    listed = api.get("/notifications").json()
    assert [n["id"] for n in listed] == [created["id"]] and "secret" not in listed[0]
    assert theirs.get("/notifications").json() == []
    assert theirs.request("delete", f"/notifications/{created['id']}").status_code == 404
    assert theirs.post(f"/notifications/{created['id']}/test").status_code == 404
    assert api.request("delete", f"/notifications/{created['id']}").status_code == 204
    assert not Notification.objects.exists()


def test_the_api_sends_a_test(user, receiver):
    created = ApiClient(user).post("/notifications", {"webhook_url": receiver.url}).json()
    assert ApiClient(user).post(f"/notifications/{created['id']}/test").status_code == 202
    deliveries_done()
    [request] = receiver.requests
    assert request.json["event"] == "test" and request.json["notification_id"] == created["id"]
    assert verify(created["secret"], request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])


def test_the_latest_delivery_is_shown_to_the_owner_on_the_page_and_in_the_api(user, receiver):
    api = ApiClient(user)
    created = api.post("/notifications", {"webhook_url": receiver.url, "email": "alice@example.com"}).json()
    assert api.get("/notifications").json()[0]["last_sent_at"] is None
    assert "–" in logged_in(user).get("/account/notifications/").content.decode()

    assert api.post(f"/notifications/{created['id']}/test").status_code == 202
    deliveries_done()

    [listed] = api.get("/notifications").json()
    assert (listed["last_event"], listed["last_ok"]) == ("test", True) and listed["last_sent_at"]
    assert listed["last_result"] == "webhook: HTTP 200; e-mail sent"
    page = logged_in(user).get("/account/notifications/").content.decode()
    cell = re.search(r'<td class="last-delivery">(.*?)</td>', page, re.S).group(1)
    assert '<span class="pass">✓</span> test,' in cell and "webhook: HTTP 200; e-mail sent" in cell


def test_a_second_test_within_the_interval_is_refused_and_sends_nothing(user, receiver):
    api = ApiClient(user)
    first = api.post("/notifications", {"webhook_url": receiver.url + "?first"}).json()
    second = api.post("/notifications", {"webhook_url": receiver.url + "?second"}).json()
    assert api.post(f"/notifications/{first['id']}/test").status_code == 202
    again = api.post(f"/notifications/{first['id']}/test")
    assert again.status_code == 429 and f"less than {TEST_INTERVAL_S} s ago" in again.json()["detail"]
    assert api.post(f"/notifications/{second['id']}/test").status_code == 202  # each has its own interval

    client = logged_in(user)
    page = client.post(f"/account/notifications/{first['id']}/test/", follow=True).content.decode()
    assert f"less than {TEST_INTERVAL_S} s ago: wait before sending another" in page
    assert "A test is on its way" not in page
    deliveries_done()
    assert sorted(r.path.split("?")[1] for r in receiver.requests) == ["first", "second"]


def test_the_api_needs_a_token():
    assert ApiClient().get("/notifications").status_code == 401


def test_the_page_refuses_an_internal_url_with_the_reason_next_to_the_field(user):
    client = logged_in(user)
    response = client.post("/account/notifications/", {"webhook_url": "http://10.0.0.1/hook", "events": ["completed"]})
    assert response.status_code == 422
    page = response.content.decode()
    assert 'id="webhook-url-error"' in page and "10.0.0.1 is at 10.0.0.1, an internal address" in page
    assert 'value="http://10.0.0.1/hook"' in page  # what was typed stays, to be corrected
    assert not Notification.objects.exists()


def test_the_page_adds_shows_the_secret_once_sends_a_test_and_deletes(user, other_user, receiver, mock_latency):
    client = logged_in(user)
    experiment = experiment_create(owner=user, data=spec(name="Nightly"))
    page = client.get(f"/account/notifications/?experiment={experiment.pk}").content.decode()
    assert f'<option value="{experiment.pk}" selected>Nightly</option>' in page
    response = client.post(
        "/account/notifications/",
        {"webhook_url": receiver.url, "email": "", "events": ["completed", "failed"], "experiment_id": experiment.pk},
    )
    notification = Notification.objects.get()
    assert notification.experiment == experiment and notification.events == ["completed", "failed"]
    assert notification_secret(notification) in response.content.decode()
    assert notification_secret(notification) not in client.get("/account/notifications/").content.decode()

    assert logged_in(other_user).post(f"/account/notifications/{notification.pk}/test/").status_code == 404
    client.post(f"/account/notifications/{notification.pk}/test/")
    deliveries_done()
    assert [r.json["event"] for r in receiver.requests] == ["test"]

    assert logged_in(other_user).post(f"/account/notifications/{notification.pk}/delete/").status_code == 404
    assert client.post(f"/account/notifications/{notification.pk}/delete/").status_code == 302
    assert not Notification.objects.exists()


def test_the_page_refuses_an_email_longer_than_its_column(user):
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example"  # valid, and 263 characters
    response = logged_in(user).post("/account/notifications/", {"email": email, "events": ["completed"]})
    assert response.status_code == 422
    assert "An e-mail address has at most 254 characters." in response.content.decode()
    assert not Notification.objects.exists()


def test_a_user_has_at_most_so_many_notifications(user, other_user):
    for i in range(PER_USER):
        notification_create(owner=user, data={"email": f"n{i}@example.com"})
    response = ApiClient(user).post("/notifications", {"email": "one@example.com"})
    assert response.status_code == 422 and "delete one first" in str(response.json()["detail"])
    assert Notification.objects.filter(owner=user).count() == PER_USER
    assert ApiClient(other_user).post("/notifications", {"email": "bob@example.com"}).status_code == 201


def test_a_sweep_failed_twice_notifies_once(user, receiver, mock_latency):
    """Two workers of one sweep may both fail it: the second finds it failed and says nothing."""
    experiment = experiment_create(owner=user, data=spec())
    sweep = Sweep.objects.create(experiment=experiment, spec=experiment.spec, status="running",
                                 started_at=timezone.now())  # fmt: skip
    notification_create(owner=user, data={"webhook_url": receiver.url, "events": ["failed"]})
    assert sweep_fail(sweep.pk, "first worker: out of memory")
    assert sweep_fail(sweep.pk, "second worker: out of memory") == []
    deliveries_done()
    assert [r.json["sweep"]["error"] for r in receiver.requests] == ["first worker: out of memory"]
    sweep.refresh_from_db()
    assert sweep.error == "first worker: out of memory"


def test_the_page_needs_login(client):
    response = client.get("/account/notifications/")
    assert response.status_code == 302 and "/login" in response["Location"]


@pytest.mark.parametrize("chosen", ["abc", "99999999999999999999", "²", "theirs"])
def test_the_page_refuses_an_experiment_that_is_not_one_of_yours(user, other_user, mock_latency, chosen):
    theirs = experiment_create(owner=other_user, data=spec(name="Bob's"))
    chosen = str(theirs.pk) if chosen == "theirs" else chosen
    response = logged_in(user).post(
        "/account/notifications/", {"email": "a@example.com", "events": ["completed"], "experiment_id": chosen}
    )
    assert response.status_code == 422
    assert f"You have no experiment {chosen}." in response.content.decode()
    assert not Notification.objects.exists()


# Pausing and resuming


def test_a_paused_notification_is_not_told_and_a_resumed_one_is_with_the_same_secret(user, receiver, mock_latency):
    notification, secret = notification_create(owner=user, data={"webhook_url": receiver.url})
    notification_set_active(notification=notification, active=False)
    run_sweep(user)
    assert receiver.requests == []

    notification_set_active(notification=notification, active=True)
    sweep = run_sweep(user)
    [request] = receiver.requests
    assert request.json["sweep"]["id"] == sweep.pk
    assert verify(secret, request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])


def test_a_notification_paused_after_the_sweep_ended_but_before_delivery_is_not_told(user, receiver, mock_latency):
    """The worker reads `active` again when it delivers: a pause wins over a queued delivery."""
    notification, _ = notification_create(owner=user, data={"webhook_url": receiver.url})
    sweep = run_sweep(user)
    receiver.requests.clear()
    notification_set_active(notification=notification, active=False)
    assert notifications_deliver(sweep_id=sweep.pk, event="completed") == 0
    assert receiver.requests == []


def test_a_paused_notification_sends_no_email(user, mock_latency):
    notification, _ = notification_create(owner=user, data={"email": "alice@example.com"})
    notification_set_active(notification=notification, active=False)
    run_sweep(user)
    assert mail.outbox == []


def test_the_api_pauses_and_resumes_a_notification(user, receiver):
    api = ApiClient(user)
    created = api.post("/notifications", {"webhook_url": receiver.url, "events": ["failed"]}).json()
    response = api.patch(f"/notifications/{created['id']}", {"active": False})
    assert response.status_code == 200
    paused = response.json()
    assert paused == {**api.get("/notifications").json()[0], "active": False}
    assert {k: v for k, v in paused.items() if k != "active"} == {
        k: v for k, v in created.items() if k not in ("active", "secret")
    }
    notification = Notification.objects.get()
    assert not notification.active and notification_secret(notification) == created["secret"]
    again = api.patch(f"/notifications/{created['id']}", {"active": False})  # the state asked for, not a flip
    assert again.status_code == 200 and again.json()["active"] is False
    assert api.patch(f"/notifications/{created['id']}", {"active": True}).json()["active"] is True
    assert Notification.objects.get().active


@pytest.mark.parametrize(
    "body, field",
    [
        ({"active": False, "webhook_url": "https://example.com/"}, "webhook_url"),
        ({"enabled": False}, "enabled"),  # and "active", missing
        ({}, "active"),
        ({"active": "no"}, "active"),
        ({"active": None}, "active"),
        ({"active": 0}, "active"),
    ],
)
def test_the_api_refuses_a_patch_with_other_or_bad_fields_naming_them(user, body, field):
    api = ApiClient(user)
    created = api.post("/notifications", {"email": "a@example.com"}).json()
    response = api.patch(f"/notifications/{created['id']}", body)
    assert response.status_code == 422
    # ninja's shape for a schema's error: "body", the parameter, then the field
    assert ["body", "body", field] in [e["loc"] for e in response.json()["detail"]]
    assert Notification.objects.get().active


def test_the_api_cannot_pause_another_users_notification(user, other_user):
    created = ApiClient(user).post("/notifications", {"email": "a@example.com"}).json()
    assert ApiClient(other_user).patch(f"/notifications/{created['id']}", {"active": False}).status_code == 404
    assert ApiClient(user).patch("/notifications/999999", {"active": False}).status_code == 404
    assert Notification.objects.get().active


def test_the_api_sends_a_test_to_a_paused_notification_and_says_it_is_paused(user, receiver):
    api = ApiClient(user)
    created = api.post("/notifications", {"webhook_url": receiver.url}).json()
    api.patch(f"/notifications/{created['id']}", {"active": False})
    response = api.post(f"/notifications/{created['id']}/test")
    assert response.status_code == 202 and "This notification is paused" in response.json()["detail"]
    deliveries_done()
    assert [r.json["event"] for r in receiver.requests] == ["test"]


def test_the_page_pauses_and_resumes_showing_the_state(user, receiver):
    client = logged_in(user)
    notification, _ = notification_create(owner=user, data={"webhook_url": receiver.url})
    row = f'<tr id="notification-{notification.pk}">'
    page = client.get("/account/notifications/").content.decode()
    assert row in page and '<input type="hidden" name="active" value="false">' in page and ">Pause</button>" in page

    response = client.post(f"/account/notifications/{notification.pk}/active/", {"active": "false"}, follow=True)
    page = response.content.decode()
    assert "Notification paused" in page
    assert f'<tr id="notification-{notification.pk}" class="paused">' in page and "<strong>paused</strong>" in page
    assert '<input type="hidden" name="active" value="true">' in page and ">Resume</button>" in page
    notification.refresh_from_db()
    assert not notification.active and notification.webhook_url == receiver.url

    page = client.post(f"/account/notifications/{notification.pk}/test/", follow=True).content.decode()
    assert "A test is on its way" in page and "This notification is paused" in page
    deliveries_done()
    assert [r.json["event"] for r in receiver.requests] == ["test"]

    client.post(f"/account/notifications/{notification.pk}/active/", {"active": "true"})
    notification.refresh_from_db()
    assert notification.active


def test_the_page_refuses_a_pause_without_a_state(user):
    notification, _ = notification_create(owner=user, data={"email": "a@example.com"})
    response = logged_in(user).post(f"/account/notifications/{notification.pk}/active/", {"active": "maybe"})
    assert response.status_code == 400
    notification.refresh_from_db()
    assert notification.active


def test_the_page_cannot_pause_another_users_notification(user, other_user):
    notification, _ = notification_create(owner=user, data={"email": "a@example.com"})
    response = logged_in(other_user).post(f"/account/notifications/{notification.pk}/active/", {"active": "false"})
    assert response.status_code == 404
    notification.refresh_from_db()
    assert notification.active


def test_the_page_needs_the_csrf_token_to_pause(user):
    notification, _ = notification_create(owner=user, data={"email": "a@example.com"})
    client = logged_in(user, enforce_csrf_checks=True)
    url = f"/account/notifications/{notification.pk}/active/"
    assert client.post(url, {"active": "false"}).status_code == 403
    notification.refresh_from_db()
    assert notification.active

    # with the token of the row's Pause form, the same request goes through
    page = client.get("/account/notifications/").content.decode()
    form = re.search(rf'action="{url}".*?name="csrfmiddlewaretoken" value="([^"]+)"', page, re.S)
    assert form
    assert client.post(url, {"active": "false", "csrfmiddlewaretoken": form.group(1)}).status_code == 302
    notification.refresh_from_db()
    assert not notification.active


def test_the_page_pause_needs_login_and_a_post(client, user):
    notification, _ = notification_create(owner=user, data={"email": "a@example.com"})
    url = f"/account/notifications/{notification.pk}/active/"
    response = client.post(url, {"active": "false"})
    assert response.status_code == 302 and "/login" in response["Location"]
    assert logged_in(user).get(url).status_code == 405
    notification.refresh_from_db()
    assert notification.active

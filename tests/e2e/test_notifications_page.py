"""Notifications in a real browser: from the experiment page's "Notify me" to a notification
for that experiment, its secret shown once, a refused internal URL, and a test delivery that
the server (daphne, its in-process worker) signs and sends to a receiver on 127.0.0.1, then
pausing and resuming it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from sweeps.engine.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from sweeps.models import Notification
from sweeps.services.experiments import experiment_create
from tests.conftest import PASSWORDS, spec
from tests.e2e.conftest import log_in, screenshot
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.servers import daphne

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app(transactional_db, mock_latency) -> Iterator[str]:
    """The server of tests/e2e/conftest.py, told (as an operator would) that 127.0.0.1 may be called."""
    with daphne(PROMPTLOOPER_WEBHOOK_ALLOW="127.0.0.1") as host:
        yield f"http://{host}"


def test_notify_me_adds_a_notification_for_the_experiment_and_sends_a_test(page: Page, user):
    experiment = experiment_create(owner=user, data=spec(name="Nightly tickets"))
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/")
    page.get_by_role("link", name="Notify me").click()

    expect(page.get_by_label("Experiment", exact=True)).to_have_value(str(experiment.pk))
    page.get_by_label("Webhook URL").fill("http://10.0.0.1/hook")
    page.get_by_role("button", name="Add notification").click()
    expect(page.locator("#webhook-url-error")).to_contain_text("10.0.0.1, an internal address")
    expect(page.get_by_label("Webhook URL")).to_have_attribute("aria-invalid", "true")

    with WebhookReceiver() as receiver:
        page.get_by_label("Webhook URL").fill(receiver.url)
        page.get_by_label("failed", exact=True).uncheck()
        page.get_by_role("button", name="Add notification").click()
        secret = page.locator("#new-secret").inner_text().strip()
        assert secret.startswith("whsec_")
        row = page.locator("#notifications tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Nightly tickets")
        expect(row).to_contain_text("completed, budget, provider")
        screenshot(page, "notifications-page")

        page.get_by_role("button", name="Send test").click()
        expect(page.get_by_role("alert")).to_contain_text("A test is on its way")
        expect(page.locator("#new-secret")).to_have_count(0)  # shown once
        [request] = receiver.wait_for(1)

    assert request.json["event"] == "test"
    assert verify(secret, request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])
    notification = Notification.objects.get()
    assert notification.experiment_id == experiment.pk and notification.events == ["completed", "budget", "provider"]

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("alert")).to_contain_text("Notification paused")
    expect(page.locator("#notifications tbody tr")).to_contain_text("paused")
    assert not Notification.objects.get().active
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    assert Notification.objects.get().active

    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No notifications yet.")).to_be_visible()

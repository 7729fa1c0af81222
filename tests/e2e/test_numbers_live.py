"""Issue 12, item 12, in a real browser: the live progress of a sweep stopped part-way counts
its cancelled samples apart, never as done, without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from sweeps.models import RunSample
from sweeps.services.experiments import experiment_create
from tests.conftest import PASSWORDS, spec, wait_for
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_stopping_a_sweep_shows_cancelled_samples_apart_from_the_done_ones(page: Page, user, mock_latency):
    mock_latency(300)
    experiment = experiment_create(owner=user, data=spec(max_concurrency=1))
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/")
    page.evaluate("window.notReloaded = true")

    page.locator("button[data-action=start]").click()
    wait_for(lambda: RunSample.objects.filter(sweep__experiment=experiment, status="completed").exists())
    page.locator("button[data-action=stop]").click()

    expect(page.locator("#sweep-status")).to_have_text("stopped")
    expect(page.locator("#progress-text")).to_have_text(re.compile(r"^\d+ of 12 done · \d+ cancelled$"))
    wait_for(
        lambda: not RunSample.objects.filter(sweep__experiment=experiment, status__in=("pending", "running")).exists()
    )
    sweep = experiment.sweeps.get()
    done = RunSample.objects.filter(sweep=sweep, status__in=("completed", "failed")).count()
    cancelled = RunSample.objects.filter(sweep=sweep, status="cancelled").count()
    expect(page.locator("#progress-text")).to_have_text(f"{done} of 12 done · {cancelled} cancelled")
    expect(page.locator("#progress")).to_have_attribute("value", str(done))  # not a full bar
    assert 0 < done < 12 and page.evaluate("window.notReloaded") is True

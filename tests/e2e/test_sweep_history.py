"""An experiment's earlier sweeps, in a real browser: the sweep picker shows the history, a
click shows an earlier sweep's leaderboard (read only: no controls), and the way back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from sweeps.services.experiments import experiment_create, experiment_update
from sweeps.services.sweeps import sweep_start
from tests.conftest import PASSWORDS, spec, wait_for_sweep
from tests.e2e.conftest import log_in
from tests.e2e.test_dashboard_ranking import COUNT_LIVE_UPDATES

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_picker_shows_an_earlier_sweep_and_leads_back(page: Page, user, mock_latency):
    experiment = experiment_create(owner=user, data=spec(sweep={"type": "grid", "params": {"model": ["mock/echo"]}}))
    first = wait_for_sweep(sweep_start(experiment=experiment))
    experiment = experiment_update(experiment=experiment, data=spec(sweep={"type": "grid", "params": {
        "model": ["mock/upper", "mock/short"]}}))  # fmt: skip
    second = wait_for_sweep(sweep_start(experiment=experiment, started_by=user, via="api"))
    log_in(page, "alice", PASSWORDS["alice"])
    page.add_init_script(COUNT_LIVE_UPDATES)
    page.goto(f"/experiments/{experiment.pk}/")

    rows = page.locator("#leaderboard tbody tr")
    expect(rows).to_have_count(2)  # the latest sweep: two configurations
    expect(page.locator("#chart-history .plot-container")).to_be_visible()  # best score so far, drawn
    expect(page.locator("#sweep-title")).to_contain_text(f"Sweep {second.pk}")
    page.wait_for_function("window.liveUpdates > 0")  # the live part re-read once connected
    page.locator("#sweep-history summary").click()
    expect(page.locator("#sweep-picker tbody tr")).to_have_count(2)
    expect(page.locator(f"#sweep-picker tr[data-sweep-id='{second.pk}']")).to_contain_text("alice (api)")
    page.get_by_role("link", name=f"Sweep {first.pk}", exact=True).click()

    page.wait_for_url(re.compile(rf"\?sweep={first.pk}$"))
    expect(page.locator("#sweep-title")).to_contain_text(f"Sweep {first.pk}")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-run-id") == str(first.runs.get().pk)
    expect(page.locator("#earlier-sweep")).to_be_visible()
    expect(page.locator("#controls [data-action]")).to_have_count(0)  # an earlier sweep is read only

    page.get_by_role("link", name="Back to the latest").click()
    expect(page.locator("#sweep-title")).to_contain_text(f"Sweep {second.pk}")
    expect(rows).to_have_count(2)
    expect(page.locator("#controls [data-action=start]")).to_have_count(1)

"""Issue 7 in a real browser: sort the leaderboard by score per dollar and back, the live refresh
keeping the sort, and the score chart's toggle between cost and latency, each with its front."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from sweeps.services.experiments import experiment_create
from tests.conftest import PASSWORDS, spec
from tests.e2e.conftest import log_in, screenshot
from tests.integration.test_dashboard_ranking import (
    BY_SCORE_ORDER,
    BY_SPD_ORDER,
    COST_FRONT,
    FRONT_3D,
    LATENCY_FRONT,
    PER_DOLLAR,
    ranking_sweep,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Counts the live part's refreshes (static/sweeps/experiment.js), from before the page's scripts run.
COUNT_LIVE_UPDATES = "window.liveUpdates = 0; document.addEventListener('live:updated', () => window.liveUpdates++);"


RUN_IDS = "rows => rows.map(row => Number(row.dataset.runId))"


def row_ids(page: Page) -> list[int]:
    return page.locator("#leaderboard tbody tr").evaluate_all(RUN_IDS)


def front_ids(page: Page) -> list[int]:
    """The run ids of the Pareto front trace drawn in the score chart, as plotly holds them."""
    return page.evaluate("document.getElementById('chart-pareto').data[1].customdata")


def test_sort_by_score_per_dollar_and_plot_score_against_latency(page: Page, user):
    experiment = experiment_create(owner=user, data=spec(name="Ranking"))
    ids = ranking_sweep(experiment)
    names = {run_id: name for name, run_id in ids.items()}
    page.add_init_script(COUNT_LIVE_UPDATES)
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/")

    expect(page.locator("#leaderboard tbody tr")).to_have_count(len(ids))
    assert [names[i] for i in row_ids(page)] == BY_SCORE_ORDER
    sort = page.locator("#leaderboard-sort")
    expect(sort.get_by_role("link", name="Score", exact=True)).to_have_attribute("aria-current", "true")
    badged = page.locator("#leaderboard tbody tr:has(.badge.front)").evaluate_all(RUN_IDS)
    assert {names[i] for i in badged} == FRONT_3D

    # Sort by score per dollar: free runs first. The page's live refresh (on connecting) asks
    # the server with the page's query, so the order holds after it.
    with page.expect_response(lambda r: f"/experiments/{experiment.pk}/live/?order=-score_per_dollar" in r.url):
        sort.get_by_role("link", name="Score per dollar").click()
    page.wait_for_url(re.compile(r"\?order=-score_per_dollar$"))
    page.wait_for_function("window.liveUpdates > 0")
    expect(page.locator("#connection")).to_have_text("live")
    assert [names[i] for i in row_ids(page)] == BY_SPD_ORDER
    expect(sort.get_by_role("link", name="Score per dollar")).to_have_attribute("aria-current", "true")
    expect(sort.get_by_role("link", name="Score", exact=True)).not_to_have_attribute("aria-current", "true")
    headers = page.locator("#leaderboard thead th").all_inner_texts()
    column = [h.strip().lower() for h in headers].index("score / $")  # CSS upper-cases the headers
    cells = page.locator(f"#leaderboard tbody tr td:nth-child({column + 1})").all_inner_texts()
    assert cells == [PER_DOLLAR[name] for name in BY_SPD_ORDER]

    # The score chart: cost first, then latency with its own front, then back.
    chart = page.locator("#chart-pareto")
    expect(chart.locator(".plot-container")).to_be_visible()
    expect(chart.locator(".xtitle")).to_have_text("cost (USD)")
    assert front_ids(page) == [ids[name] for name in COST_FRONT]
    latency = page.get_by_role("button", name="Latency")
    latency.click()
    expect(latency).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="Cost")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#pareto-title")).to_have_text("Score against latency")
    expect(chart.locator(".xtitle")).to_have_text("latency (ms)")
    assert front_ids(page) == [ids[name] for name in LATENCY_FRONT]
    screenshot(page, "experiment-page-ranking")
    page.get_by_role("button", name="Cost").click()
    expect(chart.locator(".xtitle")).to_have_text("cost (USD)")
    expect(page.locator("#pareto-title")).to_have_text("Score against cost")
    assert front_ids(page) == [ids[name] for name in COST_FRONT]

    # And back to the score's order.
    sort.get_by_role("link", name="Score", exact=True).click()
    page.wait_for_url(re.compile(r"\?order=-score$"))
    expect(page.locator("#leaderboard tbody tr").first).to_have_attribute("data-run-id", str(ids[BY_SCORE_ORDER[0]]))
    assert [names[i] for i in row_ids(page)] == BY_SCORE_ORDER

"""The leaderboard of a realistic trial fits a 1280 px window: parameters every run shares
collapse into one line above the table, long prompts are cut with the whole text in a tooltip,
and the table needs no sideways scrolling."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import PASSWORDS, spec, wait_for_sweep
from tests.e2e.conftest import log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

LONG_PROMPTS = [
    "You are a meticulous support triage assistant. Read the customer's ticket carefully, decide which "
    "team should own it (billing, login, shipping or other), and answer with that single word only. "
    f"Variant {n}: if unsure, prefer the team the customer names. Ticket: {{{{ ticket }}}}"
    for n in (1, 2)
]


def test_the_leaderboard_of_a_wide_sweep_fits_1280_pixels(page: Page, user, mock_latency):
    experiment = experiment_create(owner=user, data=spec(
        scorers=[{"type": "icontains", "value": "{{ expected }}", "name": "mentions the team"},
                 {"type": "max_length", "value": 40, "name": "short answer"},
                 {"type": "regex", "value": "^[A-Za-z]+$", "name": "one word"}],
        sweep={"type": "grid", "params": {
            "model": ["mock/echo", "mock/upper"], "prompt": LONG_PROMPTS, "params.temperature": [0.0, 0.7],
            "params.max_tokens": [256], "system": ["Answer in English."]}},
    ))  # fmt: skip
    wait_for_sweep(sweep_start(experiment=experiment))
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/")

    expect(page.locator("#leaderboard tbody tr")).to_have_count(8)
    shared = page.locator("#shared-params")
    expect(shared).to_contain_text("params.max_tokens = 256")
    expect(shared).to_contain_text("system = Answer in English.")
    headers = [h.strip() for h in page.locator("#leaderboard thead th").all_text_contents()]
    assert "params.max_tokens" not in headers and "system" not in headers and "prompt" in headers
    prompt_cell = page.locator("#leaderboard td.param[title^='You are a meticulous']").first
    assert prompt_cell.get_attribute("title") in LONG_PROMPTS  # the whole prompt on hover
    assert len(prompt_cell.inner_text()) < len(LONG_PROMPTS[0])  # cut in the cell

    wrap = page.locator("#leaderboard").locator("xpath=..")
    sizes = wrap.evaluate("e => [e.scrollWidth, e.clientWidth, document.documentElement.scrollWidth, innerWidth]")
    screenshot(page, "leaderboard-1280")
    assert sizes[0] <= sizes[1] and sizes[2] <= sizes[3], f"the table scrolls sideways at 1280 px: {sizes}"

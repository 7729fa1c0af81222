"""A share link in a real browser: the owner makes one on the Share page, a reader with no
session opens it, reads the leaderboard, charts and a run, finds no control; once the owner
revokes it the reader gets a 404."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from sweeps.services.experiments import experiment_create
from tests.conftest import PASSWORDS, spec
from tests.e2e.conftest import LOAD_FAILED, log_in, screenshot
from tests.integration.test_share_links import make_sweep

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reader_opens_a_share_link_until_the_owner_revokes_it(page: Page, browser: Browser, app: str, user):
    experiment = experiment_create(owner=user, data=spec(name="Shared in a browser"))
    _, runs, _ = make_sweep(experiment, [0.4, 0.8, 0.6])
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/")
    page.get_by_role("link", name="Share").click()
    page.wait_for_url(re.compile(rf"/experiments/{experiment.pk}/shares/$"))
    page.get_by_label("Label").fill("reviewers")
    page.get_by_role("button", name="Create share link").click()
    url = page.locator("#share-links input.share-url").input_value()
    assert url.startswith(f"{app}/share/")

    reader_context = browser.new_context(viewport={"width": 1280, "height": 900})  # no session, no cookies
    reader = reader_context.new_page()
    reader.set_default_timeout(15_000)
    errors: list[str] = []
    reader.on("pageerror", lambda error: errors.append(str(error)))
    reader.on("console", lambda message: message.type == "error" and not message.text.startswith(LOAD_FAILED)
              and errors.append(message.text))  # fmt: skip
    try:
        reader.goto(url)
        expect(reader.locator("h1")).to_have_text("Shared in a browser")
        expect(reader.locator("#leaderboard tbody tr")).to_have_count(3)
        expect(reader.locator("#chart-by-param .plot-container")).to_be_visible()  # plotly drew without the socket
        expect(reader.locator("#shared-note")).to_contain_text("read-only")
        expect(reader.locator("form")).to_have_count(0)
        # Plotly's own zoom and pan buttons aside: they change nothing but the view.
        expect(reader.locator("button:not([data-pareto-axis]):not(.modebar-btn)")).to_have_count(0)
        expect(reader.get_by_role("link", name="Log out")).to_have_count(0)
        screenshot(reader, "share-link-experiment")

        best = runs[1]
        reader.locator(f"#leaderboard tr[data-run-id='{best.pk}'] a").click()
        reader.wait_for_url(f"{url}runs/{best.pk}/")
        expect(reader.locator("h1")).to_contain_text(f"Run {best.pk}")
        expect(reader.locator(".sample")).to_have_count(1)
        expect(reader.locator("button:not([type=submit])")).to_have_count(0)
        expect(reader.locator("form[method=post]")).to_have_count(0)
        reader.get_by_role("link", name="← Shared in a browser").click()
        reader.wait_for_url(re.compile(re.escape(url)))

        page.get_by_role("button", name="Revoke").click()
        expect(page.locator("#share-links tr.revoked")).to_have_count(1)
        response = reader.goto(url)
        assert response is not None and response.status == 404
        assert errors == [], errors
    finally:
        reader_context.close()

"""The regression view in a real browser: from the sweep picker to the two sweeps compared, the
rows that flipped side by side, another significance level chosen in the page's form."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORDS
from tests.e2e.conftest import log_in, screenshot
from tests.integration.test_regression_page import two_sweeps

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_picker_leads_to_the_regression_view_of_two_sweeps(page: Page, user, mock_latency):
    before, after = two_sweeps(user)
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{after.experiment_id}/")

    page.locator("#sweep-history summary").click()
    page.locator(f"#sweep-picker tr[data-sweep-id='{before.pk}']").get_by_role(
        "link", name=f"compare with sweep {after.pk}"
    ).click()

    page.wait_for_url(re.compile(rf"/regression/\?before={before.pk}&after={after.pk}$"))
    expect(page.locator("#regression-summary")).to_contain_text(
        "1 configuration got significantly worse, 0 better, 1 unchanged"
    )
    worse = page.locator("#regression tbody tr.verdict-worse")
    expect(worse).to_contain_text("model=mock/echo")
    expect(worse).to_contain_text("12 pass → fail")
    flips = page.locator(".flip.pass_to_fail")
    expect(flips).to_have_count(12)  # a worse configuration's flips start open
    first = flips.first
    expect(first.locator(".flip-before pre.output")).to_have_text("billing issue number 0")
    expect(first.locator(".flip-after ins.diff")).to_have_text("nothing")
    before_box, after_box = first.locator(".flip-before").bounding_box(), first.locator(".flip-after").bounding_box()
    assert before_box and after_box and after_box["x"] > before_box["x"] + before_box["width"] - 1  # side by side
    assert after_box["y"] == pytest.approx(before_box["y"], abs=2)
    screenshot(page, "regression-view")

    page.get_by_label("Significance level").fill("0.0000001")  # stricter than any p-value twelve rows can reach
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r"alpha=1e-07|alpha=0.0000001"))
    expect(page.locator("#regression-summary")).to_contain_text(
        "0 configurations got significantly worse, 0 better, 2 unchanged"
    )
    expect(page.locator("#regression tbody tr.verdict-worse")).to_have_count(0)

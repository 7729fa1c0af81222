"""Human review in a real browser: rating samples with the keyboard on the run page (j/k to
move, 1/2 to rate, 0 to clear, n for the note), persisted without leaving the page; typing a
note never triggers a shortcut; the compare page takes ratings by mouse."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from sweeps.models import Rating, RunSample
from tests.conftest import PASSWORDS, wait_for
from tests.e2e.conftest import log_in, screenshot
from tests.integration.test_human_review import judged_sweep

pytestmark = pytest.mark.django_db(transaction=True)


def ratings() -> dict[int, tuple[str, str]]:
    return {r.sample_id: (r.value, r.note) for r in Rating.objects.all()}


def first_run_page(page: Page, user) -> tuple[RunSample, RunSample, Locator, Locator]:
    """Alice on the run page of a judged sweep: its first two samples, and where the page shows them."""
    _, samples = judged_sweep(user)
    first, second = samples[0], samples[1]
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/runs/{first.run_id}/")
    return first, second, page.locator(f"#sample-{first.pk}"), page.locator(f"#sample-{second.pk}")


def test_rating_samples_with_the_keyboard_persists_them(page: Page, user):
    first, second, one, two = first_run_page(page, user)

    page.keyboard.press("j")
    expect(one).to_have_class("card sample review-focus")
    page.keyboard.press("1")
    expect(one.locator(".rating-state")).to_have_text("Saved")
    page.keyboard.press("j")
    expect(two).to_have_class("card sample review-focus")
    expect(one).not_to_have_class("card sample review-focus")
    page.keyboard.press("2")
    expect(two.locator(".rating-state")).to_have_text("Saved")
    expect(two.get_by_role("button", name="👎")).to_have_attribute("aria-pressed", "true")

    page.keyboard.press("k")
    page.keyboard.press("n")
    note = one.locator(".rating-note")
    expect(note).to_be_focused()
    note.press_sequentially("j and k 1 2 typed here stay text")  # no shortcut fires while typing
    note.press("Enter")
    expect(one.locator(".rating-state")).to_have_text("Saved")
    screenshot(page, "human-review-run-page")

    assert wait_for(lambda: ratings() == {first.pk: ("up", "j and k 1 2 typed here stay text"),
                                          second.pk: ("down", "")})  # fmt: skip
    page.reload()  # shown as stored
    expect(page.locator(f"#sample-{first.pk} .rating-note")).to_have_value("j and k 1 2 typed here stay text")
    expect(page.locator(f"#sample-{first.pk}").get_by_role("button", name="👍")).to_have_attribute(
        "aria-pressed", "true"
    )


def test_a_rating_given_with_the_keyboard_is_taken_back_with_0(page: Page, user):
    first, second, one, two = first_run_page(page, user)
    clear = one.get_by_role("button", name="Clear")
    expect(clear).to_be_hidden()  # nothing to take back yet

    page.keyboard.press("j")
    page.keyboard.press("2")
    expect(one.locator(".rating-state")).to_have_text("Saved")
    expect(clear).to_be_visible()
    page.keyboard.press("n")
    note = one.locator(".rating-note")
    note.press_sequentially("0 typed here is text")  # no clear while typing
    note.press("Enter")
    expect(one.locator(".rating-state")).to_have_text("Saved")
    assert wait_for(lambda: ratings() == {first.pk: ("down", "0 typed here is text")})
    note.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("1")
    expect(two.locator(".rating-state")).to_have_text("Saved")
    assert wait_for(lambda: ratings() == {first.pk: ("down", "0 typed here is text"), second.pk: ("up", "")})

    page.keyboard.press("k")
    page.keyboard.press("0")
    expect(one.locator(".rating-state")).to_have_text("Cleared")
    expect(one.get_by_role("button", name="👎")).to_have_attribute("aria-pressed", "false")
    expect(one.get_by_role("button", name="👍")).to_have_attribute("aria-pressed", "false")
    expect(clear).to_be_hidden()
    expect(note).to_have_value("")
    expect(page).to_have_url(f"/runs/{first.run_id}/")  # without leaving the page
    assert wait_for(lambda: ratings() == {second.pk: ("up", "")})  # the other sample's rating stays

    two.get_by_role("button", name="Clear").click()  # by mouse too
    expect(two.locator(".rating-state")).to_have_text("Cleared")
    assert wait_for(lambda: ratings() == {})
    page.reload()  # shown as stored
    expect(one.get_by_role("button", name="👎")).to_have_attribute("aria-pressed", "false")
    expect(clear).to_be_hidden()


def test_the_compare_page_rates_by_mouse(page: Page, user):
    sweep, samples = judged_sweep(user)
    rated = samples[3]
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{sweep.experiment_id}/compare/?runs={samples[0].run_id}&runs={rated.run_id}")

    form = page.locator(f"form.review[data-sample-id='{rated.pk}']")
    form.get_by_role("button", name="👎").click()
    expect(form.locator(".rating-state")).to_have_text("Saved")
    expect(page).to_have_url(
        f"/experiments/{sweep.experiment_id}/compare/?runs={samples[0].run_id}&runs={rated.run_id}"
    )
    assert wait_for(lambda: ratings() == {rated.pk: ("down", "")})

"""A person at the dashboard, in a real browser: log in, create an experiment, run it live,
pause and resume it, read runs and comparisons, and never see another user's work."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import PASSWORDS, spec, wait_for_sweep
from tests.e2e.conftest import log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_login_is_required_and_another_users_experiment_is_not_found(page: Page, user, other_user):
    theirs = experiment_create(owner=other_user, data=spec(name="Bob's secret"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    log_in(page, "alice", PASSWORDS["alice"])
    expect(page.get_by_text("Bob's secret")).to_have_count(0)
    response = page.goto(f"/experiments/{theirs.pk}/")
    assert response.status == 404


def progress(page: Page) -> tuple[int, int]:
    bar = page.locator("#progress")
    return int(bar.get_attribute("value") or 0), int(bar.get_attribute("max") or 0)


def test_create_estimate_start_pause_resume_and_watch_it_finish_without_a_reload(page: Page, user, mock_latency):
    mock_latency(300)
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto("/experiments/new/")
    expect(page.locator("textarea#spec")).to_contain_text("Ticket triage")  # the example, prefilled

    page.locator("button[name=action][value=estimate]").click()
    estimate = page.locator("#estimate")
    expect(estimate).to_contain_text("24")  # configurations: 4 models x 3 temperatures x 2 prompts
    expect(estimate).to_contain_text("144")  # samples: 24 x 6 rows

    page.locator("button[name=action][value=save]").click()
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    page.evaluate("window.notReloaded = true")  # gone if the page reloads

    page.locator("button[data-action=start]").click()
    expect(page.locator("#sweep-status")).to_have_text(re.compile("queued|running"))
    page.wait_for_function("Number(document.querySelector('#progress').value) > 0")
    page.locator("button[data-action=pause]").click()
    expect(page.locator("#sweep-status")).to_have_text("paused")
    settled = progress(page)  # the calls in flight finish, then nothing moves
    for _ in range(10):
        page.wait_for_timeout(1_000)
        settled, before = progress(page), settled
        if settled == before:
            break
    page.wait_for_timeout(1_500)
    assert progress(page) == settled and settled[0] < settled[1]

    page.locator("button[data-action=resume]").click()
    expect(page.locator("#sweep-status")).to_have_text("completed", timeout=60_000)
    done, total = progress(page)
    assert done == total == 144
    expect(page.locator("#progress-text")).to_have_text("144 of 144 done")
    expect(page.locator("#leaderboard tbody tr")).to_have_count(24)
    expect(page.locator("#chart-pareto .plot-container")).to_be_visible()
    expect(page.locator("#events li").first).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "experiment-page")


def test_an_invalid_spec_shows_each_error_by_path_and_keeps_the_text(page: Page, user):
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto("/experiments/new/")
    editor = page.locator("textarea#spec")
    broken = editor.input_value().replace("model: mock/echo", "model: nope/gpt", 1) + "\ncolour: blue\n"
    editor.fill(broken)
    page.locator("button[name=action][value=save]").click()
    expect(page.locator('.field-error [data-path="pipeline[0].model"]')).to_be_visible()
    expect(page.locator('.field-error [data-path="colour"]')).to_be_visible()
    assert page.locator("textarea#spec").input_value().strip() == broken.strip()


def test_a_csv_upload_fills_the_dataset(page: Page, user, tmp_path):
    csv = tmp_path / "tickets.csv"
    csv.write_text("ticket,expected\nRefund never arrived,billing\nCannot sign in,login\n")
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto("/experiments/new/")
    page.locator("input[type=file]#dataset").set_input_files(str(csv))
    page.locator("button[name=action][value=save]").click()
    page.wait_for_url(re.compile(r"/experiments/(\d+)/$"))
    experiment_id = int(re.search(r"/experiments/(\d+)/$", page.url).group(1))
    from sweeps.models import Experiment

    assert Experiment.objects.get(pk=experiment_id).spec["dataset"] == [
        {"ticket": "Refund never arrived", "expected": "billing"},
        {"ticket": "Cannot sign in", "expected": "login"},
    ]


def test_a_run_page_and_the_compare_page_show_the_outputs(page: Page, user):
    experiment = experiment_create(owner=user, data=spec())
    wait_for_sweep(sweep_start(experiment=experiment), until=("completed",))
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/")
    rows = page.locator("#leaderboard tbody tr")
    expect(rows).to_have_count(4)

    rows.nth(0).locator("input[name=runs]").check()
    rows.nth(3).locator("input[name=runs]").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.locator(".compare-row")).to_have_count(3)
    expect(page.locator(".diff").first).to_be_visible()  # mock/echo and mock/upper answer differently

    page.go_back()
    rows.nth(0).locator("a").first.click()
    expect(page.locator(".sample")).to_have_count(3)
    expect(page.locator(".stage-output").first).to_be_visible()
    expect(page.locator(".score-reason").first).not_to_be_empty()


def test_the_pages_fit_a_phone(browser, app, user):
    experiment = experiment_create(owner=user, data=spec())
    wait_for_sweep(sweep_start(experiment=experiment), until=("completed",))
    context = browser.new_context(base_url=app, viewport={"width": 375, "height": 740}, is_mobile=True)
    phone = context.new_page()
    log_in(phone, "alice", PASSWORDS["alice"])
    for path in ["/", f"/experiments/{experiment.pk}/", "/experiments/new/"]:
        phone.goto(path)
        overflow = phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than the phone"
    context.close()


def test_the_controls_work_from_the_keyboard(page: Page, user, mock_latency):
    experiment = experiment_create(owner=user, data=spec())
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/")
    start = page.locator("button[data-action=start]")
    for _ in range(60):  # tab through the page until the start button has the focus
        page.keyboard.press("Tab")
        if start.evaluate("button => button === document.activeElement"):
            break
    else:
        raise AssertionError("the start button is not reachable with the keyboard")
    page.keyboard.press("Enter")
    expect(page.locator("#sweep-status")).to_have_text("completed", timeout=30_000)

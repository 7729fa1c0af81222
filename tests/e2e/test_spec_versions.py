"""Spec versions in a real browser: an edit in the editor becomes version 2, listed with its
author and shown as a coloured diff; a large dataset is a summary in the editor, kept on save and
replaced by a file."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from sweeps.models import Experiment
from sweeps.services.experiments import experiment_create
from tests.conftest import PASSWORDS, spec
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = [{"ticket": f"ticket {i}", "expected": "billing"} for i in range(40)]


def test_an_edit_in_the_editor_is_listed_and_diffed(page: Page, user, console_errors):
    experiment = experiment_create(owner=user, data=spec(name="Versioned"))
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/edit/")
    text = page.locator("#spec").input_value()
    page.locator("#spec").fill("# tuned by hand\n" + text.replace("max_concurrency: 4", "max_concurrency: 2"))
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"**/experiments/{experiment.pk}/")

    page.locator("#versions-link").click()
    rows = page.locator("#versions tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Version 2")
    expect(rows.first).to_contain_text("alice")
    rows.first.get_by_role("link", name="Version 2").click()

    expect(page.locator("#version-diff .diff-added")).to_contain_text(["+# tuned by hand", "+max_concurrency: 2"])
    expect(page.locator("#version-diff .diff-removed")).to_have_text(["-max_concurrency: 4"])
    added = page.locator("#version-diff .diff-added").first
    assert added.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"  # coloured
    console_errors.check()


def test_a_large_dataset_is_a_summary_kept_on_save_and_replaced_by_a_file(page: Page, user, tmp_path, console_errors):
    experiment = experiment_create(owner=user, data=spec(name="Large", dataset=ROWS))
    log_in(page, "alice", PASSWORDS["alice"])
    page.goto(f"/experiments/{experiment.pk}/edit/")
    expect(page.locator("#dataset-summary")).to_contain_text("40 rows")
    assert "ticket 39" not in page.locator("#spec").input_value()
    with page.expect_download() as download:
        page.locator("#dataset-download-csv").click()
    assert len(download.value.path().read_text(encoding="utf-8").splitlines()) == 41

    page.locator("#spec").fill(page.locator("#spec").input_value().replace("max_concurrency: 4", "max_concurrency: 3"))
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"**/experiments/{experiment.pk}/")
    experiment.refresh_from_db()
    assert experiment.spec["max_concurrency"] == 3 and len(experiment.spec["dataset"]) == 40

    replacement = tmp_path / "new.csv"
    replacement.write_text("ticket,expected\nrefund,billing\nlogin fails,login\n", encoding="utf-8")
    page.goto(f"/experiments/{experiment.pk}/edit/")
    page.locator("#dataset").set_input_files(str(replacement))
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"**/experiments/{experiment.pk}/")
    experiment = Experiment.objects.get(pk=experiment.pk)
    assert [row["ticket"] for row in experiment.spec["dataset"]] == ["refund", "login fails"]
    assert list(experiment.versions.order_by("number").values_list("number", flat=True)) == [1, 2, 3]
    console_errors.check()

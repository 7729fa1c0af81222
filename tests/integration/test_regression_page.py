"""The regression view: two sweeps of one experiment compared configuration by configuration, the
rows that flipped shown side by side; the same verdicts as the API's compare route."""

from __future__ import annotations

import html
import re

import pytest

from sweeps.models import Sweep
from sweeps.services.experiments import experiment_create, experiment_update
from sweeps.services.sweeps import sweep_start
from tests.conftest import logged_in, spec, wait_for_sweep
from tests.integration.api_client import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)

TWELVE = [{"ticket": f"billing issue number {i}", "expected": "billing"} for i in range(12)]


def suite(prompt: str) -> dict:
    return spec(pipeline=[{"name": "label", "prompt": prompt, "model": "mock/echo"}], dataset=TWELVE,
                scorers=[{"type": "icontains", "value": "{{ expected }}"}], fail_fast=False,
                sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/error"]}})  # fmt: skip


def two_sweeps(user, later_prompt: str = "Label: nothing") -> tuple[Sweep, Sweep]:
    """A sweep that passes every row with mock/echo, then one whose prompt loses the label."""
    experiment = experiment_create(owner=user, data=suite("Label: {{ ticket }}"))
    before = wait_for_sweep(sweep_start(experiment=experiment))
    experiment_update(experiment=experiment, data=suite(later_prompt))
    return before, wait_for_sweep(sweep_start(experiment=experiment))


def text(response) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_latest_sweep_is_compared_with_the_one_before_and_the_flips_are_shown(user, mock_latency):
    before, after = two_sweeps(user)
    client = logged_in(user)

    response = client.get(f"/experiments/{after.experiment_id}/regression/")

    assert response.status_code == 200
    page = " ".join(text(response).split())
    assert "1 configuration got significantly worse, 0 better, 1 unchanged" in page
    assert f"sweep {before.pk} → sweep {after.pk}" in page
    api = ApiClient(user).get(f"/sweeps/{before.pk}/compare/{after.pk}").json()
    echo = next(c for c in api["configurations"] if c["config"]["model"] == "mock/echo")
    rows = re.findall(r'<tr data-config="(\w+)" class="verdict-(\w+)">', response.content.decode())
    assert rows[0] == (echo["config_hash"], "worse")  # what needs attention comes first
    assert f"{echo['p_value']:.3g}" in page and "12 pass → fail" in page
    # Each flipped row: its input, the output before (which passed) and after (which failed)
    assert "Row 0" in page and "billing issue number 0" in page
    first = re.search(
        r'<div class="flip pass_to_fail" data-row="0">(.*?)<div class="flip ', response.content.decode(), re.S
    )
    before_side, after_side = first.group(1).split('<div class="flip-after">')
    assert '<pre class="output">billing issue number 0</pre>' in before_side  # the answer that passed
    assert '<ins class="diff">nothing</ins>' in after_side and "✗" in after_side  # what replaced it, failing
    assert page.count("pass → fail") == 1 + 12 and "fail → pass" not in page


def test_the_picker_links_each_earlier_sweep_to_the_regression_view(user, mock_latency):
    before, after = two_sweeps(user)
    page = logged_in(user).get(f"/experiments/{after.experiment_id}/").content.decode()
    assert f"/regression/?before={before.pk}&amp;after={after.pk}" in page


def test_chosen_sweeps_and_level_and_what_is_refused(user, other_user, mock_latency):
    before, after = two_sweeps(user, later_prompt="Label this: {{ ticket }}")
    client, path = logged_in(user), f"/experiments/{after.experiment_id}/regression/"

    same = client.get(path, {"before": before.pk, "after": after.pk, "alpha": "0.5"})
    assert "0 configurations got significantly worse, 0 better, 2 unchanged" in " ".join(text(same).split())
    reversed_ = client.get(path, {"before": after.pk, "after": before.pk})
    assert reversed_.status_code == 200 and f"sweep {after.pk} → sweep {before.pk}" in text(reversed_)

    bad_alpha = client.get(path, {"alpha": "1.5"})
    assert bad_alpha.status_code == 400 and "alpha must be a number between 0 and 1, not '1.5'" in text(bad_alpha)
    twice = client.get(path, {"before": after.pk, "after": after.pk})
    assert twice.status_code == 400 and "Choose two different sweeps." in text(twice)
    other = experiment_create(owner=user, data=suite("x"))
    stranger = wait_for_sweep(sweep_start(experiment=other))
    assert client.get(path, {"before": stranger.pk}).status_code == 404  # another experiment's sweep
    assert client.get(f"/experiments/{other.pk}/regression/").status_code == 200  # one sweep: nothing to compare
    assert "Comparing needs two sweeps" in text(client.get(f"/experiments/{other.pk}/regression/"))
    assert logged_in(other_user).get(path).status_code == 404
    assert client.get(path).status_code == 200
    client.logout()
    assert client.get(path).status_code == 302

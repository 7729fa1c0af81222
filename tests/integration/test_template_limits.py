"""Hostile templates and huge texts on real parts (issue 12, items 5 and 6): a template bomb
fails its sample or its validation with a clear message; a huge output is stored cut, and pages
and API responses show a short part of it with a working "show full"."""

from __future__ import annotations

import json

import pytest

from sweeps.engine import templating
from sweeps.models import Experiment, RunSample
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import logged_in, spec, wait_for_sweep
from tests.integration.api_client import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)

# A bomb only for the row whose n is large: validation (no variables) cannot see it, the sample must stop it.
ROW_BOMB = "{% for i in range(n) %}{% for j in range(n) %}{% for k in range(n) %}{% endfor %}{% endfor %}{% endfor %}{{ ticket }}"
BOMB = "{% for i in range(20000) %}{% for j in range(20000) %}{% endfor %}{% endfor %}"


@pytest.fixture
def api(user, mock_latency) -> ApiClient:
    return ApiClient(user)


def test_a_template_bomb_in_a_stage_fails_that_sample_and_the_sweep_goes_on(user, mock_latency):
    data = spec(
        pipeline=[{"name": "answer", "prompt": ROW_BOMB, "model": "mock/echo"}],
        dataset=[{"ticket": "billing", "n": 99999}, {"ticket": "login", "n": 2}, {"ticket": "shipping", "n": 3}],
        scorers=[{"type": "min_length", "value": 1}],
        sweep={"type": "grid", "params": {"model": ["mock/echo"]}},
    )
    experiment = experiment_create(owner=user, data=data)
    sweep = wait_for_sweep(sweep_start(experiment=experiment), timeout=60)

    assert sweep.status == "completed" and (sweep.completed, sweep.failed) == (2, 1)
    bombed = RunSample.objects.get(sweep=sweep, row_index=0)
    assert bombed.status == "failed"
    assert bombed.error.startswith("stage 'answer': template limit: ")
    assert set(RunSample.objects.filter(sweep=sweep, row_index__gt=0).values_list("output", flat=True)) == {
        "login",
        "shipping",
    }


@pytest.mark.parametrize(
    "scorer",
    [
        {"type": "regex", "value": BOMB},
        {"type": "contains", "value": BOMB},
        {"type": "regex", "value": "{{ '{:>999999999}'.format('a') }}"},
        {"type": "contains", "value": "{{ '%0999999999d' % 1 }}"},
    ],
)
def test_creating_an_experiment_with_a_bomb_scorer_is_a_422_naming_the_field(api, scorer):
    response = api.post("/experiments", spec(scorers=[scorer]))
    assert response.status_code == 422
    errors = {d["field"]: d["msg"] for d in response.json()["detail"]}
    assert "template limit: " in errors["scorers[0].value"]
    assert not Experiment.objects.exists()


def test_the_estimate_of_a_bomb_says_the_samples_fail(user, mock_latency):
    client = logged_in(user)
    data = spec(
        pipeline=[{"name": "answer", "prompt": ROW_BOMB, "model": "mock/echo"}],
        dataset=[{"ticket": "billing", "n": 99999}, {"ticket": "login", "n": 99999}],
        scorers=[{"type": "min_length", "value": 1}],
    )
    response = client.post("/experiments/estimate/", {"spec": json.dumps(data)})
    assert response.status_code == 200
    assert b"template limit: " in response.content


@pytest.fixture
def huge_output(user, mock_latency, settings):
    """A finished sample whose one stage answered 20 MB; 5 MB of it stored."""
    settings.PROMPTLOOPER_STORED_TEXT_MAX_CHARS = 5_000_000
    settings.PROMPTLOOPER_SHOWN_TEXT_CHARS = 10_000
    templating.configure(templating.TemplateLimits(max_chars=25_000_000))
    try:
        data = spec(
            pipeline=[{"name": "answer", "prompt": "{{ ticket }}: {{ 'a' * 20000000 }}", "model": "mock/echo"}],
            dataset=[{"ticket": "billing"}],
            scorers=[{"type": "min_length", "value": 1}],
            sweep={"type": "grid", "params": {"model": ["mock/echo"]}},
        )
        experiment = experiment_create(owner=user, data=data)
        sweep = wait_for_sweep(sweep_start(experiment=experiment), timeout=60)
    finally:
        templating.configure(templating.TemplateLimits())
    assert sweep.status == "completed", sweep.error
    return RunSample.objects.get(sweep=sweep)


def test_a_huge_output_is_stored_cut_and_shown_short_with_a_working_show_full(user, other_user, huge_output):
    # One sweep for three checks: a 20 MB answer takes seconds to make.
    assert huge_output.output.startswith("a" * 5_000_000)
    assert huge_output.output.endswith("\n[… 15,000,000 more characters were not stored]")
    assert len(huge_output.stages[0]["prompt"]) < 5_100_000
    the_run_page_shows_it_short_with_a_working_show_full(user, other_user, huge_output)
    the_api_shows_it_short_naming_what_it_cut(user, other_user, huge_output)


def the_run_page_shows_it_short_with_a_working_show_full(user, other_user, huge_output):
    client = logged_in(user)
    page = client.get(f"/runs/{huge_output.run_id}/")
    assert page.status_code == 200 and len(page.content) < 200_000
    link = f"/samples/{huge_output.pk}/text/?part=stages.0.output"  # the page shows each stage's output
    assert f'href="{link}"'.encode() in page.content and b"show full" in page.content

    full = client.get(link)
    assert full.status_code == 200 and full["Content-Type"].startswith("text/plain")
    assert full.content.decode() == huge_output.stages[0]["output"]
    prompt = client.get(f"/samples/{huge_output.pk}/text/", {"part": "stages.0.prompt"})
    assert prompt.content.decode() == huge_output.stages[0]["prompt"]
    assert client.get(f"/samples/{huge_output.pk}/text/", {"part": "stages.7.output"}).status_code == 404

    assert logged_in(other_user).get(link).status_code == 404


def the_api_shows_it_short_naming_what_it_cut(user, other_user, huge_output):
    api = ApiClient(user)
    response = api.get(f"/runs/{huge_output.run_id}")
    assert response.status_code == 200 and len(response.content) < 200_000
    sample = response.json()["samples"]["items"][0]
    assert sample["cut"] == ["stages.0.prompt", "stages.0.output", "output"]
    assert sample["output"] == "a" * 10_000

    full = api.get(f"/runs/{huge_output.run_id}/samples/{huge_output.pk}/text", part="output")
    assert full.status_code == 200 and full.content.decode() == huge_output.output
    assert api.get(f"/runs/{huge_output.run_id}/samples/{huge_output.pk}/text", part="nope").status_code == 404
    assert api.get(f"/runs/{huge_output.run_id + 1}/samples/{huge_output.pk}/text").status_code == 404
    assert ApiClient(other_user).get(f"/runs/{huge_output.run_id}/samples/{huge_output.pk}/text").status_code == 404


def test_short_texts_are_not_cut(user, mock_latency):
    experiment = experiment_create(owner=user, data=spec())
    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    sample = RunSample.objects.filter(sweep=sweep).first()
    items = ApiClient(user).get(f"/runs/{sample.run_id}").json()["samples"]["items"]
    assert all(item["cut"] == [] for item in items)

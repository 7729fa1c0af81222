"""Human review through the web and the API: a person's 👍/👎 per sample, the leaderboard's
`human` column, the export's columns and the judge's agreement with the ratings. The sweep is
written directly (no worker): these pages and routes only read it."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sweeps.models import Rating, Run, RunSample, Score, Sweep
from sweeps.selectors import export
from sweeps.services.experiments import experiment_create
from tests.conftest import logged_in, spec
from tests.integration.api_client import ApiClient

JUDGE = {"type": "llm_judge", "model": "mock/echo", "rubric": "Is the label {{ label }} right?"}
# Per sample (2 runs x 3 rows, in run then row order): the judge's verdict, and the rating given
VERDICTS = [True, True, False, False, True, False]
RATINGS = ["up", "down", "up", "down", "up", "down"]
# By hand: both pass 2, judge only 1, human only 1, both fail 2 -> 4/6 agree; each says yes
# half the time, so chance agreement is 0.5 and kappa = (4/6 - 0.5) / 0.5 = 1/3.


def judged_sweep(owner, *, scorers=None) -> tuple[Sweep, list[RunSample]]:
    data = spec(scorers=scorers or [{"type": "icontains", "value": "{{ expected }}"}, JUDGE])
    experiment = experiment_create(owner=owner, data=data)
    sweep = Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="completed")
    samples = []
    for model in ("mock/echo", "mock/upper"):
        run = Run.objects.create(experiment=experiment, sweep=sweep, config={"model": model}, config_hash=model,
                                 status="completed", score=0.5, finished_at=timezone.now(), samples_total=3)  # fmt: skip
        for row in range(3):
            sample = RunSample.objects.create(run=run, sweep=sweep, row_index=row, inputs={"ticket": f"t{row}"},
                                              status="completed", output=f"answer {row}", score=0.5)  # fmt: skip
            samples.append(sample)
    for i, sample in enumerate(samples):
        Score.objects.create(sample=sample, scorer_index=0, name="icontains", value=1, passed=True)
        if len(data["scorers"]) > 1:
            passed = VERDICTS[i]
            Score.objects.create(sample=sample, scorer_index=1, name="llm_judge", value=float(passed), passed=passed)
    return sweep, samples


def csrf_client(user, page: str):
    client = logged_in(user, enforce_csrf_checks=True)
    assert client.get(page).status_code == 200
    return client, client.cookies["csrftoken"].value


def rate(client, token, sample_id, body):
    return client.post(f"/samples/{sample_id}/rating/", body, content_type="application/json",
                       headers={"X-CSRFToken": token, "Accept": "application/json"})  # fmt: skip


# --- the web endpoint ---


@pytest.mark.django_db
def test_rating_from_the_run_page_stores_replaces_and_clears(user):
    _, samples = judged_sweep(user)
    sample = samples[0]
    client, token = csrf_client(user, f"/runs/{sample.run_id}/")

    response = rate(client, token, sample.pk, {"value": "up", "note": "  clear and right "})
    assert response.status_code == 200
    assert response.json()["rating"]["value"] == "up" and response.json()["rating"]["note"] == "clear and right"
    rating = Rating.objects.get()
    assert (rating.sample_id, rating.user_id, rating.run_id, rating.value) == (sample.pk, user.pk, sample.run_id, "up")

    assert rate(client, token, sample.pk, {"value": "down", "note": ""}).json()["rating"]["value"] == "down"
    assert list(Rating.objects.values_list("value", "note")) == [("down", "")]  # one per sample and user

    page = client.get(f"/runs/{sample.run_id}/").content.decode()
    form = re.search(rf'<form class="review"[^>]*action="/samples/{sample.pk}/rating/".*?</form>', page, re.S)
    assert form and 'value="down" class="rate secondary" aria-pressed="true"' in form.group(0)

    assert rate(client, token, sample.pk, {"value": "clear"}).json() == {"sample_id": sample.pk, "rating": None}
    assert not Rating.objects.exists()


@pytest.mark.django_db
def test_a_plain_form_post_rates_and_goes_back_to_the_sample(user):
    _, samples = judged_sweep(user)
    sample = samples[1]
    client, token = csrf_client(user, f"/runs/{sample.run_id}/")
    back = f"/runs/{sample.run_id}/?page=1"

    response = client.post(f"/samples/{sample.pk}/rating/",
                           {"value": "down", "note": "wrong label", "next": back, "csrfmiddlewaretoken": token})  # fmt: skip

    assert response.status_code == 302 and response["Location"] == f"{back}#sample-{sample.pk}"
    assert Rating.objects.get().note == "wrong label"
    offsite = client.post(f"/samples/{sample.pk}/rating/",
                          {"value": "up", "next": "https://evil.example/", "csrfmiddlewaretoken": token})  # fmt: skip
    assert offsite["Location"] == f"/#sample-{sample.pk}"


def clear_button(html: str, sample_id: int) -> str:
    form = re.search(rf'<form class="review"[^>]*action="/samples/{sample_id}/rating/".*?</form>', html, re.S)
    assert form
    button = re.search(r'<button[^>]*value="clear"[^>]*>Clear</button>', form.group(0))
    assert button
    return button.group(0)


@pytest.mark.django_db
def test_the_clear_button_shows_only_on_a_rated_sample(user):
    _, samples = judged_sweep(user)
    Rating.objects.create(sample=samples[0], user=user, run_id=samples[0].run_id, value="down")
    html = logged_in(user).get(f"/runs/{samples[0].run_id}/").content.decode()
    assert " hidden" not in clear_button(html, samples[0].pk)
    assert " hidden" in clear_button(html, samples[1].pk)


@pytest.mark.django_db
def test_a_plain_form_clear_takes_the_rating_back_and_goes_back_to_the_sample(user, other_user):
    _, samples = judged_sweep(user)
    sample = samples[2]
    others = judged_sweep(other_user)[1]
    Rating.objects.create(sample=sample, user=user, run_id=sample.run_id, value="up", note="fine")
    Rating.objects.create(sample=samples[3], user=user, run_id=samples[3].run_id, value="down")
    Rating.objects.create(sample=others[0], user=other_user, run_id=others[0].run_id, value="up")
    client, token = csrf_client(user, f"/runs/{sample.run_id}/")
    back = f"/runs/{sample.run_id}/?page=1"

    response = client.post(f"/samples/{sample.pk}/rating/",
                           {"value": "clear", "note": "fine", "next": back, "csrfmiddlewaretoken": token})  # fmt: skip

    assert response.status_code == 302 and response["Location"] == f"{back}#sample-{sample.pk}"
    assert set(Rating.objects.values_list("sample_id", flat=True)) == {samples[3].pk, others[0].pk}  # that one only
    assert " hidden" in clear_button(client.get(back).content.decode(), sample.pk)
    again = client.post(f"/samples/{sample.pk}/rating/",
                        {"value": "clear", "next": "https://evil.example/", "csrfmiddlewaretoken": token})  # fmt: skip
    assert again.status_code == 302 and again["Location"] == f"/#sample-{sample.pk}"  # nothing to clear is fine
    assert Rating.objects.count() == 2


@pytest.mark.django_db
def test_clearing_by_form_needs_the_csrf_token_and_ones_own_sample(user, other_user):
    _, samples = judged_sweep(other_user)
    mine = judged_sweep(user)[1][0]
    Rating.objects.create(sample=samples[0], user=other_user, run_id=samples[0].run_id, value="up")
    Rating.objects.create(sample=mine, user=user, run_id=mine.run_id, value="up")
    client, token = csrf_client(user, f"/runs/{mine.run_id}/")

    assert client.post(f"/samples/{mine.pk}/rating/", {"value": "clear"}).status_code == 403
    other = client.post(f"/samples/{samples[0].pk}/rating/",
                        {"value": "clear", "next": "/", "csrfmiddlewaretoken": token})  # fmt: skip
    assert other.status_code == 404
    assert Rating.objects.count() == 2


@pytest.mark.django_db
def test_rating_needs_the_csrf_token_a_login_and_a_post(user):
    _, samples = judged_sweep(user)
    url = f"/samples/{samples[0].pk}/rating/"
    client, _ = csrf_client(user, f"/runs/{samples[0].run_id}/")
    assert client.post(url, {"value": "up"}).status_code == 403
    assert logged_in(user).get(url).status_code == 405
    from django.test import Client

    anonymous = Client().post(url, {"value": "up"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert not Rating.objects.exists()


@pytest.mark.django_db
def test_another_users_sample_is_404_on_the_web(user, other_user):
    _, samples = judged_sweep(other_user)
    judged_sweep(user)
    client, token = csrf_client(user, "/")
    assert rate(client, token, samples[0].pk, {"value": "up"}).status_code == 404
    assert rate(client, token, samples[0].pk, {"value": "clear"}).status_code == 404
    assert not Rating.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [({"value": "great"}, "value"), ({}, "value"), ({"value": "up", "note": "x" * 2001}, "note"),
     ({"value": "up", "note": 5}, "note"), ({"value": "up", "note": "a\x00b"}, "note"), (["up"], "body")],
)  # fmt: skip
def test_bad_input_on_the_web_is_422_naming_the_field(user, body, field):
    _, samples = judged_sweep(user)
    client, token = csrf_client(user, f"/runs/{samples[0].run_id}/")
    response = rate(client, token, samples[0].pk, body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == field
    assert not Rating.objects.exists()


@pytest.mark.django_db
def test_the_compare_page_offers_the_rating_controls_with_the_rating_given(user):
    sweep, samples = judged_sweep(user)
    Rating.objects.create(sample=samples[4], user=user, run_id=samples[4].run_id, value="up", note="best one")
    run_ids = sorted({s.run_id for s in samples})
    page = logged_in(user).get(f"/experiments/{sweep.experiment_id}/compare/?runs={run_ids[0]}&runs={run_ids[1]}")
    html = page.content.decode()
    assert html.count('<form class="review"') == 6 and "sweeps/review.js" in html
    assert re.search(
        rf'action="/samples/{samples[4].pk}/rating/" data-sample-id="{samples[4].pk}" data-value="up"', html
    )
    assert 'value="best one"' in html


# --- the API ---


@pytest.mark.django_db
def test_the_api_rates_shows_and_takes_back_a_rating(user, other_user):
    _, samples = judged_sweep(user)
    api = ApiClient(user)
    sample = samples[2]

    put = api.request("put", f"/samples/{sample.pk}/rating", {"value": "down", "note": "off topic"})
    assert put.status_code == 200 and put.json()["value"] == "down" and put.json()["note"] == "off topic"

    run = api.get(f"/runs/{sample.run_id}").json()
    rated = {s["id"]: s["rating"] for s in run["samples"]["items"]}
    assert rated[sample.pk]["value"] == "down" and rated[samples[0].pk] is None
    assert run["human"] == {"up": 0, "count": 1, "share": 0.0}

    assert ApiClient(other_user).request("put", f"/samples/{sample.pk}/rating", {"value": "up"}).status_code == 404
    assert ApiClient(other_user).request("delete", f"/samples/{sample.pk}/rating").status_code == 404
    assert api.request("delete", f"/samples/{sample.pk}/rating").status_code == 204
    assert not Rating.objects.exists()
    assert api.request("delete", f"/samples/{sample.pk}/rating").status_code == 204  # nothing left: fine


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [({"value": "meh"}, "value"), ({"note": "why"}, "value"), ({"value": "up", "note": "x" * 2001}, "note"),
     ({"value": "up", "note": "a\x00b"}, "note")],
)  # fmt: skip
def test_bad_input_in_the_api_is_422_naming_the_field(user, body, field):
    _, samples = judged_sweep(user)
    response = ApiClient(user).request("put", f"/samples/{samples[0].pk}/rating", body)
    assert response.status_code == 422
    assert field in response.json()["detail"][0]["loc"]
    assert not Rating.objects.exists()


@pytest.mark.django_db
def test_the_leaderboard_shows_the_share_of_thumbs_up_per_run(user):
    sweep, samples = judged_sweep(user)
    unrated = logged_in(user).get(f"/experiments/{sweep.experiment_id}/").content.decode()
    assert 'class="num human"' not in unrated  # no column until someone rates
    for sample, value in zip(samples[:3], ["up", "up", "down"], strict=True):
        Rating.objects.create(sample=sample, user=user, run_id=sample.run_id, value=value)
    first, second = samples[0].run_id, samples[3].run_id

    entries = ApiClient(user).get(f"/experiments/{sweep.experiment_id}/leaderboard").json()["entries"]
    human = {e["run_id"]: e["human"] for e in entries}
    assert human[first] == {"up": 2, "count": 3, "share": pytest.approx(2 / 3)} and human[second] is None
    listed = ApiClient(user).get(f"/experiments/{sweep.experiment_id}/runs").json()["items"]
    assert {r["id"]: r["human"] for r in listed}[first]["up"] == 2

    page = logged_in(user).get(f"/experiments/{sweep.experiment_id}/").content.decode()
    table = re.search(r'<table id="leaderboard">.*?</table>', page, re.S).group(0)
    heads = re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)
    assert heads.index("human") == heads.index("llm_judge") + 1  # after the scorers' means
    cells = dict(re.findall(r'<tr data-run-id="(\d+)">.*?<td class="num human">(.*?)</td>', table, re.S))
    assert cells == {str(first): "67 % (2/3)", str(second): "–"}


# --- the judge's agreement ---


def rate_all(user, samples):
    for sample, value in zip(samples, RATINGS, strict=True):
        Rating.objects.create(sample=sample, user=user, run_id=sample.run_id, value=value)


@pytest.mark.django_db
def test_the_agreement_route_counts_the_judge_against_the_ratings(user, other_user):
    sweep, samples = judged_sweep(user)
    api = ApiClient(user)
    [before] = api.get(f"/sweeps/{sweep.pk}/agreement").json()
    assert before["pairs"] == 0 and before["accuracy"] is None and before["kappa_note"]

    rate_all(user, samples)
    [found] = api.get(f"/sweeps/{sweep.pk}/agreement").json()

    assert (found["scorer"], found["scorer_index"]) == ("llm_judge", 1)
    assert (found["both_pass"], found["judge_only"], found["human_only"], found["both_fail"]) == (2, 1, 1, 2)
    assert (found["pairs"], found["agreed"]) == (6, 4)
    assert found["accuracy"] == pytest.approx(4 / 6) and found["kappa"] == pytest.approx(1 / 3)
    assert ApiClient(other_user).get(f"/sweeps/{sweep.pk}/agreement").status_code == 404


@pytest.mark.django_db
def test_a_sweep_without_a_judge_has_no_agreement(user):
    sweep, samples = judged_sweep(user, scorers=[{"type": "icontains", "value": "{{ expected }}"}])
    rate_all(user, samples)
    assert ApiClient(user).get(f"/sweeps/{sweep.pk}/agreement").json() == []
    assert "Judge agreement" not in logged_in(user).get(f"/experiments/{sweep.experiment_id}/").content.decode()


@pytest.mark.django_db
def test_the_experiment_page_shows_the_agreement_once_both_exist(user):
    sweep, samples = judged_sweep(user)
    client = logged_in(user)
    assert "Judge agreement" not in client.get(f"/experiments/{sweep.experiment_id}/").content.decode()

    rate_all(user, samples)
    page = client.get(f"/experiments/{sweep.experiment_id}/").content.decode()
    shown = re.search(r'<p class="agreement" id="agreement-1".*?</p>', page, re.S).group(0)
    assert "Judge agreement: <strong>67 %</strong> (4/6), κ = 0.33" in " ".join(shown.split())


@pytest.mark.django_db
def test_the_agreement_costs_one_query_however_many_samples_are_rated(user):
    """The experiment page of a judged sweep: the agreement is one grouped read of the verdicts
    against the ratings, so its queries do not grow with samples or ratings."""
    sweep, samples = judged_sweep(user)
    rate_all(user, samples)
    client = logged_in(user)
    page = f"/experiments/{sweep.experiment_id}/"
    client.get(page)  # the verdict of the top two runs is cached from now on
    with CaptureQueriesContext(connection) as few:
        assert "Judge agreement" in client.get(page).content.decode()

    for run in sweep.runs.all():
        for row in range(3, 30):
            sample = RunSample.objects.create(run=run, sweep=sweep, row_index=row, status="completed", score=1.0)
            Score.objects.create(sample=sample, scorer_index=1, name="llm_judge", value=1.0, passed=True)
            Rating.objects.create(sample=sample, run=run, user=user, value="up" if row % 2 else "down")
    with CaptureQueriesContext(connection) as many:
        assert "(32/60)" in client.get(page).content.decode()  # 4 of 6, then 2 x 14 of the 2 x 27 more

    # The page's 13 (test_experiment_page) but the cached verdict's, the judge's presence (the
    # sweep's scorers) and the agreement
    assert len(many) == len(few) <= 14


# --- the export ---


@pytest.mark.django_db
def test_the_export_carries_each_samples_rating_and_note(user):
    sweep, samples = judged_sweep(user)
    Rating.objects.create(sample=samples[0], user=user, run_id=samples[0].run_id, value="up", note="=spot on")

    header, *lines = list(csv.reader(io.StringIO("".join(export.export_csv(sweep)))))
    assert header[-2:] == ["rating", "rating_note"]
    cells = [dict(zip(header, line, strict=True)) for line in lines]
    assert [(c["rating"], c["rating_note"]) for c in cells] == [("up", "'=spot on")] + [("", "")] * 5

    import json

    records = [json.loads(line) for line in "".join(export.export_jsonl(sweep)).splitlines()]
    assert [(r["rating"], r["rating_note"]) for r in records] == [("up", "=spot on")] + [(None, None)] * 5

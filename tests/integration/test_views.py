"""The dashboard pages through Django's test client: real sessions, real CSRF middleware, the
real database and, where a sweep runs, the embedded worker thread."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from sweeps.models import Experiment, Run, RunSample, Score, Sweep
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import PASSWORDS, logged_in, spec, wait_for, wait_for_sweep
from tests.pages import Table


@pytest.fixture(autouse=True)
def mock_provider(mock_latency):
    """The built-in mock provider row (with no latency), even after a transactional test flushed it."""


# --- helpers ---


def control(experiment_id: int, action: str) -> str:
    return f"/experiments/{experiment_id}/sweep/{action}/"


def flashes(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def rendered_flashes(page: str) -> list[tuple[str, str]]:
    """The flash paragraphs the page shows: (css classes, text)."""
    found = re.findall(r'<p class="flash ([^"]*)" role="alert">(.*?)</p>', page, re.S)
    return [(cls, html.unescape(text)) for cls, text in found]


def csrf_token(page: str, action_url: str) -> str:
    """The CSRF token inside the form that posts to action_url."""
    form = re.search(rf'<form method="post" action="{re.escape(action_url)}">(.*?)</form>', page, re.S)
    assert form, f"no form posting to {action_url}"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.group(1))
    assert token
    return token.group(1)


def buttons(page: str, experiment_id: int) -> set[str]:
    """The control actions the page offers as POST forms."""
    return set(re.findall(rf'<form method="post" action="/experiments/{experiment_id}/sweep/(\w+)/">', page))


def leaderboard(page: str) -> Table:
    return Table("leaderboard", page)


def make_run(experiment: Experiment, status: str = "paused") -> tuple[Sweep, Run]:
    """A sweep and run written directly (no worker): enough for pages that only read them."""
    sweep = Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status=status)
    run = Run.objects.create(experiment=experiment, sweep=sweep, config={"model": "mock/echo"}, config_hash="h1")
    return sweep, run


# --- authentication and ownership ---


@pytest.mark.django_db
def test_every_page_requires_login(user, client):
    experiment = experiment_create(owner=user, data=spec())
    _, run = make_run(experiment)
    e = experiment.pk
    pages = [("get", "/"), ("get", f"/experiments/{e}/"), ("get", f"/experiments/{e}/live/"),
             ("get", f"/runs/{run.pk}/"), *[("post", control(e, a)) for a in ("start", "pause", "resume", "stop")],
             ("get", control(e, "start"))]  # fmt: skip

    for method, url in pages:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"/login/?next={url}", url

    assert experiment.sweeps.count() == 1  # the anonymous start changed nothing
    assert experiment.sweeps.get().status == "paused"


@pytest.mark.django_db
def test_logging_in_through_the_form_with_csrf_leads_back_to_the_page(user):
    experiment = experiment_create(owner=user, data=spec(name="Private lab"))
    client = Client(enforce_csrf_checks=True)
    target = f"/experiments/{experiment.pk}/"
    login_page = client.get(f"/login/?next={target}")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.content.decode()).group(1)

    without_token = client.post("/login/", {"username": "alice", "password": PASSWORDS["alice"], "next": target})
    assert without_token.status_code == 403
    wrong = client.post("/login/", {"username": "alice", "password": "nope", "next": target,
                                    "csrfmiddlewaretoken": token})  # fmt: skip
    assert wrong.status_code == 200 and "_auth_user_id" not in client.session
    response = client.post("/login/", {"username": "alice", "password": PASSWORDS["alice"], "next": target,
                                       "csrfmiddlewaretoken": token})  # fmt: skip

    assert response.status_code == 302 and response["Location"] == target
    page = client.get(target)
    assert page.status_code == 200 and "Private lab" in page.content.decode()


@pytest.mark.django_db
def test_experiment_list_shows_only_the_users_own_experiments(user, other_user):
    experiment_create(owner=user, data=spec(name="Alice triage"))
    experiment_create(owner=other_user, data=spec(name="Bob secrets"))

    alice_page = logged_in(user).get("/").content.decode()
    bob_page = logged_in(other_user).get("/").content.decode()

    assert "Alice triage" in alice_page and "Bob secrets" not in alice_page
    assert "Bob secrets" in bob_page and "Alice triage" not in bob_page


@pytest.mark.django_db
def test_another_users_experiment_run_partial_and_controls_are_404(user, other_user):
    experiment = experiment_create(owner=user, data=spec(name="Alice only"))
    sweep, run = make_run(experiment, status="paused")
    owner, intruder = logged_in(user), logged_in(other_user)
    pages = [f"/experiments/{experiment.pk}/", f"/experiments/{experiment.pk}/live/", f"/runs/{run.pk}/"]

    for url in pages:
        assert owner.get(url).status_code == 200, url  # they exist ...
        response = intruder.get(url)
        assert response.status_code == 404, url  # ... but not for bob
        assert "Alice only" not in response.content.decode()
    for action in ("start", "pause", "resume", "stop"):
        assert intruder.post(control(experiment.pk, action)).status_code == 404, action

    sweep.refresh_from_db()
    assert sweep.status == "paused"  # neither resumed nor stopped
    assert experiment.sweeps.count() == 1  # nothing started
    assert owner.post(control(experiment.pk, "stop")).status_code == 302  # the owner can
    sweep.refresh_from_db()
    assert sweep.status == "stopped"


@pytest.mark.django_db
def test_missing_objects_are_404(user):
    client = logged_in(user)
    for url in ["/experiments/999999/", "/experiments/999999/live/", "/runs/999999/"]:
        assert client.get(url).status_code == 404
    assert client.post(control(999999, "start")).status_code == 404


# --- control endpoints ---


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["start", "pause", "resume", "stop"])
def test_get_on_a_control_url_is_refused(user, action):
    experiment = experiment_create(owner=user, data=spec())
    sweep, _ = make_run(experiment, status="paused")

    response = logged_in(user).get(control(experiment.pk, action))

    assert response.status_code == 405
    assert "POST" in response["Allow"]
    sweep.refresh_from_db()
    assert sweep.status == "paused" and experiment.sweeps.count() == 1


@pytest.mark.django_db
def test_an_unknown_control_action_is_404(user):
    experiment = experiment_create(owner=user, data=spec())
    assert logged_in(user).post(control(experiment.pk, "explode")).status_code == 404
    assert not experiment.sweeps.exists()


@pytest.mark.django_db
def test_control_posts_need_the_csrf_token_of_the_page(user):
    experiment = experiment_create(owner=user, data=spec())
    client = logged_in(user, enforce_csrf_checks=True)
    url = control(experiment.pk, "start")

    assert client.post(url).status_code == 403
    assert client.post(url, {"csrfmiddlewaretoken": "x" * 64}).status_code == 403
    assert not experiment.sweeps.exists()

    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    response = client.post(url, {"csrfmiddlewaretoken": csrf_token(page, url)})

    assert response.status_code == 302
    assert experiment.sweeps.get().status == "queued"  # the worker starts on commit, after this test's transaction


@pytest.mark.django_db
def test_pause_and_stop_posts_are_csrf_protected_too(user):
    experiment = experiment_create(owner=user, data=spec())
    sweep, _ = make_run(experiment, status="running")
    client = logged_in(user, enforce_csrf_checks=True)

    for action in ("pause", "stop"):
        assert client.post(control(experiment.pk, action)).status_code == 403
    sweep.refresh_from_db()
    assert sweep.status == "running"

    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    url = control(experiment.pk, "pause")
    assert client.post(url, {"csrfmiddlewaretoken": csrf_token(page, url)}).status_code == 302
    sweep.refresh_from_db()
    assert sweep.status == "paused"


@pytest.mark.django_db
def test_controls_without_a_sweep_flash_the_service_message(user):
    experiment = experiment_create(owner=user, data=spec())
    client = logged_in(user)

    for action in ("pause", "resume", "stop"):
        response = client.post(control(experiment.pk, action), follow=True)
        assert response.status_code == 200
        assert response.redirect_chain == [(f"/experiments/{experiment.pk}/", 302)]
        expected = [("error", "This experiment has no sweep yet: start one.")]
        assert rendered_flashes(response.content.decode()) == expected
    assert not experiment.sweeps.exists()


@pytest.mark.django_db
def test_starting_while_a_sweep_is_paused_flashes_the_refusal(user):
    experiment = experiment_create(owner=user, data=spec())
    sweep, _ = make_run(experiment, status="paused")

    response = logged_in(user).post(control(experiment.pk, "start"), follow=True)

    assert response.status_code == 200
    [(level, text)] = rendered_flashes(response.content.decode())
    assert level == "error"
    assert f"already has a paused sweep ({sweep.pk})" in text and "resume or stop it" in text
    assert list(experiment.sweeps.all()) == [sweep]


@pytest.mark.django_db(transaction=True)
def test_start_pause_resume_stop_buttons_change_the_sweep(user, mock_latency):
    mock_latency(30)
    experiment = experiment_create(owner=user, data=spec(max_concurrency=1))
    client = logged_in(user)
    page_url = f"/experiments/{experiment.pk}/"
    assert buttons(client.get(page_url).content.decode(), experiment.pk) == {"start"}

    response = client.post(control(experiment.pk, "start"))
    assert response.status_code == 302 and response["Location"] == page_url
    sweep = experiment.sweeps.get()
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").exists())
    sweep.refresh_from_db()
    assert sweep.status == "running"
    assert buttons(client.get(page_url).content.decode(), experiment.pk) == {"pause", "stop"}

    response = client.post(control(experiment.pk, "pause"))
    assert response.status_code == 302 and flashes(response) == []
    sweep.refresh_from_db()
    assert sweep.status == "paused"
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status="running").exists())
    page = client.get(page_url).content.decode()
    assert buttons(page, experiment.pk) == {"resume", "stop"}
    assert 'id="sweep-status">paused<' in page

    assert client.post(control(experiment.pk, "resume")).status_code == 302
    wait_for_sweep(sweep, until=("running",))
    pending_before_stop = RunSample.objects.filter(sweep=sweep, status="pending").count()
    assert pending_before_stop > 0

    assert client.post(control(experiment.pk, "stop")).status_code == 302
    sweep = wait_for_sweep(sweep)
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status__in=("pending", "running")).exists())
    sweep.refresh_from_db()
    assert (sweep.status, sweep.stopped_reason) == ("stopped", "stopped")
    assert sweep.cancelled > 0 and sweep.completed + sweep.failed + sweep.cancelled == sweep.total
    page = client.get(page_url).content.decode()
    assert buttons(page, experiment.pk) == {"start"}  # a finished sweep can only be followed by a new one
    assert experiment.sweeps.count() == 1


@pytest.mark.django_db(transaction=True)
def test_illegal_transitions_flash_the_service_message_not_a_500(user, mock_latency):
    experiment = experiment_create(owner=user, data=spec())
    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    assert sweep.status == "completed"
    client = logged_in(user)

    for action, verb in (("pause", "pause"), ("resume", "resume"), ("stop", "stop")):
        response = client.post(control(experiment.pk, action), follow=True)
        assert response.status_code == 200
        [(level, text)] = rendered_flashes(response.content.decode())
        assert level == "error"
        assert text == f"Cannot {verb} sweep {sweep.pk}: it is completed; it is finished."
        sweep.refresh_from_db()
        assert sweep.status == "completed"
    # A message is shown once: the next page view has none.
    assert rendered_flashes(client.get(f"/experiments/{experiment.pk}/").content.decode()) == []


@pytest.mark.django_db
def test_starting_an_experiment_whose_stored_spec_is_invalid_flashes_instead_of_500(user):
    experiment = experiment_create(owner=user, data=spec())
    # What a direct database edit, or a validation rule added since it was saved, leaves behind.
    broken = {**experiment.spec, "pipeline": [{"name": "summarize", "model": "nope/x"}]}
    Experiment.objects.filter(pk=experiment.pk).update(spec=broken)
    client = logged_in(user)
    client.raise_request_exception = False

    response = client.post(control(experiment.pk, "start"), follow=True)

    assert response.status_code == 200
    [(level, text)] = rendered_flashes(response.content.decode())
    assert level == "error" and "pipeline" in text
    assert not experiment.sweeps.exists()


# --- what the pages show ---


@pytest.mark.django_db(transaction=True)
def test_owner_sees_progress_and_a_leaderboard_ranked_best_first(user, mock_latency):
    data = spec(
        scorers=[{"type": "contains", "value": "{{ expected }}"}, {"type": "max_length", "value": 12}],
        sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/upper", "mock/short"],
                                          "params.temperature": [0.0, 1.0]}},
    )  # fmt: skip
    experiment = experiment_create(owner=user, data=data)
    client = logged_in(user)
    client.post(control(experiment.pk, "start"))
    sweep = wait_for_sweep(experiment.sweeps.get())
    assert sweep.status == "completed"

    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    live = client.get(f"/experiments/{experiment.pk}/live/").content.decode()

    # progress: every sample done
    assert sweep.total == 18
    assert re.search(r'<progress id="progress" max="18" value="18"', page)
    assert 'id="progress-text">18 of 18 done<' in page
    assert 'id="sweep-status">completed<' in page
    assert f'id="best-score">{sweep.best_score:.3f}<' in page

    table = leaderboard(page)
    assert table.headers[:3] == ["#", "Score", "95 % interval"]
    assert table.headers[3:5] == ["contains", "max_length"]  # each scorer's mean
    assert table.headers[5:7] == ["model", "params.temperature"]  # the varying parameters
    assert table.headers[7:] == ["Status", "Tokens", "Cost", "Score / $", "Latency", "Front"]
    runs = {r.pk: r for r in Run.objects.filter(sweep=sweep)}
    assert len(table.rows) == len(runs) == 6

    shown = []
    for rank, row in enumerate(table.rows, 1):
        cells, hrefs = row["cells"], row["hrefs"]
        run = runs[int(re.fullmatch(r"/runs/(\d+)/", hrefs[0]).group(1))]
        assert cells[0] == str(rank)
        assert cells[1] == f"{run.score:.3f}"
        assert cells[2] == f"{run.score_ci_low:.2f}–{run.score_ci_high:.2f}"
        assert cells[3:5] == [f"{m['mean']:.3f}" for m in run.scorer_means]
        assert cells[5] == run.config["model"]
        assert float(cells[6]) == run.config["params"]["temperature"]
        assert cells[7] == run.status
        assert int(cells[8]) == run.tokens_in + run.tokens_out
        shown.append(run.score)
    assert shown == sorted(shown, reverse=True)  # best first
    assert len(set(shown)) > 1  # the ranking is not vacuous
    assert shown[0] == pytest.approx(sweep.best_score)

    # the live partial renders the same state, without the page around it
    assert leaderboard(live).rows == table.rows
    assert "<html" not in live and 'id="progress-text">18 of 18 done<' in live


@pytest.mark.django_db
def test_a_page_without_a_sweep_offers_start_and_no_leaderboard(user):
    experiment = experiment_create(owner=user, data=spec(name="Fresh one", description="Nothing yet"))
    page = logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode()

    assert "Fresh one" in page and "Nothing yet" in page and "No sweep yet." in page
    assert buttons(page, experiment.pk) == {"start"}
    assert 'id="leaderboard"' not in page


@pytest.mark.django_db(transaction=True)
def test_run_page_shows_each_samples_stages_outputs_and_score_reasons(user, mock_latency):
    experiment = experiment_create(
        owner=user,
        data=spec(
            pipeline=[{"name": "summarize", "system": "You are <terse>.", "prompt": "Summarize: {{ ticket }}",
                       "model": "mock/echo"},
                      {"name": "label", "prompt": "Label: {{ summarize }}"}],
            scorers=[{"type": "icontains", "value": "{{ expected }}"}, {"type": "max_length", "value": 15}],
            sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/error"]}},
        ),
    )  # fmt: skip
    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    good = Run.objects.get(sweep=sweep, config__model="mock/echo")
    bad = Run.objects.get(sweep=sweep, config__model="mock/error")
    client = logged_in(user)

    page = client.get(f"/runs/{good.pk}/").content.decode()

    assert f"Run {good.pk}" in page and f"Score {good.score:.3f}" in page
    samples = list(RunSample.objects.filter(run=good))
    assert len(samples) == 3 and page.count('class="card sample"') == 3
    for sample in samples:
        assert f"Row {sample.row_index}" in page
        assert [s["name"] for s in sample.stages] == ["summarize", "label"]
        for stage in sample.stages:
            assert f"<summary>{stage['name']} · {html.escape(stage['model'])}" in page
            assert f"<pre>{html.escape(stage['prompt'])}</pre>" in page
            assert f'<pre class="output">{html.escape(stage["output"])}</pre>' in page
        assert "<pre>You are &lt;terse&gt;.</pre>" in page  # the system prompt, escaped
        scores = list(Score.objects.filter(sample=sample))
        assert len(scores) == 2
        for score in scores:
            assert score.reason and html.escape(score.reason) in page
    assert 'class="pass"' in page and 'class="fail"' in page  # max_length 15 fails the longer tickets

    failed = client.get(f"/runs/{bad.pk}/").content.decode()
    assert 'class="badge failed">failed<' in failed
    sample = RunSample.objects.filter(run=bad).first()
    assert sample.error and html.escape(sample.error) in failed


@pytest.mark.django_db
def test_starting_on_a_provider_that_was_disabled_since_flashes_the_refusal(user):
    from sweeps.models import Provider

    experiment = experiment_create(owner=user, data=spec())
    Provider.objects.filter(name="mock").update(enabled=False)

    response = logged_in(user).post(control(experiment.pk, "start"), follow=True)

    assert response.status_code == 200
    [(level, text)] = rendered_flashes(response.content.decode())
    assert level == "error" and "mock" in text
    assert not experiment.sweeps.exists()

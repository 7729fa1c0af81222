"""The Django admin as a superuser: actions go through the services and report per item;
results are read-only records; every changelist renders with its filters and search."""

from __future__ import annotations

import html

import pytest

from sweeps.engine.spec import dump_spec_text
from sweeps.models import (
    Experiment,
    Provider,
    ResponseCache,
    Run,
    RunSample,
    Score,
    Sweep,
)
from sweeps.services.experiments import experiment_create, validate_spec
from sweeps.services.sweeps import sweep_start, sweep_stop
from tests.conftest import spec, wait_for, wait_for_sweep

SWEEPS = "/admin/sweeps/sweep/"
EXPERIMENTS = "/admin/sweeps/experiment/"


@pytest.fixture(autouse=True)
def mock_provider(mock_latency):
    """The built-in mock provider row (with no latency), even after a transactional test flushed it."""


def act(client, changelist: str, action: str, items) -> list[tuple[str, str]]:
    """Run an admin action on items; the messages it left, as (level, text)."""
    response = client.post(changelist, {"action": action, "_selected_action": [i.pk for i in items]}, follow=True)
    assert response.redirect_chain == [(changelist, 302)]
    assert response.status_code == 200
    return [(m.level_tag, m.message) for m in response.context["messages"]]  # rendered, so consumed


def slow_sweep(user, mock_latency, name: str = "Slow one") -> Sweep:
    mock_latency(30)
    pipeline = [{"name": "summarize", "prompt": "Slowly summarize: {{ ticket }}", "model": "mock/echo"},
                {"name": "label", "prompt": "Label: {{ summarize }}"}]  # fmt: skip
    # (its own prompts: nothing of it is in the response cache, so every sample takes time)
    experiment = experiment_create(owner=user, data=spec(name=name, max_concurrency=1, pipeline=pipeline))
    sweep = sweep_start(experiment=experiment)
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").exists())
    return sweep


def finish(*sweeps: Sweep) -> None:
    """Stop whatever is still active, so no worker thread outlives the test."""
    for sweep in sweeps:
        sweep.refresh_from_db()
        if sweep.status in ("queued", "running", "paused"):
            sweep_stop(sweep=sweep)
        wait_for_sweep(sweep)
        wait_for(lambda s=sweep: not RunSample.objects.filter(sweep=s, status="running").exists())


# --- actions ---


@pytest.mark.django_db(transaction=True)
def test_sweep_actions_change_state_and_report_one_message_per_item(admin_client, user, mock_latency):
    finished = experiment_create(owner=user, data=spec(name="Done"))
    done = wait_for_sweep(sweep_start(experiment=finished))
    assert done.status == "completed"
    running = slow_sweep(user, mock_latency)

    messages = act(admin_client, SWEEPS, "pause", [done, running])

    running.refresh_from_db()
    done.refresh_from_db()
    assert (running.status, running.stopped_reason) == ("paused", "paused")
    assert done.status == "completed"
    assert sorted(messages) == sorted([
        ("success", f"Sweep {running.pk} of Slow one: paused"),
        ("warning", f"Sweep {done.pk} of Done: Cannot pause sweep {done.pk}: it is completed; it is finished."),
    ])  # fmt: skip
    wait_for(lambda: not RunSample.objects.filter(sweep=running, status="running").exists())

    assert act(admin_client, SWEEPS, "resume", [running]) == [("success", f"Sweep {running.pk} of Slow one: resumed")]
    wait_for_sweep(running, until=("running",))
    assert RunSample.objects.filter(sweep=running, status="pending").exists()

    messages = act(admin_client, SWEEPS, "stop", [running, done])
    running = wait_for_sweep(running)
    assert running.status == "stopped"
    assert sorted(messages) == sorted([
        ("success", f"Sweep {running.pk} of Slow one: stopped"),
        ("warning", f"Sweep {done.pk} of Done: Cannot stop sweep {done.pk}: it is completed; it is finished."),
    ])  # fmt: skip

    [(level, text)] = act(admin_client, SWEEPS, "resume", [running])
    assert level == "warning" and text.endswith("it is stopped; it is finished.")
    finish(running)


@pytest.mark.django_db(transaction=True)
def test_experiment_actions_start_pause_resume_stop_the_latest_sweep(admin_client, user, mock_latency):
    mock_latency(30)
    experiment = experiment_create(owner=user, data=spec(name="Via admin", max_concurrency=1))
    idle = experiment_create(owner=user, data=spec(name="Idle"))

    [(level, text)] = act(admin_client, EXPERIMENTS, "pause_sweep", [idle])
    assert (level, text) == ("warning", "Idle: has no sweep yet")
    assert not idle.sweeps.exists()

    [(level, text)] = act(admin_client, EXPERIMENTS, "start_sweep", [experiment])
    sweep = experiment.sweeps.get()
    assert (level, text) == ("success", f"Via admin: sweep {sweep.pk} queued")
    assert sweep.started_via == "admin" and sweep.started_by is not None
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").exists())

    [(level, text)] = act(admin_client, EXPERIMENTS, "start_sweep", [experiment])
    assert level == "warning" and "already has a" in text and experiment.sweeps.count() == 1

    assert act(admin_client, EXPERIMENTS, "pause_sweep", [experiment]) == [("success", "Via admin: paused")]
    sweep.refresh_from_db()
    experiment.refresh_from_db()
    assert sweep.status == "paused" and experiment.status == "paused"
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status="running").exists())

    assert act(admin_client, EXPERIMENTS, "resume_sweep", [experiment]) == [("success", "Via admin: resumed")]
    wait_for_sweep(sweep, until=("running",))

    messages = act(admin_client, EXPERIMENTS, "stop_sweep", [experiment, idle])
    assert sorted(messages) == [("success", "Via admin: stopped"), ("warning", "Idle: has no sweep yet")]
    sweep = wait_for_sweep(sweep)
    assert sweep.status == "stopped"
    finish(sweep)


def change_form(experiment: Experiment, **edits) -> dict:
    """The experiment's admin change form as a browser would post it, with some spec keys edited."""
    return {"owner": experiment.owner_id, "spec_text": dump_spec_text({**experiment.spec, **edits})}


@pytest.mark.django_db
def test_the_experiment_admin_saves_a_valid_edit(admin_client, user):
    experiment = experiment_create(owner=user, data=spec(name="Before"))
    page = admin_client.get(f"{EXPERIMENTS}{experiment.pk}/change/")
    assert page.status_code == 200 and "name: Before" in page.content.decode()  # the stored spec, as YAML

    response = admin_client.post(f"{EXPERIMENTS}{experiment.pk}/change/", change_form(experiment, name="After"))

    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.name == "After"
    experiment.parsed_spec()  # still a valid spec


@pytest.mark.django_db
def test_the_experiment_admin_refuses_an_edit_that_is_not_a_valid_spec(admin_client, user):
    experiment = experiment_create(owner=user, data=spec(name="Valid"))
    broken = change_form(experiment, pipeline=[{"name": "summarize", "model": "nope/x"}])

    response = admin_client.post(f"{EXPERIMENTS}{experiment.pk}/change/", broken)

    experiment.refresh_from_db()
    experiment.parsed_spec()  # raises SpecError when the broken pipeline was saved
    assert response.status_code == 200 and "pipeline" in response.content.decode()


@pytest.mark.django_db
def test_the_experiment_admin_names_the_line_of_bad_yaml_and_keeps_the_spec(admin_client, user):
    experiment = experiment_create(owner=user, data=spec(name="Kept"))
    before = experiment.spec
    form = {"owner": user.pk, "spec_text": "name: Kept\npipeline: [unclosed\n"}

    response = admin_client.post(f"{EXPERIMENTS}{experiment.pk}/change/", form)

    experiment.refresh_from_db()
    assert response.status_code == 200 and "invalid YAML at line 2" in response.content.decode()
    assert experiment.spec == before


@pytest.mark.django_db
def test_the_experiment_admin_adds_an_experiment_from_yaml(admin_client, user):
    text = dump_spec_text(spec(name="From the admin"))

    response = admin_client.post(f"{EXPERIMENTS}add/", {"owner": user.pk, "spec_text": text})

    assert response.status_code == 302
    added = Experiment.objects.get(name="From the admin")
    assert added.owner == user and added.spec == validate_spec(spec(name="From the admin")).to_dict()


@pytest.mark.django_db
def test_the_experiment_admin_keeps_a_paused_sweeps_experiment_unchanged(admin_client, user):
    experiment = experiment_create(owner=user, data=spec(name="Paused"))
    Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="paused")
    edited = [*experiment.spec["dataset"], {"ticket": "a brand new row", "expected": "other"}]

    response = admin_client.post(f"{EXPERIMENTS}{experiment.pk}/change/", change_form(experiment, dataset=edited))

    experiment.refresh_from_db()
    assert len(experiment.spec["dataset"]) == 3  # what the paused runs were planned on
    assert response.status_code == 200 and "paused" in response.content.decode()


@pytest.mark.django_db
def test_starting_an_experiment_that_is_not_a_valid_spec_warns_instead_of_500(admin_client, user):
    broken = experiment_create(owner=user, data=spec(name="Broken"))
    Experiment.objects.filter(pk=broken.pk).update(
        spec={**broken.spec, "pipeline": [{"name": "summarize", "model": "nope/x"}]}
    )
    admin_client.raise_request_exception = False

    [(level, text)] = act(admin_client, EXPERIMENTS, "start_sweep", [broken])

    assert level == "warning" and text.startswith("Broken: ") and "pipeline[0].prompt" in text
    assert not broken.sweeps.exists()


# --- read-only records ---


@pytest.mark.django_db
def test_spec_versions_are_listed_with_the_admins_edit_and_cannot_be_deleted(admin_client, user):
    experiment = experiment_create(owner=user, data=spec(name="Before"))
    admin_client.post(f"{EXPERIMENTS}{experiment.pk}/change/", change_form(experiment, name="After"))
    latest = experiment.versions.order_by("-number").first()
    assert latest is not None and latest.number == 2 and latest.via == "admin"

    changelist = admin_client.get("/admin/sweeps/specversion/", {"via__exact": "admin"})
    assert changelist.status_code == 200 and list(changelist.context["cl"].result_list) == [latest]
    assert "name: After" in admin_client.get(f"/admin/sweeps/specversion/{latest.pk}/change/").content.decode()
    assert admin_client.get(f"/admin/sweeps/specversion/{latest.pk}/delete/").status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [latest.pk], "post": "yes"}
    admin_client.post("/admin/sweeps/specversion/", bulk)
    assert experiment.versions.count() == 2  # history stays: sweeps name the version they ran


@pytest.fixture
def records(user):
    """One of each result record, written directly."""
    experiment = experiment_create(owner=user, data=spec(name="Records"))
    sweep = Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="completed")
    run = Run.objects.create(experiment=experiment, sweep=sweep, config={"model": "mock/echo"}, config_hash="h1",
                             status="completed", score=0.5)  # fmt: skip
    sample = RunSample.objects.create(run=run, sweep=sweep, row_index=0, output="billing", status="completed")
    score = Score.objects.create(sample=sample, scorer_index=0, name="icontains", value=1, passed=True,
                                 reason="contains 'billing'")  # fmt: skip
    cache = ResponseCache.objects.create(key="k" * 64, provider="mock", model="echo", text="billing")
    version = experiment.versions.get()
    return {"sweep": sweep, "run": run, "runsample": sample, "score": score, "responsecache": cache,
            "specversion": version}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["sweep", "run", "runsample", "responsecache", "specversion"])
def test_result_records_cannot_be_added_or_changed(admin_client, records, model):
    obj = records[model]
    base = f"/admin/sweeps/{model}/"

    changelist = admin_client.get(base)
    assert changelist.status_code == 200
    assert changelist.context["has_add_permission"] is False
    assert f'href="{base}add/"' not in changelist.content.decode()
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}add/", {}).status_code == 403

    view = admin_client.get(f"{base}{obj.pk}/change/")
    assert view.status_code == 200  # viewable ...
    assert view.context["has_change_permission"] is False
    assert 'name="_save"' not in view.content.decode()  # ... without a save button
    before = type(obj).objects.filter(pk=obj.pk).values().get()
    edit = {"status": "failed", "text": "edited", "score": "0.1", "config_hash": "edited", "output": "edited"}
    assert admin_client.post(f"{base}{obj.pk}/change/", edit).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).values().get() == before


@pytest.mark.django_db
def test_scores_are_shown_read_only_inside_their_sample(admin_client, records):
    sample, score = records["runsample"], records["score"]

    page = admin_client.get(f"/admin/sweeps/runsample/{sample.pk}/change/")

    assert page.status_code == 200
    [inline] = page.context["inline_admin_formsets"]
    assert inline.opts.model is Score
    assert not inline.has_add_permission and not inline.has_change_permission and not inline.has_delete_permission
    assert html.escape(score.reason) in page.content.decode()
    assert admin_client.get("/admin/sweeps/score/").status_code == 404  # no page to edit them on their own


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["experiment", "provider"])
def test_experiments_and_providers_stay_editable(admin_client, model):
    assert admin_client.get(f"/admin/sweeps/{model}/add/").status_code == 200


# --- changelists, filters, search ---


@pytest.fixture
def catalogue(user, other_user):
    """Rows that each filter and search below tells apart."""
    alpha = experiment_create(owner=user, data=spec(name="Alpha triage", description="billing tickets"))
    beta = experiment_create(owner=other_user, data=spec(name="Beta summaries"))
    Experiment.objects.filter(pk=beta.pk).update(status="paused")
    done = Sweep.objects.create(experiment=alpha, spec={}, status="completed", stopped_reason="completed",
                                job_id="job-abc")  # fmt: skip
    paused = Sweep.objects.create(experiment=beta, spec={}, status="paused", stopped_reason="token_budget")
    good = Run.objects.create(experiment=alpha, sweep=done, config={"model": "mock/echo"}, config_hash="aaa111",
                              status="completed", score=0.9)  # fmt: skip
    bad = Run.objects.create(experiment=beta, sweep=paused, config={"model": "mock/error"}, config_hash="bbb222",
                             status="failed", score=0.0)  # fmt: skip
    ok_sample = RunSample.objects.create(run=good, sweep=done, row_index=0, output="billing is fine",
                                         status="completed", cache_hit=True)  # fmt: skip
    bad_sample = RunSample.objects.create(run=bad, sweep=paused, row_index=0, status="failed",
                                          error="stage 'summarize': boom")  # fmt: skip
    echo = ResponseCache.objects.create(key="a" * 64, provider="mock", model="echo", text="billing is fine")
    other = ResponseCache.objects.create(key="b" * 64, provider="openai", model="gpt-4o-mini", text="label")
    mock = Provider.objects.get(name="mock")
    openai = Provider.objects.get(name="openai")  # made by a migration, like mock
    Provider.objects.filter(pk=openai.pk).update(enabled=False)
    Provider.objects.filter(name="anthropic").delete()
    return locals()


CHANGELISTS = [
    # model, query string, names of the catalogue rows expected (None: every row of the model)
    ("experiment", "", None),
    ("experiment", "status__exact=paused", ["beta"]),
    ("experiment", "owner__id__exact={other_user.pk}", ["beta"]),
    ("experiment", "q=billing", ["alpha"]),
    ("experiment", "q=summaries", ["beta"]),
    ("sweep", "", ["done", "paused"]),
    ("sweep", "status__exact=completed", ["done"]),
    ("sweep", "stopped_reason__exact=token_budget", ["paused"]),
    ("sweep", "q=Beta", ["paused"]),
    ("sweep", "q=job-abc", ["done"]),
    ("run", "", ["good", "bad"]),
    ("run", "status__exact=failed", ["bad"]),
    ("run", "q=aaa111", ["good"]),
    ("run", "q=alpha", ["good"]),
    ("runsample", "", ["ok_sample", "bad_sample"]),
    ("runsample", "status__exact=failed", ["bad_sample"]),
    ("runsample", "cache_hit__exact=1", ["ok_sample"]),
    ("runsample", "q=boom", ["bad_sample"]),
    ("runsample", "q=fine", ["ok_sample"]),
    ("responsecache", "", ["echo", "other"]),
    ("responsecache", "provider=openai", ["other"]),
    ("responsecache", "q=gpt-4o", ["other"]),
    ("responsecache", "q=billing", ["echo"]),
    ("provider", "", ["mock", "openai"]),
    ("provider", "kind__exact=openai", ["openai"]),
    ("provider", "enabled__exact=1", ["mock"]),
    ("provider", "q=mock", ["mock"]),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "query", "expected"), CHANGELISTS)
def test_changelists_render_and_filter(admin_client, catalogue, model, query, expected):
    query = query.format(**catalogue)

    response = admin_client.get(f"/admin/sweeps/{model}/?{query}")

    assert response.status_code == 200
    cl = response.context["cl"]
    assert cl.has_filters  # the filter sidebar is there
    assert "changelist-filter" in response.content.decode()
    got = {obj.pk for obj in cl.result_list}
    if expected is None:
        assert got == set(type(cl.result_list[0]).objects.values_list("pk", flat=True)) and len(got) >= 2
    else:
        assert got == {catalogue[name].pk for name in expected}


@pytest.mark.django_db
def test_admin_index_lists_the_app(admin_client):
    page = admin_client.get("/admin/").content.decode()
    for model in ("experiment", "sweep", "run", "runsample", "responsecache", "provider"):
        assert f"/admin/sweeps/{model}/" in page

"""Hostile and careless input never reaches the database unvalidated: a spec with values nothing
can store, numbers beyond their maxima, query strings with NUL or infinite numbers, get a 4xx
(or exit 2) naming the field, through the API, the pages, the editor and `manage.py sweep`;
never a 500 or a traceback. And stopping a sweep never waits behind its planning."""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from django.db import close_old_connections, connection
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeps.models import Experiment, Run, RunSample, Sweep
from sweeps.services import planning
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start, sweep_stop
from tests.conftest import spec, wait_for_sweep
from tests.integration.api_client import PREFIX, ApiClient
from tests.integration.test_cli import sweep_cli


@pytest.fixture
def api(user, mock_latency) -> ApiClient:
    return ApiClient(user)


def refused_fields(response) -> dict[str, str]:
    assert response.status_code == 422, (response.status_code, response.content[:500])
    return {item["field"]: item["msg"] for item in response.json()["detail"]}


def with_sweep(**fields: Any) -> dict[str, Any]:
    data = spec()
    data["sweep"] = {**data["sweep"], **fields}
    return data


# --- the API refuses with 422 naming the field ---


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field, message",
    [
        (spec(name="bad\x00name"), "name", "NUL"),
        (spec(name="bad\ud800name"), "name", "lone surrogate"),
        (spec(dataset=[{"ticket": "a\x00", "expected": "b"}]), "dataset[0].ticket", "NUL"),
        (spec(dataset=[{"ticket": "a", "expected": "b\udc00"}]), "dataset[0].expected", "lone surrogate"),
        (spec(pipeline=[{"name": "summarize", "prompt": "{{ ticket }}\x00", "model": "mock/echo"}]),
         "pipeline[0].prompt", "NUL"),
        (spec(repeats=10**10), "repeats", "must be at most 100"),
        (spec(budget={"max_tokens": 10**30}), "budget.max_tokens", "must fit in 64 bits"),
        (spec(budget={"max_tokens": 2**63}), "budget.max_tokens", "must fit in 64 bits"),
        (with_sweep(type="random", n_trials=1_000_000_000), "sweep.n_trials", "must be at most 10,000"),
        (with_sweep(top_k=10**20), "sweep.top_k", "must fit in 64 bits"),
        (with_sweep(seed=10**30), "sweep.seed", "must fit in 64 bits"),
        (with_sweep(seed=-1), "sweep.seed", "must be at least 0"),
    ],
)  # fmt: skip
def test_unstorable_or_unbounded_specs_get_422_naming_the_field(api, body, field, message):
    fields = refused_fields(api.post("/experiments", body))
    assert message in fields.get(field, ""), fields
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_json_infinity_says_finite_number(api):
    body = json.dumps(spec()).replace(
        '"max_concurrency": 4', '"max_concurrency": 4, "budget": {"max_cost_usd": Infinity}'
    )
    fields = refused_fields(api.post("/experiments", body.encode()))
    assert fields == {"budget.max_cost_usd": "must be a finite number, got inf"}


@pytest.mark.django_db
def test_the_maxima_are_read_from_settings(api, settings):
    settings.PROMPTLOOPER_MAX_REPEATS = 2
    settings.PROMPTLOOPER_MAX_TRIALS = 3
    settings.PROMPTLOOPER_MAX_SAMPLES = 20  # the spec: 4 configurations x 3 rows = 12 samples per repeat
    assert "must be at most 2" in refused_fields(api.post("/experiments", spec(repeats=3)))["repeats"]
    fields = refused_fields(api.post("/experiments", with_sweep(type="random", n_trials=4)))
    assert "must be at most 3" in fields["sweep.n_trials"]
    fields = refused_fields(api.post("/experiments", spec(repeats=2)))
    assert "24 samples" in fields["sweep.params"] and "limit of 20" in fields["sweep.params"]
    assert api.post("/experiments", spec()).status_code == 201


# --- query strings ---


@pytest.fixture
def finished(user, mock_latency) -> Sweep:
    """An experiment with a finished sweep, so runs and samples exist to be filtered."""
    experiment = experiment_create(owner=user, data=spec())
    return wait_for_sweep(sweep_start(experiment=experiment), until=("completed",))


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db(transaction=True)
def test_query_strings_with_nul_or_infinite_numbers_are_4xx(user, finished):
    api = ApiClient(user)
    experiment = finished.experiment_id
    answers = {
        "search": api.client.get(f"{PREFIX}/experiments?search=%00", headers=api.headers()),
        "param model": api.client.get(f"{PREFIX}/experiments/{experiment}/runs?param=model=%00", headers=api.headers()),
        "param inf": api.client.get(
            f"{PREFIX}/experiments/{experiment}/runs?param=params.temperature=1e999", headers=api.headers()
        ),
        "param huge": api.client.get(
            f"{PREFIX}/experiments/{experiment}/runs?param=params.temperature={10**30}", headers=api.headers()
        ),
        "page q": browser(user).get("/?q=%00"),
    }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {"search": 400, "param model": 400, "param inf": 422, "param huge": 422, "page q": 400}
    assert "NUL" in answers["search"].json()["detail"] and "'search'" in answers["search"].json()["detail"]
    assert "finite number" in answers["param inf"].json()["detail"]
    assert "NUL" in answers["page q"].content.decode()
    # A filter that can match still works.
    ok = api.get(f"/experiments/{experiment}/runs", param="params.temperature=1.0")
    assert ok.status_code == 200 and ok.json()["count"] == 2


# Values that once reached the database (NUL, numbers no column or JSON comparison takes) and
# their neighbours: each is sent to every parameter; Hypothesis then mixes random text in.
HOSTILE = ["\x00", "a\x00b", "\ud800", "1e999", "-1e999", "NaN", "Infinity", str(10**30), str(2**63), "-1", "0",
           "99999999999999999999", "model=\x00", "params.temperature=1e999", "params.temperature=NaN",
           f"params.temperature={10**30}", "a.b.c=[1,{}]", "x=", "=", ""]  # fmt: skip
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0xDFFF), max_size=12),
)


def query_paths(sweep: Sweep) -> list[tuple[str, list[str]]]:
    """Every page and API route that reads a query string, with the parameters it reads."""
    experiment, run = sweep.experiment_id, sweep.runs.order_by("id").first().pk
    return [
        (f"{PREFIX}/experiments", ["limit", "offset", "status", "search"]),
        (f"{PREFIX}/experiments/{experiment}/sweeps", ["limit", "offset"]),
        (f"{PREFIX}/experiments/{experiment}/runs", ["limit", "offset", "status", "order", "sweep", "param"]),
        (f"{PREFIX}/experiments/{experiment}/leaderboard", ["sweep", "limit"]),
        (f"{PREFIX}/experiments/{experiment}/export", ["format", "sweep", "run"]),
        (f"{PREFIX}/runs/{run}", ["limit", "offset"]),
        (f"{PREFIX}/sweeps/{sweep.pk}", ["x"]),
        (f"{PREFIX}/sweeps/{sweep.pk}/compare/{sweep.pk}", ["alpha"]),
        (f"{PREFIX}/providers", ["limit", "offset"]),
        ("/", ["q", "status", "page"]),
        ("/experiments/live/", ["q", "status", "page"]),
        (f"/experiments/{experiment}/", ["order", "page", "sweep"]),
        (f"/experiments/{experiment}/live/", ["order", "page", "sweep"]),
        (f"/runs/{run}/", ["status", "max_score", "page"]),
        (f"/experiments/{experiment}/compare/", ["runs", "with", "page"]),
        (f"/experiments/{experiment}/regression/", ["before", "after", "alpha"]),
    ]


@pytest.mark.django_db(transaction=True)
def test_no_query_parameter_of_any_page_or_route_gives_a_500(user, finished):
    api, page = ApiClient(user), browser(user)
    paths = query_paths(finished)

    def check(path: str, pairs: list[tuple[str, str]]) -> None:
        query = "&".join(f"{quote(name)}={quote(value, errors='surrogatepass')}" for name, value in pairs)
        api_route = path.startswith(PREFIX)
        response = (api.client if api_route else page).get(
            f"{path}?{query}", headers=api.headers() if api_route else {}
        )
        assert response.status_code < 500, (path, pairs, response.status_code, response.content[:300])

    for path, names in paths:
        for name in names:
            for value in HOSTILE:
                check(path, [(name, value)])

    @given(target=st.sampled_from(paths), data=st.data())
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def mixed(target, data):
        path, names = target
        check(path, data.draw(st.lists(st.tuples(st.sampled_from(names), hostile_text), min_size=1, max_size=3)))

    mixed()


@pytest.mark.django_db(transaction=True)
def test_an_id_beyond_64_bits_in_a_path_is_not_found(user, finished):
    """No row has such an id, and SQLite raises OverflowError when one reaches a query (schemathesis
    found it in .../runs/{run}/samples/{sample}/text): every page and route answers 404."""
    api, page = ApiClient(user), browser(user)
    run, sample = finished.runs.order_by("id").first(), RunSample.objects.filter(sweep=finished).first()
    huge = 2**64 + 12345
    api_paths = [
        f"/runs/{huge}/samples/{sample.pk}/text", f"/runs/{run.pk}/samples/{huge}/text", f"/runs/{huge}",
        f"/experiments/{huge}/runs", f"/sweeps/{huge}",
    ]  # fmt: skip
    for path in api_paths:
        response = api.client.get(f"{PREFIX}{path}", headers=api.headers())
        assert (response.status_code, response.json()) == (404, {"detail": "Not Found"}), path
    for path in (f"/runs/{huge}/", f"/experiments/{huge}/", f"/samples/{huge}/text/"):
        assert page.get(path).status_code == 404, path
    # The largest id that fits still reaches the view (a 404 of its own), and a real id is found.
    assert api.client.get(f"{PREFIX}/runs/{2**63 - 1}", headers=api.headers()).status_code == 404
    assert api.client.get(f"{PREFIX}/runs/{run.pk}", headers=api.headers()).status_code == 200
    # Digits that are not ASCII ("¹" is a digit to str.isdigit, not to int: a 500 once) are no id either.
    for segment in ("¹", "٣", "²³"):
        assert api.client.get(f"{PREFIX}/runs/{segment}", headers=api.headers()).status_code == 404, segment
        assert page.get(f"/runs/{segment}/").status_code == 404, segment


# --- the editor and the CLI ---


@pytest.mark.django_db
def test_the_editor_shows_the_error_and_keeps_what_was_typed(user, mock_latency):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.integration.test_editor import field_errors, spec_text

    client = browser(user)
    text = json.dumps(spec(name="typed \u0000 name", repeats=10**10), indent=2)
    for action in ("save", "estimate"):
        page = client.post("/experiments/new/", {"spec": text, "action": action}).content.decode()
        assert spec_text(page) == text  # nothing lost
        assert [path for path, _ in field_errors(page)] == ["name"]  # values first: then the rest
    text = json.dumps(spec(), indent=2)
    for name, content in [("rows.jsonl", b'{"ticket": "a\\u0000", "expected": "b"}\n'),
                          ("rows.csv", b"ticket,expected\na\x00,b\n")]:  # fmt: skip
        upload = SimpleUploadedFile(name, content)
        response = client.post("/experiments/new/", {"spec": text, "action": "save", "dataset": upload})
        page = response.content.decode()
        assert response.status_code == 200 and spec_text(page) == text
        assert [(path, "NUL" in message) for path, message in field_errors(page)] == [("dataset[0].ticket", True)]
    assert not Experiment.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "line, field",
    [
        ("repeats: 10000000000", "repeats"),
        ("budget: {max_tokens: 1000000000000000000000000000000}", "budget.max_tokens"),
        ("dataset: [{ticket: .nan, expected: b}]", "dataset[0].ticket"),
        ('description: "nul \\0 here"', "description"),
    ],
)
def test_manage_py_sweep_exits_2_naming_the_field(user, mock_latency, tmp_path, line, field):
    data = spec()
    data.pop(line.split(":")[0], None)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data) + line + "\n", encoding="utf-8")
    status, output = sweep_cli(str(path))
    assert status == 2, output
    assert f"  {field}: " in output and "Traceback" not in output
    assert not Experiment.objects.exists()


# --- stop never waits behind planning ---


@pytest.mark.django_db(transaction=True)
def test_stop_during_a_long_planning_returns_and_the_planner_aborts(user, mock_latency, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: a planning transaction holds it whole")
    experiment = experiment_create(owner=user, data=spec())
    sweep = Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="running")
    monkeypatch.setattr(planning, "INSERT_BATCH", 2)  # 12 samples: six inserts, the planner pauses after one
    inserted, release = threading.Event(), threading.Event()
    real_insert = planning.insert_rows

    def insert_then_wait(*args, **kwargs):
        real_insert(*args, **kwargs)
        inserted.set()
        release.wait(60)  # a long planning, holding its transaction open

    monkeypatch.setattr(planning, "insert_rows", insert_then_wait)
    outcome: dict[str, Any] = {}

    def in_thread(name, function):
        def run():
            try:
                outcome[name] = function()
            finally:
                close_old_connections()
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    planner = in_thread("plan", lambda: planning.plan_next_round(sweep.pk, experiment.parsed_spec()))
    try:
        assert inserted.wait(30)
        stopper = in_thread("stop", lambda: sweep_stop(sweep=Sweep.objects.get(pk=sweep.pk)))
        stopper.join(30)  # with the planner blocked until release: only a stop that does not wait returns
        assert not stopper.is_alive() and outcome["stop"].status == "stopped"
    finally:
        release.set()
        planner.join(30)
    assert outcome["plan"] == planning.Plan.STOPPED
    sweep.refresh_from_db()
    assert (sweep.status, sweep.rounds, sweep.total) == ("stopped", 0, 0)
    assert not Run.objects.filter(sweep=sweep).exists() and not RunSample.objects.filter(sweep=sweep).exists()

"""The experiments list and the experiment page: what they show, the hooks the browser tests
use, live updates over the websocket, the charts' JSON, plotly.js served offline, ownership,
and a constant, small cost in queries and time however many samples an experiment has."""

from __future__ import annotations

import html
import json
import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from promptlooper.asgi import application
from sweeps.models import Experiment, Run, RunSample, Sweep
from sweeps.runner.execution import execute_sweep
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_pause, sweep_start, sweep_stop
from sweeps.web import charts
from tests.conftest import logged_in, spec
from tests.pages import Table

PLOTLY_JS_VERSION = charts.plotly_js_version()


# --- helpers ---


def make_sweep(experiment: Experiment, runs: list[dict], **fields) -> Sweep:
    """A sweep and its runs written directly: pages only read them. Each run dict gives config,
    score, cost_usd and optionally latency_ms, status, tokens_in, tokens_out."""
    sweep = Sweep.objects.create(experiment=experiment, spec={}, **{"status": "completed", **fields})
    for i, r in enumerate(runs):
        Run.objects.create(
            experiment=experiment, sweep=sweep, config_hash=f"h{i}",
            **{"status": "completed", "tokens_in": 10, "tokens_out": 5, "latency_ms": 100.0, **r},
        )  # fmt: skip
    Experiment.objects.filter(pk=experiment.pk).update(status=sweep.status)
    return sweep


def grid_runs(models=("mock/echo", "mock/upper"), temperatures=(0.0, 0.5, 1.0)) -> list[dict]:
    """Runs whose score falls with temperature and whose cost rises with it."""
    return [
        {"config": {"model": m, "params": {"temperature": t}}, "score": round(0.9 - 0.4 * t - 0.1 * (i % 5), 3),
         "cost_usd": round(0.001 + 0.002 * t + 0.0005 * i, 6)}
        for i, m in enumerate(models) for t in temperatures
    ]  # fmt: skip


def actions(page: str) -> list[str]:
    return re.findall(r'<button type="submit" data-action="(\w+)"', page)


def charts_data(page: str) -> dict:
    found = re.search(r'<script id="charts-data" type="application/json">(.*?)</script>', page, re.S)
    assert found, "no charts JSON in the page"
    return json.loads(found.group(1))


# --- experiments list ---


@pytest.mark.django_db
def test_list_shows_each_experiments_latest_sweep(user, other_user):
    fresh = experiment_create(owner=user, data=spec(name="Fresh"))
    done = experiment_create(owner=user, data=spec(name="Done <b>bold</b>"))
    make_sweep(done, [], status="paused", total=12, completed=2, failed=1, cancelled=0)  # an older one
    make_sweep(done, [], total=12, completed=10, failed=1, cancelled=1, best_score=0.8124,
               tokens_in=1200, tokens_out=345, cost_usd=0.01234)  # fmt: skip
    experiment_create(owner=other_user, data=spec(name="Bob secret"))

    page = logged_in(user).get("/").content.decode()

    table = Table("experiments", page)
    assert table.headers[:7] == ["Name", "Status", "Progress", "Best score", "Tokens", "Cost", "Last activity"]
    rows = {int(r["attrs"]["data-experiment-id"]): r for r in table.rows}
    assert set(rows) == {fresh.pk, done.pk}  # bob's is not there
    cells = rows[done.pk]["cells"]
    assert cells[0] == "Done <b>bold</b>" and "<b>bold</b>" not in page  # escaped
    assert rows[done.pk]["hrefs"][0] == f"/experiments/{done.pk}/"
    assert cells[1:6] == ["completed", "11 / 12", "0.812", "1,545", "$0.0123"]  # the latest sweep's
    assert re.search(r'<progress class="mini" max="12" value="11"', page)  # the cancelled sample is not done
    assert cells[6].endswith("ago")
    assert rows[fresh.pk]["cells"][1:6] == ["draft", "no sweep yet", "–", "–", "–"]
    assert table.headers[7:11] == ["Id", "Created", "Last sweep", "Source"]
    latest = done.sweeps.order_by("-created_at").first()
    assert cells[7] == str(done.pk) and cells[8] == done.created_at.strftime("%Y-%m-%d %H:%M")
    assert cells[9].startswith(f"{latest.pk} ") and cells[10] == "web"
    assert f'href="/experiments/{done.pk}/?sweep={latest.pk}"' in page
    assert rows[fresh.pk]["cells"][9] == "–"
    # Edit, Duplicate (a POST form) and Delete lead to the editor's routes.
    assert f'href="/experiments/{done.pk}/edit/"' in page and f'href="/experiments/{done.pk}/delete/"' in page
    assert f'<form method="post" action="/experiments/{done.pk}/duplicate/" class="inline">' in page
    # Nav: experiments, a new one, API tokens, who is logged in.
    assert 'href="/experiments/new/"' in page and 'href="/account/tokens/"' in page and "alice" in page
    assert 'data-ws-path="/ws/experiments/"' in page and 'data-live-url="/experiments/live/"' in page


@pytest.mark.django_db
def test_list_partial_is_the_table_alone_with_the_same_filters(user):
    for name in ("Triage A", "Triage B", "Other"):
        experiment_create(owner=user, data=spec(name=name))
    client = logged_in(user)

    partial = client.get("/experiments/live/?q=triage").content.decode()
    assert "<html" not in partial
    names = [r["cells"][0] for r in Table("experiments", partial).rows]
    assert sorted(names) == ["Triage A", "Triage B"]
    assert Table("experiments", client.get("/?status=completed").content.decode()).rows == []
    assert "No experiment matches" in client.get("/?q=nothing-like-this").content.decode()


@pytest.mark.django_db
def test_list_is_paginated_and_its_queries_do_not_grow_with_it(user, django_assert_max_num_queries):
    client = logged_in(user)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    experiment = experiment_create(owner=user, data=spec(name="e0"))
    make_sweep(experiment, grid_runs())
    few = queries("/"), queries("/experiments/live/")
    for i in range(1, 60):
        make_sweep(experiment_create(owner=user, data=spec(name=f"e{i}")), [], total=3, completed=i % 4)
    many = queries("/"), queries("/experiments/live/")
    assert few == many
    with django_assert_max_num_queries(6):  # session, user, count, page, latest sweeps (+ savepoint slack)
        page = client.get("/").content.decode()
    assert len(Table("experiments", page).rows) == 50
    assert "Page 1 of 2" in page
    assert len(Table("experiments", client.get("/?page=2").content.decode()).rows) == 10


@pytest.mark.django_db
def test_nobody_logged_in_is_sent_to_the_login_page(client, user):
    for url in ("/", "/experiments/live/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- the list's websocket ---


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"origin", b"http://testserver"), (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


@pytest.fixture
async def close_async_connections():
    """database_sync_to_async's thread keeps a connection that would outlive the test."""
    yield
    await database_sync_to_async(connections.close_all)()


async def list_socket(headers) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, "/ws/experiments/", headers=headers)
    connected, _ = await communicator.connect()
    return communicator, connected


@pytest.mark.django_db(transaction=True)
async def test_list_socket_carries_the_users_own_sweep_events_only(
    user, other_user, mock_latency, monkeypatch, close_async_connections
):
    # The sweep runs on this test's loop, so its events and the consumers share one layer.
    monkeypatch.setattr("sweeps.services.sweeps.dispatch_sweep", lambda sweep, **kwargs: [])
    anonymous, connected = await list_socket([(b"origin", b"http://testserver")])
    assert not connected
    alice, connected = await list_socket(await database_sync_to_async(session_headers)(user))
    assert connected
    bob, connected = await list_socket(await database_sync_to_async(session_headers)(other_user))
    assert connected

    experiment = await database_sync_to_async(experiment_create)(owner=user, data=spec())
    sweep = await database_sync_to_async(sweep_start)(experiment=experiment)
    assert await execute_sweep(sweep.pk) == "drained"

    received = []
    while not received or received[-1]["type"] != "sweep.completed":
        received.append(await alice.receive_json_from(timeout=5))
    assert received[0]["type"] == "sweep.queued"
    assert {e["type"].split(".")[0] for e in received} == {"sweep"}  # run events stay on the experiment's socket
    assert all(e["experiment_id"] == experiment.pk and e["owner_id"] == user.pk for e in received)
    assert received[-1]["completed"] == received[-1]["total"] == 12
    assert await bob.receive_nothing(timeout=0.3)  # nothing of alice's reaches bob
    await alice.disconnect()
    await bob.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_pause_and_stop_from_a_service_reach_the_list(user, mock_latency, monkeypatch, close_async_connections):
    monkeypatch.setattr("sweeps.services.sweeps.dispatch_sweep", lambda sweep, **kwargs: [])
    alice, _ = await list_socket(await database_sync_to_async(session_headers)(user))
    experiment = await database_sync_to_async(experiment_create)(owner=user, data=spec())
    sweep = await database_sync_to_async(sweep_start)(experiment=experiment)
    await database_sync_to_async(sweep_pause)(sweep=sweep)
    await database_sync_to_async(sweep_stop)(sweep=sweep)

    events = [await alice.receive_json_from(timeout=5) for _ in range(3)]
    await alice.disconnect()
    assert [(e["type"], e["status"], e["owner_id"]) for e in events] == [
        ("sweep.queued", "queued", user.pk), ("sweep.paused", "paused", user.pk), ("sweep.stopped", "stopped", user.pk)
    ]  # fmt: skip


# --- the experiment page ---


@pytest.mark.django_db
def test_experiment_page_shows_progress_stats_leaderboard_and_hooks(user):
    experiment = experiment_create(owner=user, data=spec(name="Triage"))
    sweep = make_sweep(experiment, grid_runs(), total=18, completed=15, failed=2, cancelled=1, cached=4, cached_calls=9,
                       tokens_in=900, tokens_out=100, cost_usd=0.0421, best_score=0.9)  # fmt: skip
    client = logged_in(user)

    page = client.get(f"/experiments/{experiment.pk}/").content.decode()

    assert re.search(r'<progress id="progress" max="18" value="17"', page)  # the cancelled sample is not done
    assert 'id="progress-text">17 of 18 done · 1 cancelled<' in page
    assert '<span class="badge completed" id="sweep-status">completed</span>' in page
    assert ">9 calls (4 whole samples)<" in page and 'id="tokens">1,000<' in page and 'id="cost">$0.0421<' in page
    assert 'id="best-score">0.900<' in page and 'id="failed">2<' in page
    assert actions(page) == ["start"]
    board = Table("leaderboard", page)
    assert board.headers == ["#", "Score", "95 % interval", "model", "params.temperature", "Status", "Tokens", "Cost",
                             "Score / $", "Latency", "Front"]  # fmt: skip
    runs = list(Run.objects.filter(sweep=sweep).order_by("-score", "id"))
    assert len(board.rows) == 6
    for rank, (row, run) in enumerate(zip(board.rows, runs, strict=True), 1):
        assert row["hrefs"][0] == f"/runs/{run.pk}/"  # the first cell links to the run
        temperature = str(run.config["params"]["temperature"])
        assert row["cells"][:5] == [str(rank), f"{run.score:.3f}", "", run.config["model"], temperature]
        checkbox = {"type": "checkbox", "name": "runs", "value": str(run.pk), "aria-label": f"Compare run {run.pk}"}
        assert row["inputs"] == [checkbox]
    # Ticked runs go to the compare page as repeated runs= parameters.
    assert f'<form method="get" action="/experiments/{experiment.pk}/compare/" id="compare-form">' in page
    for hook in ('id="chart-by-param"', 'id="chart-parallel"', 'id="chart-pareto"', 'id="events"'):
        assert hook in page
    assert f'<script src="/vendor/plotly-{PLOTLY_JS_VERSION}.min.js" defer></script>' in page
    assert "cdn" not in page.lower()
    assert f'data-ws-path="/ws/experiments/{experiment.pk}/"' in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, ["start"]), ("queued", ["pause", "stop"]), ("running", ["pause", "stop"]), ("paused", ["resume", "stop"]),
     ("completed", ["start"]), ("stopped", ["start"]), ("failed", ["start", "resume"])],
)  # fmt: skip
def test_controls_are_the_actions_the_sweep_allows_now(user, status, expected):
    experiment = experiment_create(owner=user, data=spec())
    if status:
        make_sweep(experiment, [], status=status, total=4)
    client = logged_in(user)
    for url in (f"/experiments/{experiment.pk}/", f"/experiments/{experiment.pk}/live/"):
        page = client.get(url).content.decode()
        assert actions(page) == expected
        for action in expected:  # each inside a POST form to the same control the API and admin use
            assert f'<form method="post" action="/experiments/{experiment.pk}/sweep/{action}/">' in page


@pytest.mark.django_db
def test_the_pages_script_gets_the_live_part_back_from_a_control_or_the_refusal(user):
    experiment = experiment_create(owner=user, data=spec())
    sweep = make_sweep(experiment, [], status="running", total=4)
    client = logged_in(user)
    script = {"HTTP_X_REQUESTED_WITH": "fetch"}

    response = client.post(f"/experiments/{experiment.pk}/sweep/pause/", **script)
    assert response.status_code == 200
    part = response.content.decode()
    assert "<html" not in part and 'id="sweep-status">paused<' in part and actions(part) == ["resume", "stop"]
    sweep.refresh_from_db()
    assert sweep.status == "paused"

    refused = client.post(f"/experiments/{experiment.pk}/sweep/pause/", **script)
    assert refused.status_code == 409 and refused["Content-Type"].startswith("text/plain")
    assert refused.content.decode() == f"Cannot pause sweep {sweep.pk}: it is paused; it can be resumed or stopped."
    # Without the script, the same refusal is a flash on the page it redirects to.
    assert client.post(f"/experiments/{experiment.pk}/sweep/pause/").status_code == 302


@pytest.mark.django_db
def test_charts_json_has_a_subplot_per_parameter_a_parallel_plot_and_the_pareto_front(user):
    experiment = experiment_create(owner=user, data=spec())
    runs = [
        {"config": {"model": "a", "params": {"temperature": 0.0}}, "score": 0.9, "cost_usd": 0.030},  # front
        {"config": {"model": "a", "params": {"temperature": 0.5}}, "score": 0.7, "cost_usd": 0.010},  # front
        {"config": {"model": "b", "params": {"temperature": 0.0}}, "score": 0.6, "cost_usd": 0.020},  # dominated
        {"config": {"model": "b", "params": {"temperature": 0.5}}, "score": 0.2, "cost_usd": 0.001},  # front: cheapest
        {"config": {"model": "b", "params": {"temperature": 1.0}}, "score": None, "cost_usd": 0.0, "status": "running"},
    ]
    sweep = make_sweep(experiment, runs, status="running", total=10)
    ids = {(r.config["model"], r.config["params"]["temperature"]): r.pk for r in Run.objects.filter(sweep=sweep)}

    data = charts_data(logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode())

    assert data["runs"] == 4  # scored runs only: the running one has nothing to plot yet
    front = data["pareto"]["data"][1]
    assert front["name"] == "Pareto front"
    assert front["customdata"] == [ids[("b", 0.5)], ids[("a", 0.5)], ids[("a", 0.0)]]  # cheapest first
    assert front["x"] == [0.001, 0.010, 0.030] and front["y"] == [0.2, 0.7, 0.9]
    assert sorted(data["pareto"]["data"][0]["customdata"]) == sorted(ids[k] for k in ids if k != ("b", 1.0))
    by_model, by_temperature = data["by_param"]["data"]
    assert by_model["type"] == "box" and by_model["xaxis"] == "x1"  # a model is a category
    assert by_temperature["type"] == "scatter" and by_temperature["xaxis"] == "x2"  # a number is a number
    assert data["by_param"]["layout"]["xaxis2"]["title"]["text"] == "params.temperature"
    # Parallel axes: one line (a polyline ended by None) per scored run, coloured by its score band.
    parallel = data["parallel"]
    assert parallel["layout"]["xaxis"]["ticktext"] == ["model", "params.temperature", "score"]
    assert all(trace["type"] == "scatter" for trace in parallel["data"])  # SVG: no WebGL parcoords
    lines = [(x, y) for trace in parallel["data"] for x, y in zip(trace["customdata"], trace["y"]) if x is not None]
    assert {run_id for run_id, _ in lines} == set(data["pareto"]["data"][0]["customdata"])
    by_run = {}
    for run_id, height in lines:
        by_run.setdefault(run_id, []).append(height)
    assert by_run[ids[("a", 0.0)]] == [0.0, 0.0, 0.9]  # model a at the bottom, lowest temperature, score
    assert by_run[ids[("b", 0.5)]] == [1.0, 1.0, 0.2]
    assert {a["text"] for a in parallel["layout"]["annotations"]} >= {"a", "b", "0", "0.5", "1"}
    assert '"template"' not in json.dumps(data)  # small: plotly's default template stays out


@pytest.mark.django_db
def test_a_page_without_a_scored_run_has_empty_charts_and_says_so(user):
    experiment = experiment_create(owner=user, data=spec())
    page = logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode()
    assert charts_data(page) == {"runs": 0}
    assert '<p id="charts-empty" class="card empty wide">' in page and "No sweep yet." in page


def test_long_category_labels_stay_distinct():
    labels = charts.categories(["Summarize this ticket briefly: {{ t }}", "Summarize this ticket briefly, in one line",
                                None, "short"])  # fmt: skip
    assert len(set(labels.values())) == 4
    assert all(len(label) <= charts.LABEL_CHARS for label in labels.values())
    assert labels[repr(None)] == "(none)"


@pytest.mark.django_db
def test_the_event_feed_starts_from_the_last_known_state(user):
    experiment = experiment_create(owner=user, data=spec())
    sweep = make_sweep(experiment, grid_runs()[:2], status="paused", stopped_reason="token_budget", total=6)
    from django.utils import timezone

    Run.objects.filter(sweep=sweep).update(finished_at=timezone.now())
    Sweep.objects.filter(pk=sweep.pk).update(started_at=timezone.now())
    page = logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode()
    feed = re.search(r'<ol id="events">(.*?)</ol>', page, re.S).group(1)
    items = [re.sub(r"<time[^>]*>.*?</time>", "", li).strip() for li in re.findall(r"<li[^>]*>(.*?)</li>", feed, re.S)]
    run_ids = sorted(Run.objects.filter(sweep=sweep).values_list("id", flat=True))
    assert f"Sweep {sweep.pk} paused (token_budget)" in items
    assert items[-1] == f"Sweep {sweep.pk} queued"
    for run in Run.objects.filter(sweep=sweep):
        assert f"Run {run.pk} completed · score {run.score:.3f}" in items
    assert len(items) == 2 + len(run_ids) + 1


@pytest.mark.django_db
def test_another_users_experiment_is_404_everywhere(user, other_user):
    experiment = experiment_create(owner=user, data=spec(name="Alice only"))
    make_sweep(experiment, grid_runs())
    bob = logged_in(other_user)
    for url in (f"/experiments/{experiment.pk}/", f"/experiments/{experiment.pk}/live/"):
        response = bob.get(url)
        assert response.status_code == 404 and "Alice only" not in response.content.decode()
    assert "Alice only" not in bob.get("/").content.decode()
    assert "Alice only" not in bob.get("/experiments/live/").content.decode()


# --- plotly.js, offline ---


@pytest.mark.django_db
def test_plotly_js_is_served_from_the_installed_package_with_a_long_cache(client):
    response = client.get(f"/vendor/plotly-{PLOTLY_JS_VERSION}.min.js")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    cache = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"public", "max-age=31536000", "immutable"} <= cache
    body = b"".join(response.streaming_content)
    assert body == charts.plotly_js_path().read_bytes() and len(body) > 1_000_000
    assert client.get("/vendor/plotly-0.0.1.min.js").status_code == 404  # only the installed version


# --- cost: queries and time do not grow with the experiment ---


def add_samples(sweep: Sweep, n_per_run: int) -> None:
    """n_per_run finished samples for every run of the sweep, in one INSERT ... SELECT: the
    database makes the rows, so 100,000 take a moment, not the test's whole budget."""
    json_value = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    stages = [{"name": "label", "model": "mock/echo", "prompt": "Label: the parcel never came", "output": "shipping"}]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %s)
            INSERT INTO {RunSample._meta.db_table} (run_id, sweep_id, row_index, replicate, inputs, stages, output,
                status, score, tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, error, attempts, lease_owner)
            SELECT r.id, r.sweep_id, n.i, 0, {json_value}, {json_value}, 'shipping', 'completed', 1.0, 12, 3, 0.00001,
                120.0, %s, '', 1, 'w'
            FROM {Run._meta.db_table} r CROSS JOIN n WHERE r.sweep_id = %s""",
            [n_per_run - 1, json.dumps({"ticket": "the parcel never came"}), json.dumps(stages), False, sweep.pk],
        )


def page_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.django_db
def test_page_and_partial_queries_do_not_grow_with_runs_or_samples(user, django_assert_max_num_queries):
    experiment = experiment_create(owner=user, data=spec())
    sweep = make_sweep(experiment, grid_runs(), status="running", total=60, completed=3)
    client = logged_in(user)
    page, partial = f"/experiments/{experiment.pk}/", f"/experiments/{experiment.pk}/live/"
    small = page_queries(client, page), page_queries(client, partial)

    more = grid_runs(models=[f"mock/m{i}" for i in range(30)], temperatures=(0.0, 0.25, 0.5, 0.75))
    for i, r in enumerate(more):
        Run.objects.create(experiment=experiment, sweep=sweep, config_hash=f"more{i}", status="completed", **r)
    add_samples(sweep, 20)

    assert (page_queries(client, page), page_queries(client, partial)) == small
    # One of them: the best-so-far chart's scores, in one query; two: the runs' share of 👍 and
    # whether the sweep has an llm_judge (its agreement with the ratings)
    with django_assert_max_num_queries(13):
        client.get(page)
    with django_assert_max_num_queries(12):
        client.get(partial)


@pytest.mark.django_db
def test_page_and_partial_read_only_the_top_two_runs_samples_of_100_000(user):
    """At scale the page stays cheap because it reads counters, not samples: the only sample rows
    it reads are the top two runs' (for the verdict), whatever the sweep holds. (Its speed is
    measured by bench/api_latency.py, not asserted here: the machines are shared.)"""
    experiment = experiment_create(owner=user, data=spec())
    runs = grid_runs(models=[f"mock/m{i}" for i in range(40)], temperatures=(0.0, 0.25, 0.5, 0.75, 1.0))  # 200 runs
    sweep = make_sweep(experiment, runs, status="running", total=100_000, completed=60_000)
    add_samples(sweep, 500)
    assert RunSample.objects.filter(sweep=sweep).count() == 100_000
    client = logged_in(user)
    table = RunSample._meta.db_table

    for url in (f"/experiments/{experiment.pk}/", f"/experiments/{experiment.pk}/live/"):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        sample_reads = [q["sql"] for q in captured.captured_queries if table in q["sql"]]
        assert len(sample_reads) <= 1, (url, sample_reads)
        for sql in sample_reads:
            ids = re.search(r'"run_id" IN \(([\d, ]+)\)', sql)
            assert ids and len(ids.group(1).split(",")) == 2, (url, sql)
    assert len(Table("leaderboard", client.get(f"/experiments/{experiment.pk}/").content.decode()).rows) == 50


@pytest.mark.django_db
def test_an_earlier_sweep_is_shown_by_its_id_and_anything_else_is_404(user, other_user):
    experiment = experiment_create(owner=user, data=spec())
    first = make_sweep(experiment, grid_runs(models=["mock/a"]), status="completed", total=4)
    make_sweep(experiment, grid_runs(models=["mock/b"]), status="completed", total=4)
    client = logged_in(user)

    page = client.get(f"/experiments/{experiment.pk}/", {"sweep": first.pk}).content.decode()
    assert {row["attrs"]["data-run-id"] for row in Table("leaderboard", page).rows} == {
        str(pk) for pk in first.runs.values_list("pk", flat=True)
    }
    assert 'id="earlier-sweep"' in page and "data-action=" not in page
    assert f'href="?sweep={first.pk}&amp;order=-score_per_dollar"' in page  # the sort keeps the sweep
    live = client.get(f"/experiments/{experiment.pk}/live/", {"sweep": first.pk}).content.decode()
    assert f"Sweep {first.pk}" in live
    theirs = make_sweep(experiment_create(owner=other_user, data=spec()), [], status="completed")
    for bad in ("abc", "1" * 30, str(theirs.pk), "-1"):
        assert client.get(f"/experiments/{experiment.pk}/", {"sweep": bad}).status_code == 404


@pytest.mark.django_db
def test_the_history_chart_draws_every_finished_run_and_the_best_full_score_so_far(user):
    from django.utils import timezone

    from sweeps.web import charts

    experiment = experiment_create(owner=user, data=spec())
    sweep = make_sweep(experiment, [], status="running", total=8)
    now = timezone.now()
    scores = [(0.4, "completed"), (0.9, "pruned"), (0.6, "completed"), (0.5, "completed")]
    for i, (score, status) in enumerate(scores):
        Run.objects.create(experiment=experiment, sweep=sweep, config_hash=f"h{i}", config={"model": f"m{i}"},
                           score=score, status=status, finished_at=now + timezone.timedelta(seconds=i))  # fmt: skip
    Run.objects.create(experiment=experiment, sweep=sweep, config_hash="open", config={"model": "x"})

    figure = charts_data(logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode())["history"]

    points, best = figure["data"]
    assert points["y"] == [0.4, 0.9, 0.6, 0.5] and points["x"] == [1, 2, 3, 4]
    assert best["y"] == [0.4, 0.4, 0.6, 0.6]  # a pruned run's score is of part of the rows: not a best
    many = charts.history([(i, i / 10_000, True) for i in range(10_000)])
    assert len(many["data"][0]["y"]) == 2000 and many["data"][0]["y"][0] == 0  # an even sample, from the start
    assert len(many["data"][1]["y"]) == 10_000 and many["data"][1]["y"][-1] == 0.9999


@pytest.mark.django_db
def test_beyond_500_runs_the_charts_draw_the_best_and_an_even_sample_of_the_rest(user):
    experiment = experiment_create(owner=user, data=spec())
    sweep = make_sweep(experiment, [], status="completed", total=700)
    Run.objects.bulk_create(
        Run(experiment=experiment, sweep=sweep, config_hash=f"h{i}", config={"model": f"m{i}"}, score=i / 700,
            status="completed", cost_usd=0.001)
        for i in range(700)
    )  # fmt: skip
    page = logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode()

    drawn = charts_data(page)["pareto"]["data"][0]["customdata"]
    scores = dict(Run.objects.filter(sweep=sweep).values_list("id", "score"))
    assert charts_data(page)["runs"] == len(drawn) == 500 and len(set(drawn)) == 500
    ranked = sorted(scores, key=lambda pk: -scores[pk])
    assert set(ranked[:250]) <= set(drawn)  # the best, all of them
    assert min(scores[pk] for pk in drawn) < 0.01  # and the worst end of the sweep too, not only its best 500
    assert "the charts show 500 of them: the best 250 and an even sample of the rest" in page


@pytest.mark.django_db
def test_a_parameter_swept_on_a_log_scale_is_charted_on_one(user):
    log_space = {"type": "random", "n_trials": 3, "params": {"params.temperature": {"min": 0.01, "max": 1.0, "log": True},
                                                             "model": ["mock/echo", "mock/upper"]}}  # fmt: skip
    experiment = experiment_create(owner=user, data=spec(sweep=log_space))
    runs = [{"config": {"model": m, "params": {"temperature": t}}, "score": 0.5, "cost_usd": 0.001}
            for m, t in (("mock/echo", 0.01), ("mock/upper", 0.1), ("mock/echo", 1.0))]  # fmt: skip
    sweep = make_sweep(experiment, runs, status="completed")
    Sweep.objects.filter(pk=sweep.pk).update(spec=experiment.spec)  # the snapshot the page reads

    figures = charts_data(logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode())

    axes = {v["title"]["text"]: v for k, v in figures["by_param"]["layout"].items() if k.startswith("xaxis")}
    assert axes["params.temperature"]["type"] == "log" and axes["model"]["type"] == "category"
    ticks = {a["text"]: a["y"] for a in figures["parallel"]["layout"]["annotations"] if a["x"] == 1}
    lines = figures["parallel"]["data"][0]["y"]  # each run's heights: model, temperature, score, then a gap
    assert sorted(round(lines[i], 6) for i in (1, 5, 9)) == [0.0, 0.5, 1.0]  # 0.01, 0.1, 1: evenly by magnitude
    assert ticks == {"0.01": 0.0, "1": 1.0}


@pytest.mark.django_db
def test_the_importance_chart_ranks_the_swept_parameters_once_runs_finish(user):
    from django.utils import timezone

    space = {"type": "random", "n_trials": 30, "params": {"params.temperature": {"min": 0.0, "max": 1.0},
                                                          "model": ["mock/echo", "mock/upper"]}}  # fmt: skip
    experiment = experiment_create(owner=user, data=spec(sweep=space))
    sweep = make_sweep(experiment, [], status="completed")
    Sweep.objects.filter(pk=sweep.pk).update(spec=experiment.spec)
    client = logged_in(user)
    empty = charts_data(client.get(f"/experiments/{experiment.pk}/").content.decode())
    assert empty["runs"] == 0  # no finished run yet: no charts at all
    for i in range(30):
        t = i / 30
        Run.objects.create(experiment=experiment, sweep=sweep, config_hash=f"h{i}", status="completed",
                           config={"model": ["mock/echo", "mock/upper"][i % 2], "params": {"temperature": t}},
                           score=1 - t, finished_at=timezone.now())  # fmt: skip

    figure = charts_data(client.get(f"/experiments/{experiment.pk}/").content.decode())["importance"]

    [bars] = figure["data"]
    assert bars["y"][-1] == "params.temperature" and bars["x"][-1] > 0.8  # on top: the one the score follows
    assert set(bars["y"]) == {"params.temperature", "model"}


@pytest.mark.django_db
def test_shared_parameters_collapse_into_a_line_and_long_values_keep_their_whole_text(user):
    experiment = experiment_create(owner=user, data=spec())
    prompt = "Classify this support ticket into exactly one team, then explain why: {{ ticket }}"
    runs = [{"config": {"model": m, "prompt": p, "params": {"temperature": 0.2}}, "score": 0.5, "cost_usd": 0.001}
            for m in ("mock/echo", "mock/upper") for p in (prompt, "Label: {{ ticket }}")]  # fmt: skip
    make_sweep(experiment, runs, status="completed")
    page = logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode()

    table = Table("leaderboard", page)
    assert "params.temperature" not in table.headers and {"model", "prompt"} <= set(table.headers)
    assert 'id="shared-params">Every run: <span title="0.2">params.temperature = 0.2</span>' in page
    column = table.headers.index("prompt")
    cut = [row["cells"][column] for row in table.rows if row["cells"][column].startswith("Classify")]
    assert cut and all(len(c) <= 60 and c.endswith("…") for c in cut)
    assert page.count(f'title="{html.escape(prompt)}"') == 2  # the whole prompt in the tooltip

"""Issue 7, cost-aware ranking on the experiment page: the leaderboard sorted by score or by
score per dollar (free runs first, as the API ranks them), its score / $ cells, runs on the
Pareto front over score, cost and latency marked, and the score chart's latency figure."""

from __future__ import annotations

import html
import math
import re

import pytest

from sweeps.models import Experiment, Run
from sweeps.services.experiments import experiment_create
from tests.conftest import spec
from tests.integration.test_experiment_page import (
    charts_data,
    logged_in,
    make_sweep,
    page_queries,
)
from tests.pages import Table

BY_SPD = "-score_per_dollar"

# name: (score, cost_usd, latency_ms). Chosen so that the two sorts, the two charts' fronts and
# the three-objective front all differ from each other.
RUNS = {
    "A": (0.90, 0.030, 900.0),  # best score, dear: 30 per dollar
    "B": (0.80, 0.004, 1500.0),  # 200 per dollar
    "C": (0.60, 0.0, 300.0),  # free (all from the cache): first by score per dollar
    "D": (0.50, 0.001, 200.0),  # 500 per dollar
    "E": (0.70, 0.024, 2000.0),  # 29.17 per dollar; B beats it on all three
    "F": (None, 0.0, None),  # still running: last in any order
    "G": (0.0, 0.0, 50.0),  # free but scoring 0: not ranked with the free runs (the API's rule)
}
BY_SCORE_ORDER = ["A", "B", "E", "C", "D", "G", "F"]
BY_SPD_ORDER = ["C", "D", "B", "A", "E", "G", "F"]
PER_DOLLAR = {"A": "30", "B": "200", "C": "free", "D": "500", "E": "29.2", "F": "–", "G": "free"}
FRONT_3D = {"A", "B", "C", "D", "G"}  # E: B is better on all three; F: unscored
COST_FRONT = ["C", "B", "A"]  # cheapest first; G and D lose to C, which is free and scores more
LATENCY_FRONT = ["G", "D", "C", "A"]  # fastest first; B loses to A, which is faster and scores more


def ranking_sweep(experiment: Experiment, **fields) -> dict[str, int]:
    """A completed sweep with RUNS; returns their ids by name. (The browser test uses it too.)"""
    runs = [
        {"config": {"model": f"mock/{name.lower()}"}, "score": score, "cost_usd": cost, "latency_ms": latency,
         **({"status": "running"} if score is None else {})}
        for name, (score, cost, latency) in RUNS.items()
    ]  # fmt: skip
    sweep = make_sweep(experiment, runs, total=len(RUNS), **fields)
    by_model = dict(Run.objects.filter(sweep=sweep).values_list("config__model", "id"))
    return {name: by_model[f"mock/{name.lower()}"] for name in RUNS}


def board(page: str) -> list[dict]:
    return Table("leaderboard", page).rows


def row_ids(page: str) -> list[int]:
    return [int(row["attrs"]["data-run-id"]) for row in board(page)]


def sort_links(page: str) -> dict[str, tuple[str, bool]]:
    """The sort control: link text -> (href, whether it is the current sort)."""
    nav = re.search(r'<nav class="sort" id="leaderboard-sort"[^>]*>(.*?)</nav>', page, re.S)
    assert nav, "no sort control"
    links = re.findall(r'<a href="([^"]*)" data-order="[^"]*"( aria-current="true")?>([^<]*)</a>', nav.group(1))
    return {text: (html.unescape(href), bool(current)) for href, current, text in links}


@pytest.fixture
def experiment(user) -> Experiment:
    return experiment_create(owner=user, data=spec(name="Ranking"))


@pytest.mark.django_db
def test_the_leaderboard_sorts_by_score_or_by_score_per_dollar(user, experiment):
    ids = ranking_sweep(experiment)
    names = {run_id: name for name, run_id in ids.items()}
    client = logged_in(user)
    url = f"/experiments/{experiment.pk}/"

    by_score = client.get(url).content.decode()
    assert [names[i] for i in row_ids(by_score)] == BY_SCORE_ORDER
    assert sort_links(by_score) == {"Score": ("?order=-score", True), "Score per dollar": (f"?order={BY_SPD}", False)}

    by_spd = client.get(url, {"order": BY_SPD}).content.decode()
    assert [names[i] for i in row_ids(by_spd)] == BY_SPD_ORDER
    assert sort_links(by_spd) == {"Score": ("?order=-score", False), "Score per dollar": (f"?order={BY_SPD}", True)}
    rows = board(by_spd)
    assert [row["cells"][0] for row in rows] == [str(rank) for rank in range(1, len(RUNS) + 1)]  # ranked anew
    assert [row["hrefs"][0] for row in rows] == [f"/runs/{ids[name]}/" for name in BY_SPD_ORDER]

    # The live part, as the page's script fetches it (with the page's query), keeps the sort.
    live = client.get(f"{url}live/", {"order": BY_SPD}, HTTP_X_REQUESTED_WITH="fetch").content.decode()
    assert "<html" not in live and [names[i] for i in row_ids(live)] == BY_SPD_ORDER
    assert [names[i] for i in row_ids(client.get(f"{url}live/").content.decode())] == BY_SCORE_ORDER


@pytest.mark.django_db
def test_score_per_dollar_cells_and_the_three_objective_front(user, experiment):
    ids = ranking_sweep(experiment)
    names = {run_id: name for name, run_id in ids.items()}

    for order in ("-score", BY_SPD):
        page = logged_in(user).get(f"/experiments/{experiment.pk}/", {"order": order}).content.decode()
        table = Table("leaderboard", page)
        spd, front = table.headers.index("Score / $"), table.headers.index("Front")
        assert table.headers[spd - 1] == "Cost" and table.headers[spd + 1] == "Latency"
        cells = {names[int(row["attrs"]["data-run-id"])]: row["cells"] for row in table.rows}
        assert {name: c[spd] for name, c in cells.items()} == PER_DOLLAR
        assert {name for name, c in cells.items() if c[front] == "front"} == FRONT_3D
        assert {c[front] for name, c in cells.items() if name not in FRONT_3D} == {""}
    assert page.count('<span class="badge front"') == len(FRONT_3D)


@pytest.mark.django_db
@pytest.mark.parametrize("order", ["bogus", "score", "-cost", "", "-score_per_dollar ", "-SCORE_PER_DOLLAR"])
def test_an_unknown_order_falls_back_to_the_score(user, experiment, order):
    ids = ranking_sweep(experiment)
    names = {run_id: name for name, run_id in ids.items()}
    client = logged_in(user)

    for url in (f"/experiments/{experiment.pk}/", f"/experiments/{experiment.pk}/live/"):
        response = client.get(url, {"order": order, "page": "x"})
        assert response.status_code == 200
        page = response.content.decode()
        assert [names[i] for i in row_ids(page)] == BY_SCORE_ORDER
        assert sort_links(page)["Score"][1] and not sort_links(page)["Score per dollar"][1]


@pytest.mark.django_db
def test_pages_of_the_leaderboard_keep_the_sort(user, experiment):
    runs = [
        {"config": {"model": f"mock/m{i}"}, "score": round((i * 37 % 100) / 100, 2),
         "cost_usd": 0.0 if i % 9 == 0 else round(0.0001 * (1 + i * 53 % 61), 6)}
        for i in range(57)
    ]  # fmt: skip
    sweep = make_sweep(experiment, runs, total=57)

    def spd_rank(run: Run) -> tuple:  # the API's rule, written out: free first, then score / $, then score
        free = run.cost_usd == 0 and run.score > 0
        spd = run.score / run.cost_usd if run.cost_usd > 0 else None
        return (not free, -spd if spd is not None else math.inf, -run.score, run.pk)

    expected = [run.pk for run in sorted(Run.objects.filter(sweep=sweep), key=spd_rank)]
    assert expected != [run.pk for run in Run.objects.filter(sweep=sweep).order_by("-score", "id")]  # not vacuous
    client = logged_in(user)
    url = f"/experiments/{experiment.pk}/"

    first = client.get(url, {"order": BY_SPD}).content.decode()
    assert '<a href="?order=-score_per_dollar&amp;page=2">Worse →</a>' in first
    second = client.get(url, {"order": BY_SPD, "page": 2}).content.decode()
    assert '<a href="?order=-score_per_dollar&amp;page=1">← Better</a>' in second
    assert [row["cells"][0] for row in board(second)] == [str(rank) for rank in range(51, 58)]
    assert row_ids(first) + row_ids(second) == expected
    # The default sort's links stay as they were.
    assert '<a href="?page=2">Worse →</a>' in client.get(url).content.decode()


@pytest.mark.django_db
def test_the_sorted_pages_queries_do_not_grow_with_runs(user, experiment):
    sweep = make_sweep(experiment, [{"config": {"model": "a"}, "score": 0.5, "cost_usd": 0.001}], status="running")
    client = logged_in(user)
    url = f"/experiments/{experiment.pk}/"
    page, partial = f"{url}?order={BY_SPD}", f"{url}live/?order={BY_SPD}"
    small = page_queries(client, page), page_queries(client, partial)
    for i in range(80):
        Run.objects.create(
            experiment=experiment, sweep=sweep, config_hash=f"more{i}", status="completed",
            config={"model": f"m{i}"}, score=i / 80, cost_usd=0.001 * (i % 7), latency_ms=10.0 * i,
        )  # fmt: skip
    client.get(page)  # the top-two verdict is worked out once for the new top two, then cached
    assert (page_queries(client, page), page_queries(client, partial)) == small


@pytest.mark.django_db
def test_a_control_from_the_pages_script_answers_in_the_pages_sort(user, experiment):
    ids = ranking_sweep(experiment, status="running")
    names = {run_id: name for name, run_id in ids.items()}

    response = logged_in(user).post(
        f"/experiments/{experiment.pk}/sweep/pause/?order={BY_SPD}", HTTP_X_REQUESTED_WITH="fetch"
    )

    assert response.status_code == 200
    part = response.content.decode()
    assert 'id="sweep-status">paused<' in part
    assert [names[i] for i in row_ids(part)] == BY_SPD_ORDER


@pytest.mark.django_db
def test_the_charts_json_has_the_score_against_latency_figure_with_its_own_front(user, experiment):
    ids = ranking_sweep(experiment)

    data = charts_data(logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode())

    latency = data["pareto_latency"]
    runs, front = latency["data"]
    assert latency["front"] == front["customdata"] == [ids[name] for name in LATENCY_FRONT]
    assert front["name"] == "Pareto front"
    assert front["x"] == [RUNS[name][2] for name in LATENCY_FRONT]
    assert front["y"] == [RUNS[name][0] for name in LATENCY_FRONT]
    assert sorted(runs["customdata"]) == sorted(ids[name] for name in RUNS if name != "F")  # scored runs only
    by_id = dict(zip(runs["customdata"], runs["x"], strict=True))
    assert all(by_id[ids[name]] == RUNS[name][2] for name in RUNS if name != "F")  # x is the run's latency
    assert latency["layout"]["xaxis"]["title"]["text"] == "latency (ms)"
    assert "latency %{x:.0f} ms" in front["hovertemplate"]
    # The cost figure is as it was, with its own front.
    assert data["pareto"]["front"] == [ids[name] for name in COST_FRONT]
    assert data["pareto"]["layout"]["xaxis"]["title"]["text"] == "cost (USD)"


@pytest.mark.django_db
def test_the_page_has_the_charts_axis_toggle(user, experiment):
    ranking_sweep(experiment)
    page = logged_in(user).get(f"/experiments/{experiment.pk}/").content.decode()
    toggle = re.search(r'<div class="toggle" role="group" aria-label="Plot the score against">(.*?)</div>', page, re.S)
    assert toggle, "no toggle for the score chart's axis"
    buttons = re.findall(r'<button type="button"[^>]*data-pareto-axis="(\w+)" aria-pressed="(\w+)"[^>]*>(\w+)</button>',
                         toggle.group(1))  # fmt: skip
    assert buttons == [("cost", "true", "Cost"), ("latency", "false", "Latency")]
    assert 'id="pareto-title">Score against cost<' in page and 'id="pareto-note"' in page

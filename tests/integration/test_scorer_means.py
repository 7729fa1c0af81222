"""Each scorer's mean beside the weighted score: stored as a run closes, and shown by the API's
runs, run and leaderboard, the leaderboard and run pages, and the CLI's table."""

from __future__ import annotations

import json

import pytest

from sweeps.models import Run, Score
from sweeps.selectors.runs import compute_scorer_means
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import logged_in, spec, wait_for_sweep
from tests.integration.api_client import ApiClient
from tests.integration.test_cli import sweep_cli, table_rows, wide_terminal  # noqa: F401 - a fixture
from tests.pages import Table

pytestmark = pytest.mark.django_db(transaction=True)

SCORERS = [
    {"type": "icontains", "value": "{{ expected }}", "weight": 3},
    {"type": "max_length", "value": 14, "name": "short"},
]
GRID = {"type": "grid", "params": {"model": ["mock/echo", "mock/upper", "mock/error"]}}


@pytest.fixture
def sweep(user, mock_latency):
    data = spec(scorers=SCORERS, sweep=GRID, fail_fast=False)
    return wait_for_sweep(sweep_start(experiment=experiment_create(owner=user, data=data)))


def expected_means(run: Run) -> list[tuple[str, float]]:
    """Straight from the verdicts: each scorer's total over the run's samples, failed ones as 0."""
    samples = run.samples.count()
    scores = Score.objects.filter(sample__run=run)
    return [(name, sum(scores.filter(name=name).values_list("value", flat=True)) / samples)
            for name in ("icontains", "short")]  # fmt: skip


def test_a_closed_run_stores_its_scorer_means_the_parts_of_its_score(sweep):
    for run in Run.objects.filter(sweep=sweep):
        means = run.scorer_means
        if run.config["model"] != "mock/error":
            expected = expected_means(run)
            assert [m["name"] for m in means] == [name for name, _ in expected]
            assert [m["mean"] for m in means] == pytest.approx([mean for _, mean in expected])
        if means:
            weighted = (3 * means[0]["mean"] + means[1]["mean"]) / 4
            assert weighted == pytest.approx(run.score)  # the weighted score is made of them
        assert compute_scorer_means([run.pk])[run.pk] == means
    error_run = Run.objects.get(sweep=sweep, config__model="mock/error")
    assert error_run.scorer_means == [] and error_run.score == 0  # no scorer saw a failed sample


def test_the_api_gives_each_runs_scorer_means(user, sweep):
    api = ApiClient(user)
    runs = {r["id"]: r for r in api.get(f"/experiments/{sweep.experiment_id}/runs").json()["items"]}
    board = api.get(f"/experiments/{sweep.experiment_id}/leaderboard").json()["entries"]
    for run in Run.objects.filter(sweep=sweep):
        assert runs[run.pk]["scores"] == run.scorer_means
        assert api.get(f"/runs/{run.pk}").json()["scores"] == run.scorer_means
    assert [e["scores"] for e in board] == [runs[e["run_id"]]["scores"] for e in board]
    assert board[0]["scores"][0]["name"] == "icontains" and board[0]["scores"][0]["n"] == 3


def test_the_leaderboard_and_run_pages_show_a_column_per_scorer(user, sweep):
    client = logged_in(user)
    table = Table("leaderboard", client.get(f"/experiments/{sweep.experiment_id}/").content.decode())
    assert table.headers[3:5] == ["icontains", "short"]
    for row in table.rows:
        run = Run.objects.get(pk=row["attrs"]["data-run-id"])
        cells = [f"{mean:.3f}" for _, mean in expected_means(run)] if run.scorer_means else ["–", "–"]
        assert row["cells"][3:5] == cells

    run = Run.objects.get(sweep=sweep, config__model="mock/echo")
    page = client.get(f"/runs/{run.pk}/").content.decode()
    for name, mean in expected_means(run):
        assert f"{name} {mean:.3f}" in " ".join(page.split())


def test_the_cli_table_has_a_column_per_scorer(user, mock_latency, tmp_path, wide_terminal):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec(scorers=SCORERS, sweep=GRID, fail_fast=False)))

    status, output = sweep_cli(str(path), "--max-failed", "1")

    assert status == 0, output
    header = next(line for line in output.splitlines() if "score [95 %]" in line)
    assert [c.strip() for c in header.strip().strip("│┃").split("┃")][2:4] == ["icontains", "short"]
    rows = table_rows(output)
    assert len(rows) == 3
    for cells in rows:
        run = Run.objects.get(config__model=cells[4])
        shown = [f"{mean:.3f}" for _, mean in expected_means(run)] if run.scorer_means else ["–", "–"]
        assert cells[2:4] == shown

"""Python scorers for real: a team's module on a worker's path and allowed by its setting,
sweeps run by a real `rqworker` process, and specs refused through the API when they name a
function the deployment does not allow."""

from __future__ import annotations

import pytest

from sweeps.engine.scorers import python as python_scorers
from sweeps.models import Score
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import spec, wait_for_sweep
from tests.integration.api_client import ApiClient
from tests.integration.test_rq_workers import rq_redis, rqworkers, use_queue  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)

TEAM_MODULE = """
import time

def refuses_refunds(output, context):
    if "refund" in output:
        raise RuntimeError("refunds go to a human")
    return True

def slow_on_lost(output, context):
    if "lost" in output:
        time.sleep(5)
    return 1.0
"""


@pytest.fixture
def team_scorers(tmp_path, monkeypatch):
    """`teamscorers.checks` in a folder of its own, allowed here as the worker's setting allows it."""
    (tmp_path / "teamscorers").mkdir()
    (tmp_path / "teamscorers" / "__init__.py").write_text("")
    (tmp_path / "teamscorers" / "checks.py").write_text(TEAM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = python_scorers.allowed_modules()
    python_scorers.configure(("scorers", "teamscorers"))
    yield tmp_path
    python_scorers.configure(before)


SCORERS = [
    {"type": "python", "function": "scorers.examples:label_matches"},
    {"type": "python", "function": "teamscorers.checks:refuses_refunds", "name": "no_refunds"},
    {"type": "python", "function": "teamscorers.checks:slow_on_lost", "name": "slow", "timeout": 0.5},
]
DATASET = [
    {"ticket": "billing charged twice", "expected": "billing"},
    {"ticket": "refund my order", "expected": "refund"},
    {"ticket": "parcel lost in shipping", "expected": "shipping"},
]


def test_a_worker_process_scores_with_allowed_functions_and_survives_their_failures(
    user, team_scorers, rq_redis, settings, mock_latency
):
    use_queue(settings)
    data = spec(pipeline=[{"name": "label", "prompt": "Label: {{ ticket }}", "model": "mock/echo"}],
                dataset=DATASET, scorers=SCORERS)  # fmt: skip
    del data["sweep"]  # one configuration
    experiment = experiment_create(owner=user, data=data)
    worker_env = {"PYTHONPATH": str(team_scorers), "PROMPTLOOPER_SCORER_MODULES": "scorers,teamscorers"}
    with rqworkers(1, rq_redis, **worker_env) as [worker]:
        sweep = wait_for_sweep(sweep_start(experiment=experiment), timeout=60, until=("completed", "failed"))
        assert worker.poll() is None  # alive after an exception and a hang

    assert sweep.status == "completed" and sweep.completed == 3
    verdicts = {
        (score.sample.inputs["ticket"], score.name): (score.value, score.reason)
        for score in Score.objects.filter(sample__sweep=sweep).select_related("sample")
    }
    assert verdicts[("billing charged twice", "python")] == (1.0, "label 'billing' matches")
    assert verdicts[("parcel lost in shipping", "python")] == (0.0, "label 'parcel', expected 'shipping'")
    value, reason = verdicts[("refund my order", "no_refunds")]
    assert value == 0 and reason.startswith(
        "teamscorers.checks:refuses_refunds raised RuntimeError: refunds go to a human (checks.py:"
    )
    assert verdicts[("billing charged twice", "no_refunds")] == (1.0, "passed")
    assert verdicts[("parcel lost in shipping", "slow")] == (
        0.0,
        "teamscorers.checks:slow_on_lost timed out after 0.5 s",
    )
    assert verdicts[("refund my order", "slow")] == (1.0, "scored 1")


def test_the_api_refuses_a_function_outside_the_allowed_modules_and_saves_nothing(user, mock_latency):
    api = ApiClient(user)
    for function, message in [
        ("os:system", "module 'os' is not allowed for scorers (PROMPTLOOPER_SCORER_MODULES: scorers)"),
        ("scorers.examples:nope", "module 'scorers.examples' has no function 'nope'"),
    ]:
        response = api.post("/experiments", spec(scorers=[{"type": "python", "function": function}]))
        assert response.status_code == 422
        assert ("scorers[0].function", message) in [(d["field"], d["msg"]) for d in response.json()["detail"]]
    assert api.get("/experiments").json()["count"] == 0

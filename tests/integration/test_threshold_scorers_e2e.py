"""latency and cost scorers on a real sweep: the executor hands them what each sample's
stages took, as the mock provider measured and priced it."""

from __future__ import annotations

import pytest

from sweeps.models import Score
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import spec, wait_for_sweep

pytestmark = pytest.mark.django_db(transaction=True)


def test_latency_and_cost_scorers_judge_what_the_samples_stages_took(user, mock_latency):
    mock_latency(40)  # each of the two stages takes about 40 ms
    data = spec(scorers=[
        {"type": "latency", "threshold": 30, "name": "fast"},
        {"type": "latency", "threshold": 60_000, "name": "patient"},
        {"type": "cost", "threshold": 0, "name": "free"},
        {"type": "cost", "threshold": 1, "name": "cheap"},
    ])  # fmt: skip
    del data["sweep"]
    sweep = wait_for_sweep(sweep_start(experiment=experiment_create(owner=user, data=data)))

    assert sweep.status == "completed" and sweep.completed == 3
    scores = Score.objects.filter(sample__sweep=sweep).select_related("sample")
    for score in scores:
        stages = score.sample.stages
        latency, cost = sum(s["latency_ms"] for s in stages), sum(s["cost_usd"] for s in stages)
        assert latency >= 80 and cost > 0  # what the verdicts below are about
        expected = {"fast": False, "patient": True, "free": False, "cheap": True}[score.name]
        assert score.passed is expected, (score.name, score.reason)
        if score.name == "fast":
            assert score.reason == f"{latency:,.0f} ms, over 30 ms"
        if score.name == "cheap":
            assert score.reason == f"${cost:.6g}, within $1"
    assert len(scores) == 12

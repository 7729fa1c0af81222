"""Migration 0014 gives runs closed before it each scorer's mean, by the rule runs closing now
follow (a failed sample counts 0); open runs are left to be computed live."""

from __future__ import annotations

import pytest

from sweeps.models import Run
from sweeps.selectors.runs import compute_scorer_means
from tests.integration.test_spec_migration import migrate

BEFORE = [("sweeps", "0013_experiment_one_stored_spec")]


@pytest.mark.django_db(transaction=True)
def test_closed_runs_get_their_scorer_means_as_closing_runs_do(user):
    from django.utils import timezone

    apps = migrate(BEFORE)
    models = {name: apps.get_model("sweeps", name) for name in ("Experiment", "Sweep", "Run", "RunSample", "Score")}
    experiment = models["Experiment"].objects.create(owner_id=user.pk, name="old", spec={"name": "old"})
    sweep = models["Sweep"].objects.create(experiment=experiment, spec={}, status="completed")
    closed, running = (
        models["Run"].objects.create(experiment=experiment, sweep=sweep, config={}, config_hash=h, finished_at=at)
        for h, at in (("a", timezone.now()), ("b", None))
    )
    for run in (closed, running):
        for row, (status, values) in enumerate([("completed", (1.0, 0.5)), ("completed", (0.0, 1.0)), ("failed", ())]):
            sample = models["RunSample"].objects.create(run=run, sweep=sweep, row_index=row, status=status)
            for index, value in enumerate(values):
                models["Score"].objects.create(sample=sample, scorer_index=index, name=f"s{index}", value=value,
                                               passed=value > 0.5)  # fmt: skip

    migrate()

    expected = [{"name": "s0", "mean": pytest.approx(1 / 3), "n": 3}, {"name": "s1", "mean": 0.5, "n": 3}]
    assert Run.objects.get(pk=closed.pk).scorer_means == expected  # the failed row counts 0
    assert Run.objects.get(pk=running.pk).scorer_means == []  # computed live while it runs
    assert compute_scorer_means([closed.pk])[closed.pk] == expected  # the rule closing runs follow

"""Migration 0013 folds the nine columns that mirrored the spec into Experiment.spec, and back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sweeps.engine.spec import parse_spec

BEFORE = [("sweeps", "0012_providers_truncated_and_rate_limited")]
AFTER = [("sweeps", "0013_experiment_one_stored_spec")]

COLUMNS = {
    "name": "Triage",
    "description": "route tickets",
    "pipeline": [
        {"name": "answer", "prompt": "Route: {{ ticket }}", "system": None, "model": "mock/echo", "params": {}}
    ],
    "dataset": [{"ticket": "refund please", "expected": "billing"}],
    "scorers": [{"type": "icontains", "value": "{{ expected }}"}],
    "parameter_space": {"type": "grid", "params": {"params.temperature": [0, 1]}},
    "repeats": 2,
    "max_concurrency": 3,
    "max_tokens": 5000,
    "max_cost_usd": None,
    "fail_fast": False,
}


def migrate(targets=None):
    """Migrate to `targets`, by default the latest migrations; returns the models of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_experiments_keep_their_spec_through_the_migration_and_back(user):
    old_apps = migrate(BEFORE)
    old = old_apps.get_model("sweeps", "Experiment").objects.create(owner_id=user.pk, **COLUMNS)

    new_apps = migrate(AFTER)
    spec = new_apps.get_model("sweeps", "Experiment").objects.get(pk=old.pk).spec

    assert spec["sweep"] == COLUMNS["parameter_space"]
    assert spec["budget"] == {"max_tokens": 5000, "max_cost_usd": None}
    assert (spec["repeats"], spec["max_concurrency"], spec["fail_fast"]) == (2, 3, False)
    assert spec["pipeline"] == COLUMNS["pipeline"] and spec["dataset"] == COLUMNS["dataset"]
    parsed = parse_spec(spec)  # still a spec the engine reads, with what was stored
    assert (parsed.name, parsed.repeats, parsed.budget.max_tokens) == ("Triage", 2, 5000)

    migrate(BEFORE)
    back = old_apps.get_model("sweeps", "Experiment").objects.get(pk=old.pk)
    assert {column: getattr(back, column) for column in COLUMNS} == COLUMNS
    migrate()  # the rest of the suite runs on the current schema

"""Migration 0021 gives every existing experiment version 1: its stored spec written out as YAML,
by its owner, dated from its last save; sweeps from before keep no version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from tests.conftest import spec
from tests.integration.test_spec_migration import migrate

BEFORE = [("sweeps", "0020_share_links")]
AFTER = [("sweeps", "0021_spec_versions")]


@pytest.mark.django_db(transaction=True)
def test_existing_experiments_get_version_one_from_their_stored_spec(user):
    old_apps = migrate(BEFORE)
    Experiment = old_apps.get_model("sweeps", "Experiment")
    saved_at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    made = [Experiment.objects.create(owner_id=user.pk, spec=spec(name=f"old {i}"), name=f"old {i}", source="cli")
            for i in range(3)]  # fmt: skip
    Experiment.objects.filter(pk=made[0].pk).update(updated_at=saved_at)
    sweep = old_apps.get_model("sweeps", "Sweep").objects.create(experiment_id=made[0].pk, spec=made[0].spec)

    new_apps = migrate(AFTER)
    versions = new_apps.get_model("sweeps", "SpecVersion").objects.order_by("experiment_id")
    assert [(v.experiment_id, v.number, v.author_id, v.via) for v in versions] == [
        (e.pk, 1, user.pk, "cli") for e in made
    ]
    first = versions.first()
    assert yaml.safe_load(first.text) == first.spec == spec(name="old 0") and first.created_at == saved_at
    assert new_apps.get_model("sweeps", "Sweep").objects.get(pk=sweep.pk).spec_version_id is None
    migrate()  # the rest of the suite runs on the current schema

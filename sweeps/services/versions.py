"""Spec versions: each change of an experiment's spec kept with its author, its time, how it came
(web, api, cli, admin) and the text as it was typed. The one place a version is recorded."""

from __future__ import annotations

from typing import Any

from sweeps.engine.errors import SpecError
from sweeps.engine.spec import ExperimentSpec, dump_spec_text, parse_spec
from sweeps.models import Experiment, SpecVersion
from sweeps.selectors.versions import version_latest


def normal_form(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored spec as the engine writes it today, so that a key added since (with its default)
    is not taken for an edit."""
    try:
        return parse_spec(spec).to_dict()
    except SpecError:  # a rule added since: compare as stored
        return spec


def version_record(
    *, experiment: Experiment, spec: ExperimentSpec, text: str | None, author: Any, via: str
) -> SpecVersion | None:
    """A new version when `spec` differs from the latest one's normal form, else None (a resave
    that changes only comments or layout is not a new version). `text` is the spec as submitted;
    None when there is no text to keep (then the normal form is written out as YAML). Called by
    services.experiments.experiment_save inside its transaction, after the experiment row is
    locked or created, so two numbers never collide."""
    data = spec.to_dict()
    latest = version_latest(experiment)
    if latest is not None and normal_form(latest.spec) == data:
        return None
    return SpecVersion.objects.create(
        experiment=experiment,
        number=(latest.number + 1) if latest else 1,
        text=text if text is not None else dump_spec_text(data),
        spec=data,
        author=author if getattr(author, "is_authenticated", False) else None,
        via=via,
    )

"""Experiments: a spec validated (every bad field named) and saved, edited within what a paused
sweep allows, copied and deleted."""

from __future__ import annotations

import re
from typing import Any, cast

from django.conf import settings
from django.db import transaction

from sweeps.engine.datasets import Dataset
from sweeps.engine.errors import SpecError
from sweeps.engine.spec import ExperimentSpec, SpecLimits, parse_spec
from sweeps.models import Experiment, Provider, Sweep
from sweeps.services import ServiceError
from sweeps.services.versions import normal_form, version_record

# Fields that may change while a sweep is paused: raising the budget is how one resumes a
# sweep that ran out of it. Anything else would change what the paused runs mean.
EDITABLE_WHILE_PAUSED = {"name", "description", "budget", "max_concurrency", "fail_fast"}


def known_providers() -> list[str]:
    """Providers a spec may name: those a sweep could call right now."""
    return [name for name, unavailable in provider_availability().items() if not unavailable]


def provider_availability() -> dict[str, str]:
    """Every provider: "" when sweeps can call it now, else what to do about it."""
    return {p.name: p.availability()[1] for p in Provider.objects.all()}


def spec_limits() -> SpecLimits:
    """How much work one sweep may be, from settings (README, Configuration)."""
    return SpecLimits(
        max_grid=settings.PROMPTLOOPER_MAX_GRID,
        max_trials=settings.PROMPTLOOPER_MAX_TRIALS,
        max_repeats=settings.PROMPTLOOPER_MAX_REPEATS,
        max_samples=settings.PROMPTLOOPER_MAX_SAMPLES,
    )


def validate_spec(data: Any) -> ExperimentSpec:
    return parse_spec(data, limits=spec_limits(), known_providers=provider_availability())


@transaction.atomic
def experiment_save(
    experiment: Experiment, spec: ExperimentSpec, *, text: str | None = None, author: Any = None, via: str = ""
) -> None:
    """The one write of an experiment's spec: its normal form, the columns lists read, and a new
    version when it changed (`text`: the spec as submitted, kept with the version)."""
    experiment.spec = spec.to_dict()
    experiment.name, experiment.description = spec.name, spec.description
    experiment.save()
    version_record(experiment=experiment, spec=spec, text=text, author=author or experiment.owner, via=via)


def experiment_create(
    *, owner: Any, data: Any, source: str = Experiment.Source.WEB, text: str | None = None
) -> Experiment:
    """Validate the spec (SpecError names every bad field) and save it; nothing is saved on error.
    `source`: where it is created (web, api, cli, admin), which lists show. `text`: the spec as
    typed, kept as version 1 (None: written out from the normal form)."""
    experiment = Experiment(owner=owner, source=source)
    experiment_save(experiment, validate_spec(data), text=text, author=owner, via=source)
    return experiment


def stored_normal_form(experiment: Experiment) -> dict[str, Any]:
    """The experiment's stored spec as the engine would write it today, so that comparing it with
    an edit sees only what the user changed (a row saved before a key existed lacks its default)."""
    return normal_form(Experiment.objects.only("spec").get(pk=experiment.pk).spec)


def experiment_check_editable(*, experiment: Experiment, spec: ExperimentSpec) -> None:
    """Refuse edits that would change what a sweep in progress means (ServiceError says which)."""
    active = experiment.sweeps.filter(status__in=Sweep.ACTIVE).first()
    if active:
        raise ServiceError(f"Experiment {experiment.pk} has a {active.status} sweep: pause or stop it before editing.")
    if experiment.sweeps.filter(status=Sweep.Status.PAUSED).exists():
        stored = stored_normal_form(experiment)
        after = spec.to_dict()
        changed = {k for k in after if after[k] != stored.get(k)} - EDITABLE_WHILE_PAUSED
        if changed:
            raise ServiceError(
                f"Experiment {experiment.pk} has a paused sweep, so only {', '.join(sorted(EDITABLE_WHILE_PAUSED))} "
                f"may change; stop the sweep to edit {', '.join(sorted(changed))}."
            )


@transaction.atomic
def experiment_update(
    *, experiment: Experiment, data: Any, text: str | None = None, author: Any = None, via: str = ""
) -> Experiment:
    """Validate and save an edit; a new version (by `author`, through `via`, typed as `text`)
    when the spec's normal form changed."""
    Experiment.objects.select_for_update().get(pk=experiment.pk)  # one editor at a time
    spec = validate_spec(without_stale_sources(experiment.spec, data))
    experiment_check_editable(experiment=experiment, spec=spec)
    experiment_save(experiment, spec, text=text, author=author, via=via)
    return experiment


def experiment_named(
    *, owner: Any, name: str, data: Any, source: str = Experiment.Source.CLI, text: str | None = None
) -> Experiment:
    """The owner's experiment called `name` (the latest, if several) with `data` as its new spec,
    or a new one: what CI runs of the same suite add their sweeps to."""
    data = {**data, "name": name} if isinstance(data, dict) else data
    found = Experiment.objects.filter(owner=owner, name=name).order_by("-created_at", "-pk").first()
    if found is None:
        return experiment_create(owner=owner, data=data, source=source, text=text)
    return experiment_update(experiment=found, data=data, text=text, author=owner, via=source)


def without_stale_sources(stored: dict[str, Any], data: Any) -> Any:
    """`data` without the `sources` records of sections it edits by hand: a file's SHA-256 no
    longer says what a typed-over dataset or prompt holds. (A caller that sends new records, as
    PUT .../dataset does, keeps its own.)"""
    if not isinstance(data, dict) or data.get("sources") != stored.get("sources") or not stored.get("sources"):
        return data
    kept = {path: source for path, source in stored["sources"].items()
            if data.get(section := re.split(r"[.\[]", path)[0]) == stored.get(section)}  # fmt: skip
    return {key: value for key, value in data.items() if key != "sources"} | ({"sources": kept} if kept else {})


def experiment_set_dataset(
    *, experiment: Experiment, dataset: Dataset, source: str, author: Any = None, via: str = Experiment.Source.API
) -> Experiment:
    """Replace the experiment's rows, recording where they came from and their SHA-256 in the
    spec's `sources`; validated and refused as any edit is."""
    sources = {**experiment.spec.get("sources", {}),
               "dataset": {"file": source, "sha256": dataset.sha256, "rows": len(dataset.rows)}}  # fmt: skip
    return experiment_update(
        experiment=experiment, data={**experiment.spec, "dataset": dataset.rows, "sources": sources},
        author=author, via=via,
    )  # fmt: skip


@transaction.atomic
def experiment_delete(*, experiment: Experiment) -> None:
    if experiment.sweeps.filter(status__in=Sweep.ACTIVE).exists():
        raise ServiceError(f"Experiment {experiment.pk} is running: stop its sweep before deleting it.")
    experiment.delete()


def experiment_duplicate(*, experiment: Experiment) -> Experiment:
    """A new draft with the same spec, named "<name> (copy)"; sweeps and results stay with the original.
    Validated like any new experiment: a copy that names a provider disabled since is refused."""
    data = dict(experiment.spec)
    name_max = cast(int, Experiment._meta.get_field("name").max_length)  # set on every CharField
    data["name"] = experiment.name[: name_max - len(" (copy)")] + " (copy)"
    try:
        return experiment_create(owner=experiment.owner, data=data, source=experiment.source or Experiment.Source.WEB)
    except SpecError as e:
        raise ServiceError(f"Experiment {experiment.pk} cannot be copied: {'; '.join(map(str, e.errors))}") from e

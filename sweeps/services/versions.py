"""Spec versions: each change of an experiment's spec kept with its author, its time, how it came
(web, api, cli, admin) and the text as it was typed. The one place a version is recorded."""

from __future__ import annotations

import json
from typing import Any

from sweeps.engine.errors import SpecError
from sweeps.engine.spec import ExperimentSpec, dump_spec_text, load_spec_text, parse_spec
from sweeps.models import Experiment, SpecVersion
from sweeps.selectors.versions import EDITABLE_CHARS, version_latest, without_entries

KEPT_KEYS = ("dataset", "sources")  # what a text without its dataset takes from the saved spec


def normal_form(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored spec as the engine writes it today, so that a key added since (with its default)
    is not taken for an edit."""
    try:
        return parse_spec(spec).to_dict()
    except SpecError:  # a rule added since: compare as stored
        return spec


def with_kept_dataset(data: Any, saved: dict[str, Any]) -> Any:
    """A spec typed without its dataset, given the saved spec's dataset (and its `sources`)."""
    if not isinstance(data, dict) or "dataset" in data:
        return data
    return {**data, **{key: saved[key] for key in KEPT_KEYS if key in saved and key not in data}}


def edited_text(latest: SpecVersion, data: dict[str, Any]) -> str | None:
    """The latest version's text with what `data` changed rewritten, so that an edit sent as data
    (an API PATCH, a new dataset) keeps the comments and layout of the rest: the changed top-level
    entries are cut out and written anew at its end, but for rows the text kept out, which stay
    out. None when the result would not say `data` (a JSON text, a `{file: ...}` reference), or
    when the text or what changed is long."""
    if len(latest.text) > EDITABLE_CHARS:
        return None
    try:
        typed = load_spec_text(latest.text)
    except SpecError:
        return None
    before = normal_form(latest.spec)
    changed = [key for key in dict.fromkeys([*before, *data]) if before.get(key) != data.get(key)]
    rows_kept_out = isinstance(typed, dict) and "dataset" not in typed
    rewritten = {key: data[key] for key in changed if key in data and not (rows_kept_out and key in KEPT_KEYS)}
    if len(json.dumps(rewritten, default=str)) > EDITABLE_CHARS:
        return None
    kept = without_entries(latest.text, changed)
    if kept is None:
        return None
    text = (kept.rstrip("\n") + "\n" if kept.strip() else "") + (dump_spec_text(rewritten) if rewritten else "")
    try:
        said = with_kept_dataset(load_spec_text(text), data)
    except SpecError:
        return None
    return text if isinstance(said, dict) and normal_form(said) == data else None


def version_record(
    *, experiment: Experiment, spec: ExperimentSpec, text: str | None, author: Any, via: str
) -> SpecVersion | None:
    """A new version when `spec` differs from the latest one's normal form, else None (a resave
    that changes only comments or layout is not a new version: its text replaces the latest's). `text` is the spec as submitted;
    None when it came as data: then the latest text with the changes rewritten (edited_text), or
    else the normal form written out as YAML. Called by
    services.experiments.experiment_save inside its transaction, after the experiment row is
    locked or created, so two numbers never collide."""
    data = spec.to_dict()
    latest = version_latest(experiment)
    if latest is not None and (latest.spec == data or normal_form(latest.spec) == data):
        if text is not None and text != latest.text:  # comments or layout edited: the editor shows them
            latest.text = text
            latest.save(update_fields=["text"])
        return None
    return SpecVersion.objects.create(
        experiment=experiment,
        number=(latest.number + 1) if latest else 1,
        text=text if text is not None else (latest and edited_text(latest, data)) or dump_spec_text(data),
        spec=data,
        author=author if getattr(author, "is_authenticated", False) else None,
        via=via,
    )

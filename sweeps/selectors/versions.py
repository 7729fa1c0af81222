"""Reads of spec versions: an experiment's list, one by number, and its diff against the one before."""

from __future__ import annotations

import difflib
from collections.abc import Collection

import yaml
from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from sweeps.models import Experiment, SpecVersion, Sweep

# Texts are parsed on requests (diffs, the editor, edits sent as data) only up to this size:
# pure-Python YAML reads about 200 KB a second. Past it they are written out or shown whole.
EDITABLE_CHARS = 64 * 1024


def version_list(experiment: Experiment) -> QuerySet[SpecVersion]:
    """Newest first, with their authors and the ids of the sweeps that ran each, without texts."""
    ran = Prefetch("sweeps", queryset=Sweep.objects.only("pk", "spec_version_id", "status").order_by("pk"))
    return experiment.versions.defer("text", "spec").select_related("author").prefetch_related(ran).order_by("-number")


def version_latest(experiment: Experiment) -> SpecVersion | None:
    return experiment.versions.order_by("-number").first()


def version_latest_id(experiment: Experiment) -> int | None:
    """The latest version's id alone (a sweep names it): its text and spec are not read."""
    return experiment.versions.order_by("-number").values_list("pk", flat=True).first()


def version_number(sweep: Sweep) -> int | None:
    """The number of the version the sweep ran: from the row when the query brought it along
    (select_related), else one small query."""
    if sweep.spec_version_id is None:
        return None
    if Sweep.spec_version.is_cached(sweep):
        return sweep.spec_version.number if sweep.spec_version else None
    return SpecVersion.objects.filter(pk=sweep.spec_version_id).values_list("number", flat=True).first()


def version_get(experiment: Experiment, number: int) -> SpecVersion:
    """The experiment's version `number` (404 when it has none such)."""
    return get_object_or_404(SpecVersion.objects.select_related("author"), experiment=experiment, number=number)


def version_previous(version: SpecVersion) -> SpecVersion | None:
    return (
        SpecVersion.objects.filter(experiment_id=version.experiment_id, number__lt=version.number)
        .order_by("-number")
        .first()
    )


def version_diff(version: SpecVersion, previous: SpecVersion | None) -> list[str]:
    """A unified diff of the texts, previous to this one (every line added for the first). When
    the rows did not change, the dataset is left out of both: a text saved without its rows (the
    editor keeps a large dataset out of it) has not removed them."""
    before, after = (previous.text if previous else ""), version.text
    if previous and previous.spec.get("dataset") == version.spec.get("dataset"):
        stripped = without_dataset(before), without_dataset(after)
        if None not in stripped:
            before, after = stripped  # type: ignore[assignment]  # neither is None
    return list(
        difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=f"version {previous.number}" if previous else "(none)",
            tofile=f"version {version.number}",
            lineterm="",
        )
    )


def without_dataset(text: str) -> str | None:
    """`text` without its top-level `dataset` entry (see without_entries)."""
    return without_entries(text, {"dataset"})


def without_entries(text: str, keys: Collection[str]) -> str | None:
    """`text` without its top-level entries named in `keys`, other lines untouched; None when
    the text is not a block mapping whose entries take whole lines (JSON, say), or is longer
    than EDITABLE_CHARS."""
    if len(text) > EDITABLE_CHARS:
        return None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        return None
    lines = text.splitlines(keepends=True)
    dropped: set[int] = set()
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value in keys:
            if key.start_mark.column != 0:
                return None
            end = value.end_mark.line + (1 if value.end_mark.column else 0)
            dropped.update(range(key.start_mark.line, end))
    return "".join(line for number, line in enumerate(lines) if number not in dropped)

"""What the editor shows of a saved spec: the latest version's text as its author typed it
(comments and layout kept), and for a large dataset a summary in place of its rows, which the
save then keeps (a textarea of a thousand rows is neither readable nor safely editable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from sweeps.engine.datasets import dataset_columns
from sweeps.engine.errors import SpecError
from sweeps.engine.spec import dump_spec_text, load_spec_text
from sweeps.models import SpecVersion
from sweeps.selectors.versions import EDITABLE_CHARS, without_dataset
from sweeps.services.versions import normal_form, with_kept_dataset

# Past either bound the dataset is summarised rather than inlined in the editor
LARGE_DATASET_ROWS = 20
LARGE_DATASET_BYTES = 8 * 1024


@dataclass
class DatasetSummary:
    rows: int
    columns: list[str]


def large_dataset(spec: dict[str, Any]) -> DatasetSummary | None:
    rows = spec.get("dataset") or []
    if len(rows) <= LARGE_DATASET_ROWS and len(yaml.safe_dump(rows, allow_unicode=True)) <= LARGE_DATASET_BYTES:
        return None
    return DatasetSummary(rows=len(rows), columns=dataset_columns(rows))


def says_the_same(text: str, spec: dict[str, Any]) -> bool:
    """Whether `text` (a dataset left out taken from `spec`) is `spec` in another layout: a text
    naming `{file: ...}`, or typed before a rule changed, is not, and is shown written out; so is
    a text too long to parse on a request."""
    if len(text) > EDITABLE_CHARS:
        return False
    try:
        data = with_kept_dataset(load_spec_text(text), spec)
        return isinstance(data, dict) and normal_form(data) == normal_form(spec)
    except SpecError:
        return False


def editor_text(version: SpecVersion) -> tuple[str, DatasetSummary | None]:
    """The text to edit, and the summary of a dataset left out of it."""
    spec = version.spec
    text = version.text if says_the_same(version.text, spec) else dump_spec_text(spec)
    summary = large_dataset(spec)
    if summary is None:
        return text, None
    stripped = without_dataset(text)
    if stripped is None or not says_the_same(stripped, spec):
        stripped = dump_spec_text({key: value for key, value in spec.items() if key != "dataset"})
    return stripped, summary

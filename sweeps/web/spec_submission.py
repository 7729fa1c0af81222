"""What the spec editor posts: the spec text as typed, and a dataset file whose rows replace the
spec's dataset. Nothing is lost on an error: the text goes back as it was, and rows read from a
file travel in a hidden field, since browsers forget a chosen file when the page comes back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.conf import settings

from sweeps.engine.datasets import DatasetError, read_dataset
from sweeps.engine.errors import FieldError, SpecError
from sweeps.engine.spec import load_spec_text
from sweeps.services.versions import with_kept_dataset

DATASET_TYPES = ".csv,.jsonl,.json"


@dataclass
class SpecSubmission:
    text: str
    rows: list[dict] | None = None  # replace the spec's dataset when set
    rows_source: str = ""  # the file they came from, to show on the page
    errors: list[FieldError] = field(default_factory=list)  # about the dataset file
    kept_from: dict | None = None  # the saved spec, whose dataset a text without one keeps

    @classmethod
    def from_request(
        cls, post: Mapping[str, Any], files: Mapping[str, Any], saved: dict | None = None
    ) -> SpecSubmission:
        """`saved`: the experiment's spec, when the page showed its dataset as a summary."""
        submission = cls(post.get("spec", ""), kept_from=saved if post.get("dataset_kept") else None)
        if post.get("dataset_rows") and not post.get("dataset_clear"):
            try:
                submission.rows, submission.rows_source = kept_rows(post["dataset_rows"]), post.get("dataset_name", "")
            except DatasetError as e:
                submission.errors.append(FieldError("dataset", f"{e}: choose the file again"))
        if (upload := files.get("dataset")) is not None:  # a new file replaces kept rows, unless it is bad
            try:
                submission.rows, submission.rows_source = read_dataset_upload(upload), upload.name
            except DatasetError as e:
                submission.errors.append(FieldError("dataset", f"{upload.name}: {e}"))
        return submission

    @property
    def dataset_from_file(self) -> bool:
        """Errors about the dataset are then about the file, not about the text."""
        return self.rows is not None or bool(self.errors)

    @property
    def rows_json(self) -> str:
        return json.dumps(self.rows, ensure_ascii=False) if self.rows is not None else ""

    def spec_data(self) -> Any:
        """The spec as data, the file's rows in place of its dataset. SpecError lists what is wrong."""
        if self.errors:
            # The spec is not validated against a dataset that failed to load: its complaints
            # about unknown columns would mislead. Its syntax errors are still worth knowing.
            try:
                load_spec_text(self.text)
            except SpecError as e:
                raise SpecError([*self.errors, *e.errors]) from e
            raise SpecError(self.errors)
        data = load_spec_text(self.text)
        if self.rows is not None and isinstance(data, dict):
            data = {**data, "dataset": self.rows}
        elif self.kept_from is not None:
            data = with_kept_dataset(data, self.kept_from)
        return data


# --- dataset files ----------------------------------------------------------------------


def read_dataset_upload(upload: Any) -> list[dict]:
    limit = settings.PROMPTLOOPER_MAX_BODY_BYTES
    if upload.size > limit:
        raise DatasetError(f"the file is {upload.size:,} bytes, more than the limit of {limit:,}")
    return read_dataset(upload.name, upload.read()).rows


def kept_rows(raw: str) -> list[dict]:
    """Rows a previous submission read from a file, sent back by the page."""
    try:
        rows = json.loads(raw)
    except json.JSONDecodeError:
        rows = None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise DatasetError("the rows kept from the file were damaged")
    return rows


# --- where an error is in the text ------------------------------------------------------


def error_lines(text: str, errors: list[FieldError], *, dataset_from_file: bool) -> list[tuple[FieldError, int | None]]:
    """Each error with the line of the spec text its path points at (None when unknown), so a
    long spec can be fixed without hunting for `pipeline[1].prompt`."""
    root = compose(text)
    located = []
    for error in errors:
        line = None
        if not error.path:
            match = re.search(r"at line (\d+)", error.message)  # a YAML syntax error says where
            line = int(match.group(1)) if match else None
        elif root is not None and not (dataset_from_file and error.path.startswith("dataset")):
            line = node_line(root, error.path)
        located.append((error, line))
    return located


def compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def node_line(node: yaml.Node, path: str) -> int:
    """The line of the deepest node the path reaches. Keys may hold dots
    (`sweep.params.params.temperature`), so each step matches a whole key of the mapping."""
    line = node.start_mark.line + 1
    rest = path
    while rest:
        if isinstance(node, yaml.SequenceNode) and (match := re.match(r"\[(\d+)\]\.?", rest)):
            index = int(match.group(1))
            if index >= len(node.value):
                break
            node, rest = node.value[index], rest[match.end() :]
            line = node.start_mark.line + 1
            continue
        if isinstance(node, yaml.MappingNode):
            step = matching_key(node, rest)
            if step is not None:
                key_node, node = step
                rest = rest[len(key_node.value) :].removeprefix(".")
                line = key_node.start_mark.line + 1
                continue
        break
    return line


def matching_key(node: yaml.MappingNode, rest: str) -> tuple[yaml.Node, yaml.Node] | None:
    keys = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    keys.sort(key=lambda kv: -len(kv[0].value))  # the longest key first: "params.top_p" before "params"
    for key_node, value_node in keys:
        key = key_node.value
        if rest == key or rest.startswith((key + ".", key + "[")):
            return key_node, value_node
    return None

"""Files a spec points at: `dataset: {file: data/tickets.csv}` is that file's rows, and any other
`{file: prompts/route.txt}` (a prompt, a system prompt, a choice of a swept prompt, a rubric) is
that file's text. `manage.py sweep` resolves them relative to the spec file before the spec is
validated; what was read is recorded under the spec's `sources` with each file's SHA-256, so the
stored experiment says which version of each file it ran. The server never reads a path a
request names: the API takes rows through PUT .../dataset instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweeps.engine.datasets import DatasetError, read_dataset
from sweeps.engine.errors import FieldError, SpecError

HINT = (
    "a file is read by `manage.py sweep`, relative to the spec file; through the API or the editor, "
    "send the rows or the text itself (rows also by PUT /api/v1/experiments/{id}/dataset or the editor's upload)"
)
SOURCE_KEYS = ("file", "sha256", "rows")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_file_reference(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"file"}


def resolve_files(data: Any, folder: Path, *, max_bytes: int) -> Any:
    """`data` with every file reference replaced by what the file holds, and `sources` naming
    them; SpecError lists every file that could not be read, by the field that names it."""
    if not isinstance(data, dict):
        return data
    errors: list[FieldError] = []
    sources: dict[str, dict[str, Any]] = {}

    def read(path: str, reference: Mapping[str, Any]) -> bytes | None:
        name = reference["file"]
        if not isinstance(name, str) or not name.strip():
            errors.append(FieldError(f"{path}.file", f"must be a file path, got {name!r}"))
            return None
        target = folder / name
        try:
            size = target.stat().st_size
            if size > max_bytes:
                errors.append(FieldError(f"{path}.file", f"{name}: {size:,} bytes, more than the limit of "
                                                         f"{max_bytes:,} (PROMPTLOOPER_MAX_BODY_BYTES)"))  # fmt: skip
                return None
            content = target.read_bytes()
        except FileNotFoundError:
            errors.append(FieldError(f"{path}.file", f"{name}: no such file (looked in {folder})"))
            return None
        except OSError as e:
            errors.append(FieldError(f"{path}.file", f"{name}: cannot be read ({e.strerror or e})"))
            return None
        sources[path] = {"file": name, "sha256": hashlib.sha256(content).hexdigest()}
        return content

    def text_of(value: Any, path: str) -> Any:
        if is_file_reference(value):
            content = read(path, value)
            if content is None:
                return value
            try:
                return content.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                line = content[: e.start].count(b"\n") + 1
                errors.append(FieldError(f"{path}.file", f"{value['file']}: line {line}: not UTF-8 text"))
                return value
        if isinstance(value, dict):
            return {key: text_of(item, f"{path}.{key}" if path else str(key)) for key, item in value.items()}
        if isinstance(value, list):
            return [text_of(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value

    resolved = {key: text_of(value, key) if key in ("pipeline", "sweep", "scorers") else value
                for key, value in data.items()}  # fmt: skip
    dataset = data.get("dataset")
    if isinstance(dataset, Mapping) and is_file_reference(dataset):
        content = read("dataset", dataset)
        if content is not None:
            try:
                rows = read_dataset(dataset["file"], content)
            except DatasetError as e:
                errors.append(FieldError("dataset.file", f"{dataset['file']}: {e}"))
            else:
                resolved["dataset"] = rows.rows
                sources["dataset"]["rows"] = len(rows.rows)
    if errors:
        raise SpecError(errors)
    if sources:
        resolved["sources"] = sources
    return resolved


def parse_sources(raw: Any, errors: list[FieldError]) -> dict[str, dict[str, Any]]:
    """The `sources` a spec records: {field path: {file, sha256[, rows]}}."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors.append(FieldError("sources", "must be an object: {field: {file, sha256}}"))
        return {}
    sources = {}
    for path, source in raw.items():
        where = f"sources.{path}"
        if not isinstance(source, Mapping) or set(source) - set(SOURCE_KEYS) or "file" not in source:
            errors.append(FieldError(where, "must be {file, sha256} (and rows, for the dataset)"))
        elif not isinstance(source["file"], str) or not _SHA256.match(str(source.get("sha256", ""))):
            errors.append(FieldError(where, "needs the file's name and its sha256 as 64 hex digits"))
        else:
            sources[str(path)] = dict(source)
    return sources


def reference_problem(value: Any) -> str | None:
    """What to say of a file reference found where the server expects the text or the rows."""
    return f"{{file: {value['file']!r}}}: {HINT}" if is_file_reference(value) else None

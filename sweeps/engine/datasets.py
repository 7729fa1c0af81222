"""Datasets from files: CSV with a header row, JSON Lines (one object per line), or one JSON
array of objects. Read line by line where the format allows it, so a request body or a file is
checked as it arrives and an error names its line: a missing value, a duplicate column, text
that is not UTF-8, a line that is not JSON.

The editor's upload, the API's PUT .../dataset and the CLI's `dataset: {file: ...}` all read
through here. (Parquet is not read: pyarrow is not among our dependencies.)
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

FORMATS = ("csv", "jsonl", "json")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


class DatasetError(ValueError):
    """Rows that cannot be read; the message names the line."""


@dataclass(frozen=True)
class Dataset:
    rows: list[dict]
    sha256: str  # of the bytes read: a changed file is a new dataset
    columns: list[str]  # in order of first appearance


def format_of(name: str, first_bytes: bytes = b"") -> str:
    """The format a file name (or content type) says; by the first character when it says none."""
    lowered = name.lower().split(";")[0].strip()
    for suffix, kind in SUFFIXES.items():
        if lowered.endswith(suffix):
            return kind
    if lowered in ("text/csv", "application/csv"):
        return "csv"
    if lowered in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines"):
        return "jsonl"
    if lowered == "application/json":
        return "json"
    start = first_bytes.lstrip()[:1]
    return "json" if start == b"[" else "jsonl" if start == b"{" else "csv"


def read_dataset(name: str, content: bytes) -> Dataset:
    """Rows from a whole file's bytes (the format from its name, or its first character)."""
    return read_lines(format_of(name, content[:64]), content.splitlines(keepends=True))


def read_lines(kind: str, lines: Iterable[bytes]) -> Dataset:
    """Rows from the lines of a file or a request body, read one by one; at least one row."""
    digest = hashlib.sha256()

    def hashed() -> Iterator[bytes]:
        for line in lines:
            digest.update(line)
            yield line

    text = decoded(hashed())
    if kind == "csv":
        rows = list(csv_rows(text))
    elif kind == "jsonl":
        rows = list(jsonl_rows(text))
    else:
        rows = json_array_rows("".join(line for _, line in text))
    if not rows:
        raise DatasetError("there are no rows")
    return Dataset(rows, digest.hexdigest(), dataset_columns(rows))


def dataset_columns(rows: Iterable[dict]) -> list[str]:
    """Every column any row has, in the order they first appear."""
    return list(dict.fromkeys(column for row in rows for column in row))


def decoded(lines: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, UTF-8 (with Excel's byte-order mark dropped)."""
    for number, raw in enumerate(lines, 1):
        try:
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"line {number}: not UTF-8 text (save the file as UTF-8)") from None


def csv_rows(lines: Iterable[tuple[int, str]]) -> Iterator[dict]:
    # The csv module counts physical lines itself (a quoted value may span several).
    reader = csv.reader((line for _, line in lines))
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError("the file is empty: the first line must name the columns")
        columns = [name.strip() for name in header]  # "ticket, expected" means "expected"
        check_header(columns)
        for values in reader:
            if not any(value.strip() for value in values):  # a blank line, or one of empty values
                continue
            if len(values) != len(columns):
                plural = "" if len(values) == 1 else "s"
                raise DatasetError(
                    f"line {reader.line_num}: {len(values)} value{plural}, but the header has {len(columns)} "
                    "columns (quote values that contain commas)"
                )
            yield dict(zip(columns, values, strict=True))
    except csv.Error as e:
        raise DatasetError(f"line {reader.line_num}: {e}") from e


def check_header(columns: list[str]) -> None:
    for index, name in enumerate(columns, 1):
        if not name:
            raise DatasetError(f"line 1: column {index} has no name")
        if columns.index(name) != index - 1:
            raise DatasetError(f"line 1: column {name!r} appears twice")


def jsonl_rows(lines: Iterable[tuple[int, str]]) -> Iterator[dict]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as e:
            raise DatasetError(f"line {number}: not valid JSON ({e.msg}, column {e.colno})") from e
        if not isinstance(row, dict):
            raise DatasetError(f'line {number}: expected an object like {{"ticket": "..."}}, got {type(row).__name__}')
        yield row


def json_array_rows(text: str) -> list[dict]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"line {e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from e
    if not isinstance(rows, list):
        raise DatasetError(f"expected an array of objects, got {type(rows).__name__}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DatasetError(f"item {index} of the array is not an object")
    return rows

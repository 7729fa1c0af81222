"""Dataset files read line by line: CSV with a header, JSON Lines, a JSON array; every problem
named with its line, and a digest of the bytes so a changed file is a new dataset."""

from __future__ import annotations

import hashlib

import pytest

from sweeps.engine.datasets import DatasetError, format_of, read_dataset, read_lines


def test_csv_rows_are_the_header_s_columns():
    content = '\ufeffticket, expected\n"charged twice, again",billing\n\n,\nno login,login\n'.encode()
    dataset = read_dataset("tickets.csv", content)
    assert dataset.rows == [{"ticket": "charged twice, again", "expected": "billing"},
                            {"ticket": "no login", "expected": "login"}]  # fmt: skip
    assert dataset.columns == ["ticket", "expected"]
    assert dataset.sha256 == hashlib.sha256(content).hexdigest()


def test_json_lines_and_a_json_array():
    lines = b'{"ticket": "a", "n": 1}\n\n{"ticket": "b", "extra": true}\n'
    assert read_dataset("t.jsonl", lines).rows == [{"ticket": "a", "n": 1}, {"ticket": "b", "extra": True}]
    assert read_dataset("t.jsonl", lines).columns == ["ticket", "n", "extra"]
    assert read_dataset("t.json", b'[{"a": 1},\n {"a": 2}]').rows == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.csv", b"a,b\n1,2\n3\n", "line 3: 1 value, but the header has 2 columns (quote values that contain commas)"),
        ("t.csv", b"a,b\n1,2,3\n", "line 2: 3 values, but the header has 2 columns"),
        ("t.csv", b"a,a\n1,2\n", "line 1: column 'a' appears twice"),
        ("t.csv", b"a,\n1,2\n", "line 1: column 2 has no name"),
        ("t.csv", b"", "the file is empty: the first line must name the columns"),
        ("t.csv", b"a\n", "there are no rows"),
        ("t.csv", b"a\nok\n\xff\xfe bad\n", "line 3: not UTF-8 text (save the file as UTF-8)"),
        ("t.jsonl", b'{"a": 1}\n{"a": \n', "line 2: not valid JSON (Expecting value, column 7)"),
        ("t.jsonl", b'{"a": 1}\n[1]\n', 'line 2: expected an object like {"ticket": "..."}, got list'),
        ("t.json", b'{"a": 1}', "expected an array of objects, got dict"),
        ("t.json", b"[1]", "item 0 of the array is not an object"),
    ],
)  # fmt: skip
def test_every_problem_names_its_line(name, content, message):
    with pytest.raises(DatasetError) as caught:
        read_dataset(name, content)
    assert str(caught.value).startswith(message)


def test_the_format_comes_from_the_name_the_content_type_or_the_first_character():
    assert format_of("x.NDJSON") == "jsonl" and format_of("text/csv; charset=utf-8") == "csv"
    assert format_of("application/x-ndjson") == "jsonl" and format_of("application/json") == "json"
    assert format_of("data", b' [{"a": 1}]') == "json" and format_of("data", b"a,b") == "csv"


def test_lines_are_read_as_they_come():
    consumed = []

    def lines():
        for line in (b"a\n", b"1\n", b"2\n"):
            consumed.append(line)
            yield line

    assert read_lines("csv", lines()).rows == [{"a": "1"}, {"a": "2"}] and len(consumed) == 3

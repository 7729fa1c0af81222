"""`{file: ...}` in a spec, as `manage.py sweep` reads it: rows for the dataset, text anywhere
else, each file's SHA-256 recorded under `sources`; the server's validation refuses a file
reference with what to do instead."""

from __future__ import annotations

import hashlib

import pytest

from sweeps.engine.errors import SpecError
from sweeps.engine.spec import parse_spec
from sweeps.engine.spec_files import resolve_files

SPEC = {
    "name": "files",
    "pipeline": [{"name": "route", "prompt": {"file": "prompts/route.txt"}, "model": "mock/echo",
                  "system": {"file": "prompts/system.txt"}}],
    "dataset": {"file": "data/tickets.csv"},
    "sweep": {"type": "grid", "params": {"prompt": [{"file": "prompts/route.txt"}, {"file": "prompts/terse.txt"}]}},
}  # fmt: skip


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "prompts" / "route.txt").write_text("Route this ticket: {{ ticket }}\n")
    (tmp_path / "prompts" / "terse.txt").write_text("Label: {{ ticket }}")
    (tmp_path / "prompts" / "system.txt").write_text("You route tickets.")
    (tmp_path / "data" / "tickets.csv").write_text("ticket,expected\ncharged twice,billing\nno login,login\n")
    return tmp_path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_become_rows_and_text_and_each_is_recorded_with_its_digest(folder):
    data = resolve_files(SPEC, folder, max_bytes=10_000)

    assert data["dataset"] == [{"ticket": "charged twice", "expected": "billing"},
                               {"ticket": "no login", "expected": "login"}]  # fmt: skip
    assert data["pipeline"][0]["prompt"] == "Route this ticket: {{ ticket }}\n"
    assert data["pipeline"][0]["system"] == "You route tickets."
    assert data["sweep"]["params"]["prompt"] == ["Route this ticket: {{ ticket }}\n", "Label: {{ ticket }}"]
    assert data["sources"] == {
        "dataset": {"file": "data/tickets.csv", "sha256": sha(folder / "data/tickets.csv"), "rows": 2},
        "pipeline[0].prompt": {"file": "prompts/route.txt", "sha256": sha(folder / "prompts/route.txt")},
        "pipeline[0].system": {"file": "prompts/system.txt", "sha256": sha(folder / "prompts/system.txt")},
        "sweep.params.prompt[0]": {"file": "prompts/route.txt", "sha256": sha(folder / "prompts/route.txt")},
        "sweep.params.prompt[1]": {"file": "prompts/terse.txt", "sha256": sha(folder / "prompts/terse.txt")},
    }
    spec = parse_spec(data)  # what is stored keeps the record
    assert spec.sources == data["sources"] and spec.to_dict()["sources"] == data["sources"]
    assert SPEC["dataset"] == {"file": "data/tickets.csv"}  # the spec as read is left alone


def test_a_dataset_row_that_looks_like_a_reference_is_data(folder):
    data = resolve_files({**SPEC, "dataset": [{"file": "x"}]}, folder, max_bytes=10_000)
    assert data["dataset"] == [{"file": "x"}]


def test_every_file_that_cannot_be_read_is_named_by_its_field(folder):
    (folder / "data" / "tickets.csv").write_text("ticket,expected\ncharged twice\n")
    (folder / "prompts" / "terse.txt").write_bytes(b"Label:\n\xff")
    spec = {**SPEC, "pipeline": [{**SPEC["pipeline"][0], "prompt": {"file": "prompts/gone.txt"}}]}
    with pytest.raises(SpecError) as caught:
        resolve_files(spec, folder, max_bytes=10_000)
    assert {e.path: e.message for e in caught.value.errors} == {
        "pipeline[0].prompt.file": f"prompts/gone.txt: no such file (looked in {folder})",
        "sweep.params.prompt[1].file": "prompts/terse.txt: line 2: not UTF-8 text",
        "dataset.file": "data/tickets.csv: line 2: 1 value, but the header has 2 columns "
        "(quote values that contain commas)",
    }


def test_a_file_over_the_size_limit_is_refused(folder):
    with pytest.raises(SpecError, match=r"data/tickets.csv: \d+ bytes, more than the limit of 10 "):
        resolve_files({**SPEC, "pipeline": [], "sweep": {}}, folder, max_bytes=10)


def test_the_server_refuses_a_file_reference_and_says_what_to_do():
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC)
    messages = {e.path: e.message for e in caught.value.errors}
    assert messages["dataset"].startswith("{file: 'data/tickets.csv'}: a file is read by `manage.py sweep`")
    assert "PUT /api/v1/experiments/{id}/dataset" in messages["dataset"]
    assert messages["pipeline[0].prompt"].startswith("{file: 'prompts/route.txt'}: a file is read by")


@pytest.mark.parametrize("sources", [[], {"dataset": {"file": "x"}}, {"dataset": {"file": "x", "sha256": "z" * 64}},
                                     {"dataset": {"file": "x", "sha256": "0" * 64, "extra": 1}}])  # fmt: skip
def test_recorded_sources_are_checked(sources):
    with pytest.raises(SpecError, match="sources"):
        parse_spec({"name": "x", "pipeline": [{"name": "a", "prompt": "hi", "model": "mock/echo"}], "sources": sources})

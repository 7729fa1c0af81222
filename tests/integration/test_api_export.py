"""Exports of a sweep's samples (sweeps/selectors/export.py): what they contain, on a real sweep run by
the embedded worker, and that a big one streams in bounded memory and queries."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import tracemalloc

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.seed_api import seed
from sweeps.models import RunSample, Score
from sweeps.selectors import export
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import spec, wait_for_sweep

# Cells a spreadsheet would run as formulas: every one must come out as text.
TICKETS = ["=1+2 billing charged twice", "-5 login broken", "@home parcel lost in shipping"]
COLUMNS = [*export.RUN_COLUMNS, "run_score.icontains", "run_score.short", *export.FIXED_COLUMNS, "param.model", "input.ticket", "input.expected", "stage.summarize", "stage.label",
           "score.icontains", "score.short", "reason.icontains", "reason.short", "rating", "rating_note"]  # fmt: skip


@pytest.fixture
def small_sweep(user, mock_latency):
    """2 configurations x 3 rows, 2 stages, 2 scorers (one named), run to completion."""
    data = spec(
        dataset=[{"ticket": t, "expected": e} for t, e in zip(TICKETS, ["billing", "login", "shipping"], strict=True)],
        scorers=[
            {"type": "icontains", "value": "{{ expected }}"},
            {"type": "max_length", "value": 20, "name": "short"},
        ],
        sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/upper"]}},
    )
    experiment = experiment_create(owner=user, data=data)
    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    assert sweep.status == "completed" and sweep.total == 6
    return sweep


def samples_by_key(sweep) -> dict[tuple, RunSample]:
    samples = RunSample.objects.filter(sweep=sweep).select_related("run").prefetch_related("scores")
    return {(s.run_id, s.row_index, s.replicate): s for s in samples}


@pytest.mark.django_db(transaction=True)
def test_rows_hold_every_sample_once_in_order_with_its_values(small_sweep):
    expected = samples_by_key(small_sweep)

    rows = list(export.export_rows(small_sweep))

    keys = [(r["run_id"], r["row_index"], r["replicate"]) for r in rows]
    assert keys == sorted(expected) and len(set(keys)) == 6
    for row in rows:
        sample = expected[(row["run_id"], row["row_index"], row["replicate"])]
        scores = {s.name: s for s in sample.scores.all()}
        assert row["run_status"] == sample.run.status and row["run_score"] == sample.run.score
        means = {m["name"]: m["mean"] for m in sample.run.scorer_means}
        assert (row["run_score.icontains"], row["run_score.short"]) == (means["icontains"], means["short"])
        assert row["param.model"] == sample.run.config["model"]
        assert row["inputs"] == sample.inputs and row["status"] == "completed"
        assert row["stage.summarize"] == sample.stages[0]["output"] and row["stage.label"] == sample.stages[1]["output"]
        assert row["output"] == sample.output and row["score"] == sample.score
        assert row["score.icontains"] == scores["icontains"].value and row["reason.short"] == scores["short"].reason
        assert (row["tokens_in"], row["tokens_out"], row["cost_usd"], row["latency_ms"], row["cache_hit"]) == (
            sample.tokens_in, sample.tokens_out, sample.cost_usd, sample.latency_ms, sample.cache_hit)  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 7])
def test_any_page_size_gives_every_sample_once_in_order(small_sweep, monkeypatch, chunk):
    """Runs of 3 samples: paged within a run (chunk < 3), one run a page, or runs together."""
    everything = [(r["run_id"], r["row_index"], r["score.icontains"]) for r in export.export_rows(small_sweep)]
    monkeypatch.setattr(export, "CHUNK", chunk)

    assert [(r["run_id"], r["row_index"], r["score.icontains"]) for r in export.export_rows(small_sweep)] == everything


@pytest.mark.django_db(transaction=True)
def test_csv_has_the_columns_up_front_and_formulas_as_text(small_sweep):
    expected = samples_by_key(small_sweep)

    text = "".join(export.export_csv(small_sweep))

    header, *lines = list(csv.reader(io.StringIO(text)))
    assert header == COLUMNS
    assert len(lines) == 6
    for line in lines:
        cell = dict(zip(header, line, strict=True))
        sample = expected[(int(cell["run_id"]), int(cell["row_index"]), int(cell["replicate"]))]
        # OWASP: a leading apostrophe makes the spreadsheet show the cell instead of running it.
        assert cell["input.ticket"] == "'" + sample.inputs["ticket"]
        assert cell["output"] == "'" + sample.output and sample.output[0] in "=-@"
        assert cell["stage.summarize"] == "'" + sample.stages[0]["output"]
        assert cell["input.expected"] == sample.inputs["expected"]  # plain text is left alone
        assert float(cell["score"]) == sample.score and float(cell["cost_usd"]) == sample.cost_usd
        assert cell["cache_hit"] == "false" and cell["error"] == ""
        assert cell["param.model"] == sample.run.config["model"]
        assert cell["reason.icontains"] == sample.scores.get(scorer_index=0).reason
    assert text.endswith("\r\n")


@pytest.mark.django_db(transaction=True)
def test_jsonl_is_one_nested_object_per_sample(small_sweep):
    expected = samples_by_key(small_sweep)

    lines = "".join(export.export_jsonl(small_sweep)).splitlines()

    records = [json.loads(line) for line in lines]
    assert len(records) == 6
    for record in records:
        sample = expected[(record["run_id"], record["row_index"], record["replicate"])]
        assert record["params"] == {"model": sample.run.config["model"]}
        assert record["inputs"] == sample.inputs and record["stages"] == sample.stages
        assert record["output"] == sample.output and record["score"] == sample.score
        assert record["scores"] == [
            {"name": s.name, "value": s.value, "passed": s.passed, "reason": s.reason} for s in sample.scores.all()
        ]
        assert record["run_status"] == sample.run.status and record["cache_hit"] is sample.cache_hit
        assert record["run_scores"] == [{"name": m["name"], "mean": m["mean"]} for m in sample.run.scorer_means]
        assert [m["name"] for m in record["run_scores"]] == ["icontains", "short"]


@pytest.mark.django_db(transaction=True)
def test_a_judges_call_is_a_stage_column_and_repeated_scorer_names_are_numbered(user, mock_latency):
    judge = {"type": "llm_judge", "model": "mock/echo", "rubric": "Grade the label: {{ label }}"}
    data = spec(scorers=[judge, {"type": "icontains", "value": "{{ expected }}"}, {"type": "icontains", "value": "a"}],
                sweep={"type": "grid", "params": {"model": ["mock/echo"]}})  # fmt: skip
    sweep = wait_for_sweep(sweep_start(experiment=experiment_create(owner=user, data=data)))

    header, *lines = list(csv.reader(io.StringIO("".join(export.export_csv(sweep)))))

    assert [c for c in header if c.startswith(("stage.", "score."))] == [
        "stage.summarize", "stage.label", "stage.judge:llm_judge", "score.llm_judge", "score.icontains",
        "score.icontains#2"]  # fmt: skip
    for line in lines:
        cell = dict(zip(header, line, strict=True))
        sample = RunSample.objects.get(run_id=cell["run_id"], row_index=cell["row_index"])
        judged = next(s for s in sample.stages if s["name"] == "judge:llm_judge")
        assert cell["stage.judge:llm_judge"] == export.csv_cell(judged["output"])
        second = sample.scores.get(scorer_index=2)
        assert (float(cell["score.icontains#2"]), cell["reason.icontains#2"]) == (second.value, second.reason)


@pytest.mark.django_db(transaction=True)
def test_filename_names_experiment_sweep_and_format(small_sweep):
    name = export.export_filename(small_sweep, "jsonl")
    assert name == f"experiment-{small_sweep.experiment_id}-sweep-{small_sweep.pk}.jsonl"
    with pytest.raises(ValueError, match="csv or jsonl"):
        export.export_filename(small_sweep, "xlsx")


def test_cells_that_start_a_formula_are_prefixed_and_numbers_are_not():
    assert [export.csv_cell(v) for v in ["=SUM(A1)", "+1", "-x", "@x", "\tx", "\rx", "ok", ""]] == [
        "'=SUM(A1)", "'+1", "'-x", "'@x", "'\tx", "'\rx", "ok", ""]  # fmt: skip
    assert [export.csv_cell(v) for v in [-0.5, 3, None, True, ["=a"]]] == [-0.5, 3, "", "true", '["=a"]']
    assert export.csv_cell({"a": 1}) == '{"a": 1}'


def test_astream_hands_over_the_same_batches_asynchronously():
    async def collect(chunks):
        return [part async for part in export.astream(chunks)]

    assert asyncio.run(collect(iter(["a,b\r\n", "1,2\r\n"]))) == ["a,b\r\n", "1,2\r\n"]


def consume(chunks) -> tuple[int, int, int]:
    """(bytes produced, strings yielded, peak bytes traced while producing them)."""
    tracemalloc.start()
    try:
        size = count = 0
        for text in chunks:
            size += len(text.encode())
            count += 1
        return size, count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.django_db
def test_a_30000_sample_export_streams_in_bounded_memory_and_queries(user, mock_latency):
    n = 30_000
    sweep = seed(user, n_samples=n, n_runs=60)
    assert Score.objects.filter(sample__sweep=sweep).count() == 2 * n

    for exporter in (export.export_csv, export.export_jsonl):
        size, count, peak = consume(exporter(sweep))
        # Holding every sample, or the whole text, would take more than the text itself.
        assert peak < size / 5, f"{exporter.__name__}: peak {peak:,} B for {size:,} B produced"
        # Batches of rows: neither one string per row nor one for everything.
        assert count == math.ceil(n / export.BATCH) + (exporter is export.export_csv)

    with CaptureQueriesContext(connection) as queries:
        rows = sum(1 for _ in export.export_rows(sweep))
    assert rows == n
    # The runs, then per page of CHUNK samples (here a run) one query for them, one for their scores.
    assert len(queries) <= 1 + 2 * math.ceil(n / export.CHUNK)


def link(page: str, link_id: str) -> str:
    import html
    import re

    return html.unescape(re.search(rf'id="{link_id}"[^>]*href="([^"]+)"', page, re.S).group(1))


@pytest.mark.django_db(transaction=True)
def test_the_experiment_and_run_pages_link_their_downloads(small_sweep, user, other_user):
    from tests.conftest import logged_in

    client = logged_in(user)
    page = client.get(f"/experiments/{small_sweep.experiment_id}/").content.decode()
    response = client.get(link(page, "export-csv"))  # the signed-in session is enough
    assert response.status_code == 200 and response["Content-Disposition"].endswith(f'sweep-{small_sweep.pk}.csv"')
    assert len(list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))) == 6

    run = small_sweep.runs.order_by("pk").first()
    page = client.get(f"/runs/{run.pk}/").content.decode()
    response = client.get(link(page, "export-jsonl"))
    records = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert response["Content-Disposition"].endswith(f'sweep-{small_sweep.pk}-run-{run.pk}.jsonl"')
    assert len(records) == 3 and {r["run_id"] for r in records} == {run.pk}
    assert logged_in(other_user).get(link(page, "export-jsonl")).status_code == 404
    other = experiment_create(owner=user, data=spec(name="Other"))
    assert client.get(f"/api/v1/experiments/{other.pk}/export?run={run.pk}").status_code == 404

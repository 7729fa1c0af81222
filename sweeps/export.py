"""The samples of one sweep as CSV or JSON Lines, streamed.

A 100,000-sample sweep makes about 100 MB of CSV. Nothing here holds more than one chunk of
samples (CHUNK) and one batch of text (BATCH) at a time, so an export costs the same memory
whatever the sweep's size, and the first bytes leave before the last sample is read.

Samples are read by keyset pagination on (run_id, row_index, replicate), the export's order
and a unique index: each chunk is one short query, with no cursor or transaction held open
while a slow client downloads (what QuerySet.iterator() would do on PostgreSQL), and it was
the faster of the two on PostgreSQL (bench/README.md, "api_latency.py"). A sweep still running
exports each sample once, as it was when its chunk was read.

Under ASGI (daphne, and runserver with daphne installed) serve these through `astream`:
StreamingHttpResponse given a plain iterator there first collects it whole into a list.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q

from sweeps.engine.space import flatten
from sweeps.models import Run, RunSample, Score, Sweep

CHUNK = 1000  # samples per query: memory is about 4 KB per sample read, and bigger chunks gained little
BATCH = 250  # rows per string yielded: big enough that a write per string costs nothing, small enough to stream
ORDER = ("run_id", "row_index", "replicate")
SAMPLE_COLUMNS = ("id", *ORDER, "status", "inputs", "stages", "output", "score", "tokens_in", "tokens_out",
                  "cost_usd", "latency_ms", "cache_hit", "error")  # fmt: skip
SCORE_COLUMNS = ("sample_id", "scorer_index", "name", "value", "passed", "reason")
FIXED_COLUMNS = ("run_id", "run_status", "run_score", "row_index", "replicate", "status", "output", "score",
                 "tokens_in", "tokens_out", "cost_usd", "latency_ms", "cache_hit", "error")  # fmt: skip
# The judge of an llm_judge scorer is recorded among a sample's stages under this prefix
# (sweeps.engine.executor.JUDGE_PREFIX, not imported: the executor pulls in the whole engine).
JUDGE_PREFIX = "judge:"
# A spreadsheet runs a cell starting with one of these as a formula: =HYPERLINK(...) in a
# model's output or a dataset row would run on the machine of whoever opens the export. OWASP
# (CSV Injection) advises prefixing such cells with an apostrophe, which shows as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


@dataclass(frozen=True)
class RunFacts:
    status: str
    score: float | None
    params: dict[str, Any]  # the run's config, flattened to dotted paths
    prefixed: dict[str, Any]  # the same, keyed param.<path>


@dataclass(frozen=True)
class Layout:
    """What every sample of the sweep is read against, decided once before the first one."""

    runs: dict[int, RunFacts]
    scorer_labels: list[str]  # by scorer_index
    params: list[str]
    inputs: list[str]
    stages: list[str]

    def columns(self) -> list[str]:
        return [
            *FIXED_COLUMNS,
            *(f"param.{p}" for p in self.params),
            *(f"input.{name}" for name in self.inputs),
            *(f"stage.{name}" for name in self.stages),
            *(f"score.{name}" for name in self.scorer_labels),
            *(f"reason.{name}" for name in self.scorer_labels),
        ]


def unique_labels(names: Iterable[str]) -> list[str]:
    """Names as given, a repeat numbered from 2 (`icontains`, `icontains#2`): two scorers of one
    type without a `name` are both called by the type, and their columns must not collide."""
    seen: dict[str, int] = defaultdict(int)
    labels = []
    for name in names:
        seen[name] += 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


def layout(sweep: Sweep) -> Layout:
    """Columns from the sweep's spec snapshot (stages, scorers, dataset) and its runs' configs."""
    spec = sweep.spec
    runs: dict[int, RunFacts] = {}
    param_keys: dict[str, None] = {}  # an ordered set: in order of first appearance
    for run_id, status, score, config in Run.objects.filter(sweep=sweep).values_list("id", "status", "score", "config"):
        params = flatten(config)
        runs[run_id] = RunFacts(status, score, params, {f"param.{k}": v for k, v in params.items()})
        param_keys.update(dict.fromkeys(params))
    scorer_names = [s.get("name") or s["type"] for s in spec["scorers"]]
    judges = [JUDGE_PREFIX + name for s, name in zip(spec["scorers"], scorer_names, strict=True)
              if s["type"] == "llm_judge"]  # fmt: skip
    inputs = {key: None for row in spec["dataset"] for key in row}
    return Layout(
        runs=runs,
        scorer_labels=unique_labels(scorer_names),
        params=list(param_keys),
        inputs=list(inputs),
        stages=unique_labels([*(stage["name"] for stage in spec["pipeline"]), *judges]),
    )


def sample_chunks(sweep: Sweep, run_ids: Iterable[int]) -> Iterator[tuple[list[tuple], dict[int, list[tuple]]]]:
    """(samples as SAMPLE_COLUMNS tuples, their scores by sample id), CHUNK samples at a time."""
    run_ids = list(run_ids)
    if not run_ids:
        return
    # The run id range keeps the scan to this sweep's part of the (run, row, replicate) index,
    # and to the runs the layout knows: those created after it started (guided rounds) have
    # greater ids, and no facts.
    base = (
        RunSample.objects.filter(sweep=sweep, run_id__gte=min(run_ids), run_id__lte=max(run_ids))
        .order_by(*ORDER)
        .values_list(*SAMPLE_COLUMNS)
    )
    after: tuple | None = None
    while True:
        page = base if after is None else base.filter(after_key(*after))
        samples = list(page[:CHUNK])
        if not samples:
            return
        yield samples, scores_of([s[0] for s in samples])
        if len(samples) < CHUNK:
            return
        after = samples[-1][1:4]


def after_key(run_id: int, row_index: int, replicate: int) -> Q:
    """(run_id, row_index, replicate) > the given key. Django has no row-value comparison, so it
    is spelled out; the extra run_id >= bound lets the index scan start at the key instead of
    at the sweep's first sample (the OR alone is only a filter)."""
    return Q(run_id__gte=run_id) & (
        Q(run_id__gt=run_id)
        | Q(run_id=run_id, row_index__gt=row_index)
        | Q(run_id=run_id, row_index=row_index, replicate__gt=replicate)
    )


def scores_of(sample_ids: list[int]) -> dict[int, list[tuple]]:
    by_sample: dict[int, list[tuple]] = defaultdict(list)
    rows = Score.objects.filter(sample_id__in=sample_ids).order_by("sample_id", "scorer_index")
    for sample_id, *score in rows.values_list(*SCORE_COLUMNS):
        by_sample[sample_id].append(tuple(score))
    return by_sample


def flat_row(sample: tuple, scores: list[tuple], run: RunFacts, scorer_labels: list[str]) -> dict[str, Any]:
    """One sample as export_rows gives it: plain values, prefixed keys for the variable parts."""
    (_, run_id, row_index, replicate, status, inputs, stages, output, score,
     tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, error) = sample  # fmt: skip
    row: dict[str, Any] = {"run_id": run_id, "run_status": run.status, "run_score": run.score, **run.prefixed,
                           "row_index": row_index, "replicate": replicate, "status": status, "inputs": inputs}  # fmt: skip
    for label, stage in zip(unique_labels(s.get("name", "") for s in stages), stages, strict=True):
        row[f"stage.{label}"] = stage.get("output")
    row["output"], row["score"] = output, score
    for index, name, value, _, reason in scores:
        label = scorer_labels[index] if index < len(scorer_labels) else name
        row[f"score.{label}"], row[f"reason.{label}"] = value, reason
    row.update(tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost_usd, latency_ms=latency_ms,
               cache_hit=cache_hit, error=error)  # fmt: skip
    return row


def rows_of(sweep: Sweep, plan: Layout) -> Iterator[dict[str, Any]]:
    for samples, scores in sample_chunks(sweep, plan.runs):
        for sample in samples:
            yield flat_row(sample, scores.get(sample[0], []), plan.runs[sample[1]], plan.scorer_labels)


def export_rows(sweep: Sweep) -> Iterator[dict[str, Any]]:
    """One dict per sample, ordered by run id, row index and replicate."""
    return rows_of(sweep, layout(sweep))


def batched(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value  # a negative number is a number to a spreadsheet, not a formula
    if not isinstance(value, str):  # a list or dict in a row or a config
        value = json.dumps(value, ensure_ascii=False)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def export_csv(sweep: Sweep) -> Iterator[str]:
    """The header, then BATCH rows per string."""
    plan = layout(sweep)
    columns = plan.columns()
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # lines end in \r\n, as RFC 4180 says

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(columns)
    yield flush()
    for batch in batched(rows_of(sweep, plan)):
        for row in batch:
            cells = row | {f"input.{k}": v for k, v in row["inputs"].items()}
            writer.writerow([csv_cell(cells.get(c)) for c in columns])
        yield flush()


def json_line(sample: tuple, scores: list[tuple], run: RunFacts) -> str:
    (_, run_id, row_index, replicate, status, inputs, stages, output, score,
     tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, error) = sample  # fmt: skip
    record = {
        "run_id": run_id, "run_status": run.status, "run_score": run.score, "params": run.params,
        "row_index": row_index, "replicate": replicate, "status": status, "inputs": inputs, "stages": stages,
        "output": output, "score": score,
        "scores": [{"name": name, "value": value, "passed": passed, "reason": reason}
                   for _, name, value, passed, reason in scores],
        "tokens_in": tokens_in, "tokens_out": tokens_out, "cost_usd": cost_usd, "latency_ms": latency_ms,
        "cache_hit": cache_hit, "error": error,
    }  # fmt: skip
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def export_jsonl(sweep: Sweep) -> Iterator[str]:
    """One JSON object per sample and line, BATCH lines per string."""
    plan = layout(sweep)

    def lines() -> Iterator[str]:
        for samples, scores in sample_chunks(sweep, plan.runs):
            for sample in samples:
                yield json_line(sample, scores.get(sample[0], []), plan.runs[sample[1]])

    for batch in batched(lines()):
        yield "".join(batch)


def export_filename(sweep: Sweep, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: expected {' or '.join(FORMATS)}")
    return f"experiment-{sweep.experiment_id}-sweep-{sweep.pk}.{fmt}"


EXPORTERS = {"csv": export_csv, "jsonl": export_jsonl}


async def astream(chunks: Iterator[str]) -> AsyncIterator[str]:
    """An export as an async iterator, for StreamingHttpResponse under ASGI. Each batch is made
    in the request's sync thread (thread_sensitive), where its database connection lives."""
    done = object()
    step = sync_to_async(next, thread_sensitive=True)
    while (batch := await step(chunks, done)) is not done:
        yield batch

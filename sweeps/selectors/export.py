"""The samples of one sweep as CSV or JSON Lines, streamed.

A 100,000-sample sweep makes some 50 MB of CSV and 150 MB of JSON Lines. Nothing here holds
more than one chunk of samples (CHUNK) and one batch of text (BATCH) at a time, so an export
costs the same memory whatever the sweep's size, and its first bytes leave at once.

Samples are read run by run, in pages of at most CHUNK (see `pages`): each page is one short
query, and no cursor or transaction stays open while a slow client downloads, as
QuerySet.iterator() would keep on PostgreSQL. On PostgreSQL with 100,000 samples, paging was
faster than iterator() over values_list (whose first row came after about 2 s) and four times
as fast as iterator() over models with select_related and prefetch_related (bench/README.md).
The runs are those of the sweep when the export starts; a sweep still running exports each of
their samples once, as it was when its page was read.

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
from django.db.models import OuterRef, Q, Subquery, TextField
from django.db.models.functions import Cast

from sweeps.engine.executor import JUDGE_PREFIX  # an llm_judge's call is among the stages, so named
from sweeps.engine.scorers import SCORER_TYPES
from sweeps.engine.space import flatten
from sweeps.models import Rating, Run, RunSample, Score, Sweep
from sweeps.selectors.runs import compute_scorer_means

CHUNK = 500  # samples per query: ~2 KB each in memory; 1,000 or 2,000 per query were no faster
BATCH = 250  # rows per string yielded: big enough that a write per string costs nothing, small enough to stream
ORDER = ("run_id", "row_index", "replicate")
SAMPLE_COLUMNS = ("id", *ORDER, "status", "inputs_json", "stages_json", "output", "score", "tokens_in",
                  "tokens_out", "cost_usd", "latency_ms", "cache_hit", "error", "truncated", "rating",
                  "rating_note")  # fmt: skip
# A sample's inputs and stages are read as the database's JSON text, not decoded: a decoded
# stage is a dict of twelve keys, about three times the memory of its text, and a chunk holds
# CHUNK samples. Each is decoded when its row is made (CSV), or copied as is (JSONL).
JSON_AS_TEXT = {"inputs_json": Cast("inputs", TextField()), "stages_json": Cast("stages", TextField())}
# A person's 👍/👎 and note, read in the samples' own query (a lookup of the unique (sample,
# user) index per sample) rather than one more query per page. Only the experiment's owner
# rates; were there several ratings, the first user's is the one exported.
FIRST_RATING = Rating.objects.filter(sample=OuterRef("pk")).order_by("user_id")
RATING = {
    "rating": Subquery(FIRST_RATING.values("value")[:1]),
    "rating_note": Subquery(FIRST_RATING.values("note")[:1]),
}
SCORE_COLUMNS = ("sample_id", "scorer_index", "name", "value", "passed", "reason")
RUN_COLUMNS = ("run_id", "run_status", "run_score")  # then run_score.<scorer>: the run's mean of each
FIXED_COLUMNS = ("row_index", "replicate", "status", "output", "score", "tokens_in", "tokens_out", "cost_usd",
                 "latency_ms", "cache_hit", "error", "truncated")  # fmt: skip
REVIEW_COLUMNS = ("rating", "rating_note")  # last: "up", "down" or empty, and the note
# A spreadsheet runs a cell starting with one of these as a formula: =HYPERLINK(...) in a
# model's output or a dataset row would run on the machine of whoever opens the export. OWASP
# (CSV Injection) advises prefixing such cells with an apostrophe, which shows as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


@dataclass(frozen=True)
class RunFacts:
    status: str
    score: float | None
    samples: int  # how many samples it has (samples_total: rows x repeats, set when it is made)
    params: dict[str, Any]  # the run's config, flattened to dotted paths
    prefixed: dict[str, Any]  # the same, keyed param.<path>, and each scorer's mean as run_score.<scorer>
    means: list[dict[str, Any]]  # each scorer's mean (selectors.runs.scorer_means)


@dataclass(frozen=True)
class Layout:
    """What every sample of the sweep is read against, decided once before the first one."""

    runs: dict[int, RunFacts]
    scorer_labels: list[str]  # by scorer_index
    params: list[str]
    inputs: list[str]
    stages: list[str]

    def columns(self) -> list[str]:
        before, after = self.columns_around_inputs()
        return [*before, *(f"input.{name}" for name in self.inputs), *after]

    def columns_around_inputs(self) -> tuple[list[str], list[str]]:
        """The columns before the input.* ones and after them: keys of export_rows' dicts, where
        the inputs are one dict."""
        before = [*RUN_COLUMNS, *(f"run_score.{label}" for label in self.scorer_labels), *FIXED_COLUMNS,
                  *(f"param.{p}" for p in self.params)]  # fmt: skip
        after = [*(f"stage.{name}" for name in self.stages), *(f"score.{name}" for name in self.scorer_labels),
                 *(f"reason.{name}" for name in self.scorer_labels), *REVIEW_COLUMNS]  # fmt: skip
        return before, after


def unique_labels(names: Iterable[str]) -> list[str]:
    """Names as given, a repeat numbered from 2 (`icontains`, `icontains#2`): two scorers of one
    type without a `name` are both called by the type, and their columns must not collide."""
    seen: dict[str, int] = defaultdict(int)
    labels = []
    for name in names:
        seen[name] += 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


def layout(sweep: Sweep, run_id: int | None = None) -> Layout:
    """Columns from the sweep's spec snapshot (stages, scorers, dataset) and its runs' configs
    (or one run's, with `run_id`)."""
    spec = sweep.spec
    scorer_names = [s.get("name") or s["type"] for s in spec["scorers"]]
    labels = unique_labels(scorer_names)
    runs: dict[int, RunFacts] = {}
    param_keys: dict[str, None] = {}  # an ordered set: in order of first appearance
    fields = ("id", "status", "score", "samples_total", "config", "finished_at", "scorer_means")
    runs_of = Run.objects.filter(sweep=sweep, **({"pk": run_id} if run_id is not None else {}))
    found = list(runs_of.values_list(*fields))
    live = compute_scorer_means([run[0] for run in found if run[5] is None])
    for run_id, status, score, samples, config, _, stored_means in found:
        params = flatten(config)
        means = live.get(run_id, stored_means)
        prefixed = {**{f"run_score.{label}": m["mean"] for label, m in zip(labels, means, strict=False)},
                    **{f"param.{k}": v for k, v in params.items()}}  # fmt: skip
        runs[run_id] = RunFacts(status, score, samples, params, prefixed, means)
        param_keys.update(dict.fromkeys(params))
    judges = [JUDGE_PREFIX + name for s, name in zip(spec["scorers"], scorer_names, strict=True)
              if SCORER_TYPES[s["type"]].variant(s).calls_model]  # fmt: skip
    inputs = {key: None for row in spec["dataset"] for key in row}
    return Layout(
        runs=runs,
        scorer_labels=labels,
        params=list(param_keys),
        inputs=list(inputs),
        stages=unique_labels([*(stage["name"] for stage in spec["pipeline"]), *judges]),
    )


def samples_of(plan: Layout) -> Iterator[tuple[tuple, list[tuple]]]:
    """(sample as SAMPLE_COLUMNS, its scores as SCORE_COLUMNS without sample_id), in export
    order, at most CHUNK samples per query."""
    for samples in pages(plan.runs):
        scores = scores_of([s[0] for s in samples])
        # Each sample is let go as it is handed over, so the next page is read while none of
        # this one is held: the peak is one page, not two.
        samples.reverse()
        while samples:
            sample = samples.pop()
            yield sample, scores.pop(sample[0], [])


def pages(runs: dict[int, RunFacts]) -> Iterator[list[tuple]]:
    """The samples of consecutive runs that fit in a chunk together, in one query; those of a
    run bigger than a chunk, page after page.

    Every query names its runs by id, so the plan is an index scan of those runs alone whatever
    the planner's statistics say. (A keyset over the whole sweep, ordered by run, row and
    replicate, was sorted afresh from the page to the sweep's end on each page while the
    statistics were stale, as right after a sweep's bulk insert: quadratic.)"""
    base = RunSample.objects.annotate(**JSON_AS_TEXT, **RATING).values_list(*SAMPLE_COLUMNS)
    for group in run_groups(runs):
        if len(group) > 1 or runs[group[0]].samples <= CHUNK:
            yield list(base.filter(run_id__in=group).order_by(*ORDER))
            continue
        run = base.filter(run_id=group[0]).order_by(*ORDER)
        page = run
        while samples := list(page[:CHUNK]):
            row_index, replicate = samples[-1][2:4]
            yield samples
            # (row_index, replicate) > the last one's, with a >= bound the index scan starts at.
            page = run.filter(Q(row_index__gte=row_index), Q(row_index__gt=row_index) | Q(replicate__gt=replicate))


def run_groups(runs: dict[int, RunFacts]) -> Iterator[list[int]]:
    """Run ids in order, grouped while their samples add up to CHUNK at most."""
    group: list[int] = []
    size = 0
    for run_id in sorted(runs):
        if group and size + runs[run_id].samples > CHUNK:
            yield group
            group, size = [], 0
        group.append(run_id)
        size += runs[run_id].samples
    if group:
        yield group


def scores_of(sample_ids: list[int]) -> dict[int, list[tuple]]:
    by_sample: dict[int, list[tuple]] = defaultdict(list)
    rows = Score.objects.filter(sample_id__in=sample_ids).order_by("sample_id", "scorer_index")
    for sample_id, *score in rows.values_list(*SCORE_COLUMNS):
        by_sample[sample_id].append(tuple(score))
    return by_sample


def flat_row(sample: tuple, scores: list[tuple], run: RunFacts, scorer_labels: list[str]) -> dict[str, Any]:
    """One sample as export_rows gives it: plain values, prefixed keys for the variable parts."""
    (_, run_id, row_index, replicate, status, inputs, stages, output, score,
     tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, error, truncated, rating, rating_note) = sample  # fmt: skip
    inputs, stages = json.loads(inputs), json.loads(stages)
    row: dict[str, Any] = {
        "run_id": run_id, "run_status": run.status, "run_score": run.score, **run.prefixed,
        "row_index": row_index, "replicate": replicate, "status": status, "inputs": inputs,
    }  # fmt: skip
    for label, stage in zip(unique_labels(s.get("name", "") for s in stages), stages, strict=True):
        row[f"stage.{label}"] = stage.get("output")
    row["output"], row["score"] = output, score
    for index, name, value, _, reason in scores:
        label = scorer_labels[index] if index < len(scorer_labels) else name
        row[f"score.{label}"], row[f"reason.{label}"] = value, reason
    row.update(tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost_usd, latency_ms=latency_ms,
               cache_hit=cache_hit, error=error, truncated=truncated, rating=rating, rating_note=rating_note)  # fmt: skip
    return row


def rows_of(plan: Layout) -> Iterator[dict[str, Any]]:
    for sample, scores in samples_of(plan):
        yield flat_row(sample, scores, plan.runs[sample[1]], plan.scorer_labels)


def export_rows(sweep: Sweep) -> Iterator[dict[str, Any]]:
    """One dict per sample, ordered by run id, row index and replicate."""
    return rows_of(layout(sweep))


def csv_cell(value: Any) -> Any:
    kind = type(value)  # tested most frequent first: this runs for every cell
    if kind is str:
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if kind is float or kind is int:
        return value  # a negative number is a number to a spreadsheet, not a formula
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    return csv_cell(json.dumps(value, ensure_ascii=False))  # a list or dict in a row or a config


def export_csv(sweep: Sweep, run_id: int | None = None) -> Iterator[str]:
    """The header, then BATCH rows per string."""
    plan = layout(sweep, run_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # lines end in \r\n, as RFC 4180 says

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    before, after = plan.columns_around_inputs()
    writer.writerow(plan.columns())
    yield flush()
    for n, row in enumerate(rows_of(plan), 1):
        inputs = row["inputs"]
        cells = [csv_cell(row.get(c)) for c in before]
        cells += [csv_cell(inputs.get(k)) for k in plan.inputs]
        cells += [csv_cell(row.get(c)) for c in after]
        writer.writerow(cells)
        if n % BATCH == 0:
            yield flush()
    if tail := flush():
        yield tail


def json_line(sample: tuple, scores: list[tuple], run: RunFacts) -> str:
    (_, run_id, row_index, replicate, status, inputs, stages, output, score,
     tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, error, truncated, rating, rating_note) = sample  # fmt: skip
    head = {"run_id": run_id, "run_status": run.status, "run_score": run.score,
            "run_scores": [{"name": m["name"], "mean": m["mean"]} for m in run.means], "params": run.params,
            "row_index": row_index, "replicate": replicate, "status": status}  # fmt: skip
    tail = {
        "output": output, "score": score,
        "scores": [{"name": name, "value": value, "passed": passed, "reason": reason}
                   for _, name, value, passed, reason in scores],
        "tokens_in": tokens_in, "tokens_out": tokens_out, "cost_usd": cost_usd, "latency_ms": latency_ms,
        "cache_hit": cache_hit, "error": error, "truncated": truncated, "rating": rating, "rating_note": rating_note,
    }  # fmt: skip
    # The database's JSON text of inputs and stages is valid JSON already: put between the two
    # halves as it is, rather than decoded and encoded again (half the time of a line).
    return (
        f"{json.dumps(head, ensure_ascii=False, separators=(',', ':'))[:-1]},"
        f'"inputs":{inputs},"stages":{stages},'
        f"{json.dumps(tail, ensure_ascii=False, separators=(',', ':'))[1:]}\n"
    )


def export_jsonl(sweep: Sweep, run_id: int | None = None) -> Iterator[str]:
    """One JSON object per sample and line, BATCH lines per string."""
    plan = layout(sweep, run_id)
    lines = (json_line(sample, scores, plan.runs[sample[1]]) for sample, scores in samples_of(plan))
    while batch := list(islice(lines, BATCH)):
        yield "".join(batch)


def export_filename(sweep: Sweep, fmt: str, run_id: int | None = None) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: expected {' or '.join(FORMATS)}")
    run = f"-run-{run_id}" if run_id is not None else ""
    return f"experiment-{sweep.experiment_id}-sweep-{sweep.pk}{run}.{fmt}"


EXPORTERS = {"csv": export_csv, "jsonl": export_jsonl}


async def astream(chunks: Iterator[str]) -> AsyncIterator[str]:
    """An export as an async iterator, for StreamingHttpResponse under ASGI. Each batch is made
    in the request's sync thread (thread_sensitive), where its database connection lives."""
    step = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    while (batch := await step()) is not None:
        yield batch

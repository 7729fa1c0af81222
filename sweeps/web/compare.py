"""The compare page's rows: each run's sample of one dataset row side by side, with what sets
them apart marked (outputs that differ from the first run's, word by word; the best score).

Every piece of user text (dataset values, model outputs) reaches the page through
`conditional_escape` or `format_html`; the markup added here is the only unescaped HTML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString

from sweeps.models import Run, RunSample, Score

# Words and the whitespace between them, both kept: the page shows outputs with their line breaks.
TOKENS = re.compile(r"\s+|\S+")
# SequenceMatcher is quadratic at worst; past this many tokens an output is shown unmarked.
MAX_DIFF_TOKENS = 4000


def word_diff(old: str, new: str) -> SafeString:
    """`new`, escaped, with the words that changed from `old` marked: what went in <del>, what
    came in <ins>."""
    a, b = TOKENS.findall(old), TOKENS.findall(new)
    if len(a) + len(b) > MAX_DIFF_TOKENS:
        return conditional_escape(new)
    pieces = []
    for same, went, came in _changes(a, b):
        if same:
            pieces.append(conditional_escape(came))
            continue
        if went:
            pieces.append(format_html('<del class="diff">{}</del>', went))
        if came:
            pieces.append(format_html('<ins class="diff">{}</ins>', came))
    return format_html_join("", "{}", ((p,) for p in pieces))


def _changes(a: list[str], b: list[str]) -> list[list[Any]]:
    """[same, old text, new text] segments. A change next to a change, or two changes with only
    whitespace between them, become one: "two words" -> "TWO WORDS" reads as one replacement."""
    segments: list[list[Any]] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        same, went, came = tag == "equal", "".join(a[i1:i2]), "".join(b[j1:j2])
        if not same and segments and not segments[-1][0]:
            segments[-1][1] += went
            segments[-1][2] += came
        elif not same and len(segments) >= 2 and segments[-1][0] and not segments[-1][2].strip():
            space = segments.pop()[2]
            segments[-1][1] += space + went
            segments[-1][2] += space + came
        else:
            segments.append([same, went, came])
    return segments


@dataclass
class Cell:
    run: Run
    sample: RunSample | None  # None: this run has no sample for the row (another dataset)
    output: SafeString = SafeString("")
    differs: bool | None = None  # from the first run's output; None when there is nothing to compare
    best: bool = False
    scores: list[Score] = field(default_factory=list)  # the sample's verdicts, listed once (prefetched)


@dataclass
class Row:
    row_index: int
    replicate: int
    inputs: list[tuple[str, Any]]
    cells: list[Cell] = field(default_factory=list)


def build_rows(runs: Sequence[Run], keys: Sequence[tuple[int, int]], samples: Sequence[RunSample]) -> list[Row]:
    by_key = {(s.run_id, s.row_index, s.replicate): s for s in samples}
    rows = []
    for row_index, replicate in keys:
        row_samples = [by_key.get((run.pk, row_index, replicate)) for run in runs]
        inputs = next(s.inputs for s in row_samples if s is not None)
        best = best_score(row_samples)
        baseline = row_samples[0]
        row = Row(row_index, replicate, items(inputs))
        for run, sample in zip(runs, row_samples, strict=True):
            cell = Cell(run, sample)
            if sample is not None:
                cell.output = conditional_escape(sample.output)
                cell.scores = list(sample.scores.all())
                cell.best = best is not None and sample_score(sample) == best
                if baseline is not None and sample is not baseline and has_output(baseline) and has_output(sample):
                    cell.differs = sample.output != baseline.output
                    if cell.differs:
                        cell.output = word_diff(baseline.output, sample.output)
            row.cells.append(cell)
        rows.append(row)
    return rows


def items(mapping: object) -> list[tuple[str, Any]]:
    """A dict's items for a template, where `inputs.items` would look up a dataset column "items".
    Sorted by key: PostgreSQL's jsonb keeps no key order, so this is the one order every database shows."""
    return sorted(mapping.items()) if isinstance(mapping, dict) else []


def has_output(sample: RunSample | None) -> bool:
    return sample is not None and sample.status == RunSample.Status.COMPLETED


def best_score(samples: Sequence[RunSample | None]) -> float | None:
    """The row's highest score, or None when no score stands out (all equal, or none).
    A failed sample counts as 0, as in its run's score."""
    scores = {score for score in map(sample_score, samples) if score is not None}
    return max(scores) if len(scores) > 1 else None


def sample_score(sample: RunSample | None) -> float | None:
    if sample is not None and sample.status == RunSample.Status.FAILED:
        return 0.0
    return None if sample is None else sample.score

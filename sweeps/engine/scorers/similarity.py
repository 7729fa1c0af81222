"""Fuzzy similarity of the output to a rendered target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from rapidfuzz import fuzz

from sweeps.engine.scorers.base import Scorer, ScoreResult, SpecOptions, quote
from sweeps.engine.templating import render_template


@dataclass(frozen=True, kw_only=True)
class Similarity(Scorer):
    """Fuzzy similarity (rapidfuzz ratio) to the rendered `value`; passes at `threshold`."""

    options = ("value", "threshold")
    template_keys = {"value": ()}
    value: jinja2.Template
    threshold: float = 0.8

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        threshold = options.number("threshold", 0.8)
        if threshold is not None and not 0 <= threshold <= 1:
            options.error("threshold", f"must be between 0 and 1, got {threshold:g}")
        return {"value": options.template("value", default="{{ expected }}"), "threshold": threshold}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        target = render_template(self.value, variables)
        similarity = fuzz.ratio(output.strip(), target) / 100
        passed = similarity >= self.threshold
        verdict = "reaches" if passed else "is below"
        reason = f"similarity {similarity:.2f} to {quote(target)} {verdict} threshold {self.threshold:g}"
        return ScoreResult(similarity, passed, reason)

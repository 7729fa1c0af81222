"""Scorer types by the spec's `type`, and build_scorer, which turns a spec entry into a Scorer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweeps.engine.errors import SpecError
from sweeps.engine.scorers.base import Scorer, SpecOptions
from sweeps.engine.scorers.json import JsonSchema, JsonValid
from sweeps.engine.scorers.judge import LlmJudge
from sweeps.engine.scorers.python import PythonScorer
from sweeps.engine.scorers.similarity import Similarity
from sweeps.engine.scorers.text import (
    Contains,
    EqualsExpected,
    ExactMatch,
    IContains,
    MaxLength,
    MinLength,
    NotContains,
    Regex,
    StartsWith,
)
from sweeps.engine.scorers.thresholds import Cost, Latency
from sweeps.engine.scorers.tools import ToolCalled

SCORER_TYPES: dict[str, type[Scorer]] = {
    "exact_match": ExactMatch,
    "equals_expected": EqualsExpected,
    "contains": Contains,
    "not_contains": NotContains,
    "icontains": IContains,
    "regex": Regex,
    "starts_with": StartsWith,
    "json_valid": JsonValid,
    "json_schema": JsonSchema,
    "min_length": MinLength,
    "max_length": MaxLength,
    "similarity": Similarity,
    "llm_judge": LlmJudge,
    "python": PythonScorer,
    "latency": Latency,
    "cost": Cost,
    "tool_called": ToolCalled,
}

_COMMON_KEYS = ("type", "name", "weight")
MAX_WEIGHT = 1_000_000  # weighted sums of many samples stay finite


def build_scorer(spec: Mapping[str, Any], path: str) -> Scorer:
    """A ready Scorer from one spec entry; SpecError lists every problem with its field path."""
    if not isinstance(spec, Mapping):
        raise SpecError.at(path, "must be an object with a 'type'")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in SCORER_TYPES:
        problem = "required" if kind is None else f"unknown scorer type {kind!r}"
        type_path = f"{path}.type" if path else "type"
        raise SpecError.at(type_path, f"{problem}; expected one of: {', '.join(sorted(SCORER_TYPES))}")
    scorer_class = SCORER_TYPES[kind].variant(spec)
    options = SpecOptions(spec, path)
    allowed = _COMMON_KEYS + scorer_class.options
    for key in spec:
        if key not in allowed:
            options.error(str(key), f"unknown key; {kind} accepts: {', '.join(allowed)}")
    name = options.text("name", kind)
    weight = options.number("weight", 1.0)
    if weight is not None and weight <= 0:
        options.error("weight", f"must be greater than 0, got {weight:g}")
    elif weight is not None and weight > MAX_WEIGHT:
        options.error("weight", f"must be at most {MAX_WEIGHT:,}, got {weight:g}")
    arguments = scorer_class.parse_options(options)
    if options.errors:
        raise SpecError(options.errors)
    assert weight is not None  # else number() reported why, and the errors were raised
    return scorer_class(name=name, weight=weight, **arguments)

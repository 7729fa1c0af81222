"""latency and cost hold a sample to a threshold on what its pipeline took; json_valid and
json_schema read JSON inside a Markdown code fence, as chat models often answer."""

from __future__ import annotations

import asyncio

import pytest

from sweeps.engine.errors import SpecError
from sweeps.engine.scorers import SampleFacts, ScoreResult, Scoring, build_scorer


async def no_call(*_):
    raise AssertionError("no model call")


def verdict(spec, facts, output="answer"):
    scorer = build_scorer(spec, "scorers[0]")
    return asyncio.run(scorer.ascore(output, {}, Scoring(sample=facts, call=no_call)))


@pytest.mark.parametrize(
    ("latency_ms", "expected"),
    [(1200.4, ScoreResult(1.0, True, "1,200 ms, within 1,500 ms")),
     (1500.0, ScoreResult(1.0, True, "1,500 ms, within 1,500 ms")),
     (1731.0, ScoreResult(0.0, False, "1,731 ms, over 1,500 ms"))],
)  # fmt: skip
def test_latency_passes_at_or_under_its_threshold_in_milliseconds(latency_ms, expected):
    assert verdict({"type": "latency", "threshold": 1500}, SampleFacts(row={}, latency_ms=latency_ms)) == expected


def test_cost_passes_at_or_under_its_threshold_in_dollars():
    spec = {"type": "cost", "threshold": 0.002}
    assert verdict(spec, SampleFacts(row={}, cost_usd=0.0015)) == ScoreResult(1.0, True, "$0.0015, within $0.002")
    assert verdict(spec, SampleFacts(row={}, cost_usd=0.0031)) == ScoreResult(0.0, False, "$0.0031, over $0.002")


@pytest.mark.parametrize("kind", ["latency", "cost"])
def test_a_threshold_is_required_and_not_negative(kind):
    with pytest.raises(SpecError) as missing:
        build_scorer({"type": kind}, "scorers[1]")
    assert [e.path for e in missing.value.errors] == ["scorers[1].threshold"]
    assert missing.value.errors[0].message.startswith("required: the most ")
    with pytest.raises(SpecError, match="must be at least 0, got -1"):
        build_scorer({"type": kind, "threshold": -1}, "scorers[1]")


FENCED = [
    '```json\n{"answer": 4}\n```',
    '```\n{"answer": 4}\n```',
    '  ```JSON\n{"answer": 4}```  \n',
]


@pytest.mark.parametrize("output", FENCED)
def test_json_scorers_read_json_inside_one_code_fence(output):
    schema = {"type": "object", "required": ["answer"]}
    assert build_scorer({"type": "json_valid"}, "s").score(output, {}).passed
    assert build_scorer({"type": "json_schema", "schema": schema}, "s").score(output, {}).passed


@pytest.mark.parametrize(
    "output", ['Sure! ```json\n{"answer": 4}\n```', '```json\n{"answer": 4}\n```\n```json\n{}\n```', "```json\n```"]
)
def test_text_around_a_fence_or_two_fences_are_not_json(output):
    assert not build_scorer({"type": "json_valid"}, "s").score(output, {}).passed

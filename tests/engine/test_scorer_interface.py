"""What the executor, the estimate and spec validation ask every scorer, instead of comparing
scorer types: whether its verdict takes a model call, and which spec keys are templates or
models."""

from __future__ import annotations

import pytest

from sweeps.engine.scorers import SCORER_TYPES, Scoring, build_scorer

SPECS = {
    "exact_match": {"value": "billing"},
    "equals_expected": {},
    "contains": {"value": "bill"},
    "not_contains": {"value": "refund"},
    "icontains": {"value": "BILL"},
    "regex": {"value": "^bill"},
    "starts_with": {"value": "bill"},
    "json_valid": {},
    "json_schema": {"schema": {"type": "string"}},
    "min_length": {"value": 3},
    "max_length": {"value": 30},
    "similarity": {"value": "billing"},
    "llm_judge": {"model": "openai/gpt-4o-mini", "rubric": "Is it right?"},
    "python": {"function": "scorers.examples:label_matches"},
    "latency": {"threshold": 1000},
    "cost": {"threshold": 0.01},
    "tool_called": {"tool": "route"},
}
# A model call, the user's function within its time limit, or the sample's facts
AWAITED_ONLY = ("llm_judge", "python", "latency", "cost", "tool_called")


def test_every_scorer_type_has_a_spec_here():
    assert set(SPECS) == set(SCORER_TYPES)


def test_only_the_judge_calls_a_model_and_names_it_in_model():
    assert [kind for kind, cls in SCORER_TYPES.items() if cls.calls_model] == ["llm_judge"]
    assert {kind: cls.model_keys for kind, cls in SCORER_TYPES.items() if cls.model_keys} == {"llm_judge": ("model",)}


def test_template_keys_are_options_of_their_type_and_only_the_rubric_sees_the_output():
    templated = {kind: dict(cls.template_keys) for kind, cls in SCORER_TYPES.items() if cls.template_keys}
    assert templated == {
        "exact_match": {"value": ()}, "contains": {"value": ()}, "not_contains": {"value": ()},
        "icontains": {"value": ()}, "regex": {"value": ()}, "starts_with": {"value": ()},
        "similarity": {"value": ()}, "llm_judge": {"rubric": ("output",)},
    }  # fmt: skip
    for kind, keys in templated.items():
        assert set(keys) <= set(SCORER_TYPES[kind].options)


@pytest.mark.parametrize("kind", [kind for kind in SCORER_TYPES if kind not in AWAITED_ONLY])
async def test_a_scorer_without_a_model_gives_the_same_verdict_through_ascore_and_calls_nothing(kind):
    scorer = build_scorer({"type": kind, **SPECS[kind]}, "scorers[0]")

    async def call(model, messages, params):
        raise AssertionError(f"{kind} called {model}")

    verdict = await scorer.ascore("billing", {"expected": "billing"}, Scoring(call=call))
    assert verdict == scorer.score("billing", {"expected": "billing"})


@pytest.mark.parametrize("kind", AWAITED_ONLY)
def test_the_judge_and_python_scorers_give_no_verdict_outside_ascore(kind):
    scorer = build_scorer({"type": kind, **SPECS[kind]}, "scorers[0]")
    with pytest.raises(TypeError, match="needs a model call|through ascore"):
        scorer.score("billing", {})

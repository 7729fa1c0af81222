"""similarity with `method: embedding`: its spec, and the cosine of the embeddings it asks for."""

from __future__ import annotations

import asyncio

import pytest

from sweeps.engine.errors import SpecError
from sweeps.engine.scorers import ScoreResult, Scoring, build_scorer

SPEC = {"type": "similarity", "method": "embedding", "model": "openai/text-embedding-3-small", "threshold": 0.8}


def problems(spec) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        build_scorer(spec, "scorers[0]")
    return {error.path: error.message for error in caught.value.errors}


def test_the_embedding_method_needs_an_embedding_model_and_fuzzy_takes_none():
    assert problems({"type": "similarity", "method": "embedding"}) == {
        "scorers[0].model": "required: provider/model of an embedding model, e.g. openai/text-embedding-3-small; "
        "got None"
    }
    assert problems({"type": "similarity", "model": "openai/x"}) == {
        "scorers[0].model": "only method: embedding calls a model"
    }
    assert (
        "must be one of: fuzzy, embedding" in problems({"type": "similarity", "method": "meaning"})["scorers[0].method"]
    )


def test_it_calls_a_model_and_names_it_for_validation():
    scorer = build_scorer(SPEC, "scorers[0]")
    assert scorer.calls_model and scorer.model_keys == ("model",)
    assert not build_scorer({"type": "similarity"}, "scorers[0]").calls_model


def score(output, vectors, **options):
    asked = []

    async def embed(model, texts):
        asked.append((model, texts))
        return vectors

    async def no_call(*_):
        raise AssertionError("no chat call")

    scorer = build_scorer({**SPEC, **options}, "scorers[0]")
    return asyncio.run(scorer.ascore(output, {"expected": "billing"}, Scoring(call=no_call, embed=embed))), asked


def test_the_cosine_of_output_and_target_is_the_score():
    result, asked = score("  billing issue ", [[1.0, 0.0], [0.6, 0.8]])
    assert asked == [("openai/text-embedding-3-small", ("billing issue", "billing"))]
    assert result == ScoreResult(0.6, False, "cosine similarity 0.60 to 'billing' is below threshold 0.8")
    result, _ = score("x", [[1.0, 0.0], [0.6, 0.8]], threshold=0.5, value="{{ expected }} team")
    assert result.passed and result.reason.endswith("to 'billing team' reaches threshold 0.5")


def test_opposite_meanings_score_0_not_below():
    result, _ = score("x", [[1.0, 0.0], [-1.0, 0.0]])
    assert result.value == 0.0


def test_vectors_of_different_sizes_are_an_error_the_executor_reports():
    with pytest.raises(ValueError, match="the embeddings have 2 and 3 dimensions"):
        score("x", [[1.0, 0.0], [1.0, 0.0, 0.0]])

"""The llm_judge scorer: its spec, the prompt it sends, and how it reads the verdict."""

from __future__ import annotations

import pytest

from sweeps.engine.errors import SpecError
from sweeps.engine.scorers import JUDGE_INSTRUCTIONS, ScoreResult, Scoring, build_scorer


def judge(**options):
    return build_scorer(
        {"type": "llm_judge", "model": "openai/gpt-4o-mini", "rubric": "Is it polite?", **options}, "scorers[0]"
    )


async def ask(scorer, output, variables, answer):
    sent = []

    async def call(model, messages, params):
        sent.append((model, messages, params))
        return answer

    return await scorer.ascore(output, variables, Scoring(call=call)), sent


async def test_sends_the_rubric_with_row_variables_and_the_output_to_the_judge_model():
    scorer = judge(rubric="Expected {{ expected }}; got {{ output }}. Grade it.", params={"temperature": 0.1})
    result, [(model, messages, params)] = await ask(
        scorer, "billing", {"expected": "billing"}, '{"score": 1, "reason": "exact"}'
    )

    assert result == ScoreResult(1.0, True, "exact")
    assert model == "openai/gpt-4o-mini" and params == {"temperature": 0.1}
    assert messages[0] == {"role": "system", "content": JUDGE_INSTRUCTIONS["score"]}
    assert messages[1] == {"role": "user", "content": "Expected billing; got billing. Grade it."}


async def test_appends_the_output_when_the_rubric_does_not_place_it():
    _, [(_, messages, params)] = await ask(judge(), "thanks a lot", {}, '{"score": 0.9, "reason": "kind"}')
    assert messages[1]["content"] == "Is it polite?\n\nThe output to grade:\nthanks a lot"
    assert params == {"temperature": 0}  # deterministic judging by default


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"score": 0.8, "reason": "mostly"}', ScoreResult(0.8, True, "mostly")),
        ('Here you go:\n```json\n{"score": 0.2, "reason": "rude"}\n```', ScoreResult(0.2, False, "rude")),
        ('{"score": 0.5}', ScoreResult(0.5, True, "no reason given")),  # threshold 0.5 passes
    ],
)
def test_reads_a_score_verdict(answer, expected):
    assert judge().verdict(answer) == expected


def test_threshold_decides_passed():
    assert judge(threshold=0.9).verdict('{"score": 0.8, "reason": "r"}').passed is False


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"verdict": "PASS", "reason": "ok"}', ScoreResult(1.0, True, "ok")),
        ('{"verdict": "fail", "reason": "no"}', ScoreResult(0.0, False, "no")),
    ],
)
def test_reads_a_pass_fail_verdict(answer, expected):
    assert judge(scale="pass_fail").verdict(answer) == expected


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("I think it is fine", "unparseable verdict"),
        ('{"score": 7, "reason": "great"}', "expected a score from 0 to 1"),
        ('{"score": "high"}', "expected a score from 0 to 1"),
        ("{not json}", "unparseable verdict"),
    ],
)
def test_an_unparseable_verdict_is_an_error_naming_the_answer(answer, problem):
    with pytest.raises(ValueError, match=problem):
        judge().verdict(answer)


def test_pass_fail_needs_pass_or_fail():
    with pytest.raises(ValueError, match="expected pass or fail"):
        judge(scale="pass_fail").verdict('{"verdict": "maybe"}')


def test_spec_errors_name_each_field():
    with pytest.raises(SpecError) as e:
        build_scorer({"type": "llm_judge", "model": "gpt-4o", "rubric": "{{ broken", "scale": "stars",
                      "threshold": 1.5, "params": [1]}, "scorers[1]")  # fmt: skip
    paths = sorted(err.path for err in e.value.errors)
    assert paths == [
        "scorers[1].model",
        "scorers[1].params",
        "scorers[1].rubric",
        "scorers[1].scale",
        "scorers[1].threshold",
    ]


def test_the_plain_score_path_refuses_to_run_without_a_model_call():
    with pytest.raises(TypeError, match="needs a model call"):
        judge().evaluate("x", {})

from __future__ import annotations

import pytest

from sweeps.engine import templating
from sweeps.engine.errors import SpecError
from sweeps.engine.scorers import SCORER_TYPES, ScoreResult, build_scorer, weighted_mean
from sweeps.engine.scorers import base as scorer_base

ROW = {"ticket": "I was charged twice", "expected": "billing"}


def score(spec: dict, output: str, variables: dict | None = None) -> ScoreResult:
    return build_scorer(spec, "scorers[0]").score(output, ROW if variables is None else variables)


def spec_errors(spec: object, path: str = "scorers[0]") -> list[str]:
    with pytest.raises(SpecError) as caught:
        build_scorer(spec, path)
    return [str(error) for error in caught.value.errors]


# --- every scorer type: a passing and a failing case, with its reason -------------------------

CASES = [
    # (spec, output, passed, reason)
    ({"type": "exact_match", "value": "billing"}, "  billing\n", True, "output equals 'billing'"),
    ({"type": "exact_match", "value": "billing"}, "billing issue", False, "output does not equal 'billing'"),
    ({"type": "equals_expected"}, "billing ", True, "output equals 'billing'"),
    ({"type": "equals_expected"}, "Billing", False, "output does not equal 'billing'"),
    ({"type": "equals_expected", "ignore_case": True}, "BILLING", True, "output equals 'billing'"),
    (
        {"type": "equals_expected", "field": "ticket"},
        "I was charged twice",
        True,
        "output equals 'I was charged twice'",
    ),
    ({"type": "equals_expected", "field": "label"}, "billing", False, "row has no 'label' value"),
    ({"type": "contains", "value": "bill"}, "a billing issue", True, "output contains 'bill'"),
    ({"type": "contains", "value": "bill"}, "a Billing issue", False, "output does not contain 'bill'"),
    ({"type": "not_contains", "value": "sorry"}, "Fixed.", True, "output does not contain 'sorry'"),
    ({"type": "not_contains", "value": "sorry"}, "I am sorry", False, "output contains 'sorry'"),
    ({"type": "icontains", "value": "Bill"}, "BILLING", True, "output contains (ignoring case) 'Bill'"),
    ({"type": "icontains", "value": "Bill"}, "shipping", False, "output does not contain (ignoring case) 'Bill'"),
    ({"type": "regex", "value": r"^bill\w+$"}, "billing", True, r"output matches /^bill\w+$/"),
    ({"type": "regex", "value": r"^bill\w+$"}, "BILLING", False, r"output does not match /^bill\w+$/"),
    ({"type": "regex", "value": r"^bill\w+$", "flags": "i"}, "BILLING", True, r"output matches /^bill\w+$/"),
    ({"type": "regex", "value": "a.b", "flags": "s"}, "a\nb", True, "output matches /a.b/"),
    ({"type": "regex", "value": "^b$", "flags": "m"}, "a\nb", True, "output matches /^b$/"),
    ({"type": "starts_with", "value": "Label:"}, "  Label: billing", True, "output starts with 'Label:'"),
    ({"type": "starts_with", "value": "Label:"}, "The Label: billing", False, "output does not start with 'Label:'"),
    ({"type": "json_valid"}, '{"answer": 1}', True, "output is valid JSON"),
    (
        {"type": "json_valid"},
        "{answer: 1}",
        False,
        "output is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ),
    ({"type": "min_length", "value": 3, "unit": "words"}, "one two three", True, "3 words, at least 3"),
    ({"type": "min_length", "value": 3, "unit": "words"}, "one two", False, "2 words, fewer than 3"),
    ({"type": "min_length", "value": 5}, "  abcd  ", False, "4 chars, fewer than 5"),
    ({"type": "max_length", "value": 5}, " abcde\n", True, "5 chars, at most 5"),
    ({"type": "max_length", "value": 5}, "abcdef", False, "6 chars, more than 5"),
    ({"type": "max_length", "value": 1, "unit": "words"}, "two words", False, "2 words, more than 1"),
]


@pytest.mark.parametrize(("spec", "output", "passed", "reason"), CASES)
def test_scorer_verdicts(spec, output, passed, reason):
    result = score(spec, output)
    assert result == ScoreResult(1.0 if passed else 0.0, passed, reason)


def test_every_contract_scorer_type_is_registered():
    assert set(SCORER_TYPES) == {
        "exact_match", "equals_expected", "contains", "not_contains", "icontains", "regex", "starts_with",
        "json_valid", "json_schema", "min_length", "max_length", "similarity", "llm_judge", "python", "latency",
        "cost", "tool_called",
    }  # fmt: skip


SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
}


def test_json_schema_passes_matching_output():
    assert score({"type": "json_schema", "schema": SCHEMA}, '{"answer": 42}') == ScoreResult(
        1.0, True, "output matches the schema"
    )


def test_json_schema_names_where_the_output_does_not_match():
    result = score({"type": "json_schema", "schema": SCHEMA}, '{"answer": "forty-two"}')
    assert result == ScoreResult(
        0.0, False, "output does not match the schema at $.answer: 'forty-two' is not of type 'integer'"
    )


def test_json_schema_fails_output_that_is_not_json():
    result = score({"type": "json_schema", "schema": SCHEMA}, "answer: 42")
    assert not result.passed
    assert result.reason.startswith("output is not valid JSON: ")


def test_json_schema_uses_draft_2020_12():
    # prefixItems exists only since draft 2020-12.
    spec = {"type": "json_schema", "schema": {"type": "array", "prefixItems": [{"type": "string"}]}}
    assert score(spec, '["ok"]').passed
    assert not score(spec, "[1]").passed


def test_similarity_is_graded_and_defaults_to_the_expected_column():
    exact = score({"type": "similarity"}, "billing")
    assert exact == ScoreResult(1.0, True, "similarity 1.00 to 'billing' reaches threshold 0.8")
    close = score({"type": "similarity"}, "biling")
    assert 0.8 < close.value < 1.0
    assert close.passed


def test_similarity_threshold_decides_pass_but_not_value():
    at_threshold = score({"type": "similarity", "value": "billing", "threshold": 0.9}, "biling")
    below = score({"type": "similarity", "value": "billing", "threshold": 0.95}, "biling")
    assert at_threshold.passed
    assert below == ScoreResult(pytest.approx(12 / 13), False, "similarity 0.92 to 'billing' is below threshold 0.95")
    assert at_threshold.value == below.value


# --- templated values -------------------------------------------------------------------------


def test_value_is_rendered_with_each_rows_variables():
    scorer = build_scorer({"type": "contains", "value": "{{ expected }}"}, "scorers[0]")
    assert scorer.score("a billing issue", {"expected": "billing"}).passed
    assert scorer.score("a billing issue", {"expected": "shipping"}) == ScoreResult(
        0.0, False, "output does not contain 'shipping'"
    )


def test_value_can_use_stage_outputs_and_filters():
    scorer = build_scorer({"type": "exact_match", "value": "{{ summarize | upper }}"}, "scorers[0]")
    assert scorer.score("SHORT", {"summarize": "short"}).passed


def test_regex_value_can_depend_on_the_row():
    scorer = build_scorer({"type": "regex", "value": "^{{ expected }}$", "flags": "i"}, "scorers[0]")
    assert scorer.score("Billing", {"expected": "billing"}).passed
    assert not scorer.score("Billing", {"expected": "shipping"}).passed


def test_regex_rendered_invalid_for_a_row_scores_zero_with_the_reason():
    scorer = build_scorer({"type": "regex", "value": "{{ expected }}"}, "scorers[0]")
    result = scorer.score("anything", {"expected": "(unclosed"})
    assert result.value == 0.0
    assert not result.passed
    assert result.reason.startswith("invalid regular expression '(unclosed': missing )")


def test_template_failing_on_a_row_scores_zero_with_the_reason():
    scorer = build_scorer({"type": "contains", "value": "{{ expected }}"}, "scorers[0]")
    assert scorer.score("billing", {"ticket": "x"}) == ScoreResult(
        0.0, False, "value template failed: 'expected' is undefined"
    )


def test_numeric_value_is_compared_as_text():
    assert score({"type": "exact_match", "value": 42}, "42\n").passed


def test_scoring_never_compiles_templates(monkeypatch):
    scorer = build_scorer({"type": "contains", "value": "{{ expected }}"}, "scorers[0]")

    def refuse(source: str) -> None:
        raise AssertionError(f"compiled {source!r} while scoring")

    monkeypatch.setattr(templating, "compile_template", refuse)
    monkeypatch.setattr(scorer_base, "compile_template", refuse)
    assert scorer.score("billing", ROW).passed


# --- name, weight, weighted_mean --------------------------------------------------------------


def test_name_defaults_to_type_and_weight_to_one():
    scorer = build_scorer({"type": "json_valid"}, "scorers[0]")
    assert (scorer.name, scorer.weight) == ("json_valid", 1.0)


def test_name_and_weight_from_spec():
    scorer = build_scorer({"type": "contains", "value": "x", "name": "mentions x", "weight": 2}, "scorers[0]")
    assert (scorer.name, scorer.weight) == ("mentions x", 2.0)


def test_weighted_mean_weights_each_value():
    assert weighted_mean([(1.0, 2.0), (0.0, 1.0)]) == pytest.approx(2 / 3)


def test_weighted_mean_accepts_a_generator():
    scorers = [
        build_scorer({"type": "contains", "value": "bill", "weight": 3}, "scorers[0]"),
        build_scorer({"type": "max_length", "value": 3}, "scorers[1]"),
    ]
    pairs = ((scorer.score("billing", ROW).value, scorer.weight) for scorer in scorers)
    assert weighted_mean(pairs) == pytest.approx(0.75)


def test_weighted_mean_of_nothing_is_none():
    assert weighted_mean([]) is None


# --- spec errors, each with its field path ---------------------------------------------------


def test_unknown_type_names_the_allowed_types():
    [error] = spec_errors({"type": "contain", "value": "x"}, "scorers[2]")
    assert error == (
        "scorers[2].type: unknown scorer type 'contain'; expected one of: contains, cost, equals_expected, "
        "exact_match, icontains, json_schema, json_valid, latency, llm_judge, max_length, min_length, not_contains, "
        "python, regex, similarity, starts_with, tool_called"
    )


def test_missing_type_is_required():
    [error] = spec_errors({"value": "x"})
    assert error.startswith("scorers[0].type: required; expected one of: contains, ")


def test_spec_must_be_an_object():
    assert spec_errors("contains") == ["scorers[0]: must be an object with a 'type'"]


def test_bad_regex_is_refused_at_build():
    [error] = spec_errors({"type": "regex", "value": "(unclosed"})
    assert error.startswith("scorers[0].value: invalid regular expression: missing ), unterminated subpattern")


def test_unknown_regex_flag_is_refused():
    assert spec_errors({"type": "regex", "value": "x", "flags": "iq"}) == [
        "scorers[0].flags: must be letters from: i, m, s; got 'iq'"
    ]


def test_invalid_json_schema_is_refused():
    assert spec_errors({"type": "json_schema", "schema": {"type": "strng"}}) == [
        "scorers[0].schema: invalid JSON schema at $.type: 'strng' is not valid under any of the given schemas"
    ]


def test_json_schema_requires_a_schema():
    assert spec_errors({"type": "json_schema"}) == ["scorers[0].schema: required: a JSON schema object"]


@pytest.mark.parametrize("kind", ["exact_match", "contains", "not_contains", "icontains", "regex", "starts_with"])
def test_missing_value_is_refused(kind):
    assert spec_errors({"type": kind}) == ["scorers[0].value: required"]


def test_length_scorers_need_a_whole_number():
    assert spec_errors({"type": "max_length"}) == ["scorers[0].value: required"]
    assert spec_errors({"type": "min_length", "value": "ten"}) == [
        "scorers[0].value: must be a whole number >= 0, got 'ten'"
    ]
    assert spec_errors({"type": "min_length", "value": -1}) == ["scorers[0].value: must be a whole number >= 0, got -1"]


def test_unknown_length_unit_is_refused():
    assert spec_errors({"type": "max_length", "value": 3, "unit": "lines"}) == [
        "scorers[0].unit: must be one of: chars, words; got 'lines'"
    ]


def test_empty_or_non_text_value_is_refused():
    assert spec_errors({"type": "contains", "value": ""}) == ["scorers[0].value: must not be empty"]
    assert spec_errors({"type": "contains", "value": ["a"]}) == ["scorers[0].value: must be a string, got list"]


def test_bad_template_in_value_is_refused_with_its_line():
    assert spec_errors({"type": "contains", "value": "{{ expected } }}"}) == [
        "scorers[0].value: invalid template: line 1: unexpected '}'"
    ]


def test_unsafe_template_in_value_scores_zero():
    scorer = build_scorer({"type": "contains", "value": "{{ ''.__class__ }}"}, "scorers[0]")
    result = scorer.score("anything", ROW)
    assert not result.passed
    assert result.reason.startswith("value template failed: unsafe template: ")


@pytest.mark.parametrize("weight", [0, -1])
def test_weight_must_be_positive(weight):
    assert spec_errors({"type": "json_valid", "weight": weight}) == [
        f"scorers[0].weight: must be greater than 0, got {weight}"
    ]


def test_weight_must_be_a_number():
    assert spec_errors({"type": "json_valid", "weight": "heavy"}) == [
        "scorers[0].weight: must be a number, got 'heavy'"
    ]
    assert spec_errors({"type": "json_valid", "weight": True}) == ["scorers[0].weight: must be a number, got True"]


def test_unknown_key_is_refused_with_the_accepted_keys():
    assert spec_errors({"type": "contains", "value": "x", "treshold": 0.5}) == [
        "scorers[0].treshold: unknown key; contains accepts: type, name, weight, value"
    ]


def test_key_of_another_type_is_unknown():
    assert spec_errors({"type": "equals_expected", "value": "billing"}) == [
        "scorers[0].value: unknown key; equals_expected accepts: type, name, weight, field, ignore_case"
    ]


def test_similarity_threshold_must_be_a_fraction():
    assert spec_errors({"type": "similarity", "threshold": 80}) == [
        "scorers[0].threshold: must be between 0 and 1, got 80"
    ]


def test_equals_expected_options_are_typed():
    assert spec_errors({"type": "equals_expected", "field": "", "ignore_case": "yes"}) == [
        "scorers[0].field: must be a non-empty string, got ''",
        "scorers[0].ignore_case: must be true or false, got 'yes'",
    ]


def test_every_problem_is_reported_at_once():
    errors = spec_errors({"type": "regex", "value": "(", "weight": 0, "name": "", "extra": 1}, "scorers[4]")
    assert [error.split(":")[0] for error in errors] == [
        "scorers[4].extra",
        "scorers[4].name",
        "scorers[4].weight",
        "scorers[4].value",
    ]

"""Scorers: each rates one output of one dataset row with a value in 0..1.

A spec entry such as `{type: contains, value: "{{ expected }}", weight: 2}` becomes a
Scorer through build_scorer, which checks everything up front (templates compiled,
regexes and JSON schemas validated) so a sweep never stops halfway on a bad scorer.
String `value`s are templates rendered with the row's variables (dataset columns and
stage outputs); when that fails for a row, the scorer gives it 0 and says why.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import jinja2
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from rapidfuzz import fuzz

from sweeps.engine.errors import FieldError, SpecError
from sweeps.engine.templating import (
    TemplateError,
    compile_template,
    limit_error,
    render_template,
    template_variables,
)


@dataclass(frozen=True)
class ScoreResult:
    value: float  # 0..1
    passed: bool
    reason: str


def weighted_mean(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Mean of (value, weight) pairs; None when there is nothing to average."""
    total_weight = weighted_sum = 0.0
    for value, weight in pairs:
        total_weight += weight
        weighted_sum += value * weight
    return weighted_sum / total_weight if total_weight > 0 else None


class _Options:
    """Reads one scorer spec, collecting every problem with its field path."""

    def __init__(self, spec: Mapping[str, Any], path: str) -> None:
        self.spec = spec
        self.path = path
        self.errors: list[FieldError] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(FieldError(f"{self.path}.{key}" if self.path else key, message))

    def template(self, key: str, default: str | None = None) -> jinja2.Template | None:
        raw = self.spec.get(key, default)
        if raw is None:
            self.error(key, "required")
        elif isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            self.error(key, f"must be a string, got {type(raw).__name__}")
        elif raw == "":
            self.error(key, "must not be empty")
        else:
            try:
                template = compile_template(str(raw))  # YAML turns `value: 42` into a number
            except TemplateError as exc:
                self.error(key, f"invalid template: {exc}")
            else:
                if bomb := limit_error(template):
                    self.error(key, bomb)
                    return None
                return template
        return None

    def text(self, key: str, default: str) -> str:
        raw = self.spec.get(key, default)
        if not isinstance(raw, str) or not raw:
            self.error(key, f"must be a non-empty string, got {raw!r}")
        return raw

    def number(self, key: str, default: float) -> float | None:
        raw = self.spec.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            self.error(key, f"must be a number, got {raw!r}")
            return None
        if not math.isfinite(raw):
            self.error(key, f"must be a finite number, got {raw!r}")
            return None
        return float(raw)

    def count(self, key: str) -> int | None:
        raw = self.spec.get(key)
        if raw is None:
            self.error(key, "required")
        elif isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            self.error(key, f"must be a whole number >= 0, got {raw!r}")
        else:
            return raw
        return None

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.spec.get(key, default)
        if not isinstance(raw, bool):
            self.error(key, f"must be true or false, got {raw!r}")
        return raw

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.spec.get(key, default)
        if raw not in allowed:
            self.error(key, f"must be one of: {', '.join(allowed)}; got {raw!r}")
        return raw


def _verdict(passed: bool, reason: str) -> ScoreResult:
    """The result of a pass/fail check, which scores 1 or 0."""
    return ScoreResult(1.0 if passed else 0.0, passed, reason)


def _quote(text: str, limit: int = 80) -> str:
    """repr() of text, shortened so a reason stays readable."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


@dataclass(frozen=True, kw_only=True)
class Scorer(ABC):
    """Rates outputs. `score` never raises on row data; a 0 comes with its reason instead."""

    name: str
    weight: float = 1.0
    options: ClassVar[tuple[str, ...]] = ()  # spec keys of this type besides type, name, weight

    @classmethod
    def parse_options(cls, options: _Options) -> dict[str, Any]:
        """Constructor arguments of this type, read from its spec options."""
        return {}

    def score(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        try:
            return self.evaluate(output, variables)
        except TemplateError as exc:
            return ScoreResult(0.0, False, f"value template failed: {exc}")

    @abstractmethod
    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult: ...


@dataclass(frozen=True, kw_only=True)
class _TextCheck(Scorer):
    """Compares the output with the rendered `value` template."""

    options = ("value",)
    passed_as: ClassVar[str]  # reason wording, e.g. "contains" / "does not contain"
    failed_as: ClassVar[str]
    value: jinja2.Template

    @classmethod
    def parse_options(cls, options: _Options) -> dict[str, Any]:
        return {"value": options.template("value")}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        expected = render_template(self.value, variables)
        passed = self.check(output, expected)
        return _verdict(passed, f"output {self.passed_as if passed else self.failed_as} {_quote(expected)}")

    @abstractmethod
    def check(self, output: str, expected: str) -> bool: ...


class ExactMatch(_TextCheck):
    passed_as, failed_as = "equals", "does not equal"

    def check(self, output: str, expected: str) -> bool:
        return output.strip() == expected


class Contains(_TextCheck):
    passed_as, failed_as = "contains", "does not contain"

    def check(self, output: str, expected: str) -> bool:
        return expected in output


class NotContains(_TextCheck):
    passed_as, failed_as = "does not contain", "contains"

    def check(self, output: str, expected: str) -> bool:
        return expected not in output


class IContains(_TextCheck):
    passed_as, failed_as = "contains (ignoring case)", "does not contain (ignoring case)"

    def check(self, output: str, expected: str) -> bool:
        return expected.casefold() in output.casefold()


class StartsWith(_TextCheck):
    passed_as, failed_as = "starts with", "does not start with"

    def check(self, output: str, expected: str) -> bool:
        return output.lstrip().startswith(expected)


@dataclass(frozen=True, kw_only=True)
class EqualsExpected(Scorer):
    """The output equals the row's expected answer (a dataset column, `expected` by default)."""

    options = ("field", "ignore_case")
    field: str = "expected"
    ignore_case: bool = False

    @classmethod
    def parse_options(cls, options: _Options) -> dict[str, Any]:
        return {
            "field": options.text("field", "expected"),
            "ignore_case": options.boolean("ignore_case", False),
        }

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        if self.field not in variables:
            return _verdict(False, f"row has no {self.field!r} value")
        expected, got = str(variables[self.field]).strip(), output.strip()
        if self.ignore_case:
            passed = got.casefold() == expected.casefold()
        else:
            passed = got == expected
        return _verdict(passed, f"output {'equals' if passed else 'does not equal'} {_quote(expected)}")


_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


@dataclass(frozen=True, kw_only=True)
class Regex(Scorer):
    """re.search of the rendered `value` in the output; `flags` letters from i, m, s."""

    options = ("value", "flags")
    value: jinja2.Template
    flags: int = 0

    @classmethod
    def parse_options(cls, options: _Options) -> dict[str, Any]:
        value = options.template("value")
        letters = options.spec.get("flags", "")
        flags = 0
        if isinstance(letters, str) and set(letters) <= _REGEX_FLAGS.keys():
            for letter in letters:
                flags |= _REGEX_FLAGS[letter]
        else:
            options.error("flags", f"must be letters from: {', '.join(_REGEX_FLAGS)}; got {letters!r}")
        if value is not None:
            cls._check_fixed_pattern(value, flags, options)
        return {"value": value, "flags": flags}

    @staticmethod
    def _check_fixed_pattern(value: jinja2.Template, flags: int, options: _Options) -> None:
        """Refuse a bad regex now, unless the pattern depends on the row (checked per row then)."""
        try:
            pattern = render_template(value, {})
        except TemplateError:
            return
        try:
            re.compile(pattern, flags)
        except re.error as exc:
            options.error("value", f"invalid regular expression: {exc}")

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        pattern = render_template(self.value, variables)
        try:
            found = re.search(pattern, output, self.flags)  # `re` caches compiled patterns
        except re.error as exc:
            return _verdict(False, f"invalid regular expression {_quote(pattern)}: {exc}")
        return _verdict(found is not None, f"output {'matches' if found else 'does not match'} /{pattern}/")


class JsonValid(Scorer):
    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        try:
            json.loads(output)
        except ValueError as exc:
            return _verdict(False, f"output is not valid JSON: {exc}")
        return _verdict(True, "output is valid JSON")


@dataclass(frozen=True, kw_only=True)
class JsonSchema(Scorer):
    """The output is JSON matching `schema` (JSON Schema draft 2020-12)."""

    options = ("schema",)
    validator: Draft202012Validator

    @classmethod
    def parse_options(cls, options: _Options) -> dict[str, Any]:
        schema = options.spec.get("schema")
        if not isinstance(schema, (Mapping, bool)):
            options.error("schema", "required: a JSON schema object")
            return {}
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            options.error("schema", f"invalid JSON schema at {exc.json_path}: {exc.message}")
            return {}
        return {"validator": Draft202012Validator(schema)}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        try:
            document = json.loads(output)
        except ValueError as exc:
            return _verdict(False, f"output is not valid JSON: {exc}")
        error = best_match(self.validator.iter_errors(document))
        if error is None:
            return _verdict(True, "output matches the schema")
        return _verdict(False, f"output does not match the schema at {error.json_path}: {error.message}")


@dataclass(frozen=True, kw_only=True)
class _LengthCheck(Scorer):
    """Bounds the stripped output's length, counted in `unit`s (chars or words)."""

    options = ("value", "unit")
    passed_as: ClassVar[str]
    failed_as: ClassVar[str]
    value: int
    unit: str = "chars"

    @classmethod
    def parse_options(cls, options: _Options) -> dict[str, Any]:
        return {"value": options.count("value"), "unit": options.choice("unit", ("chars", "words"), "chars")}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        text = output.strip()
        length = len(text.split()) if self.unit == "words" else len(text)
        passed = self.within(length)
        return _verdict(passed, f"{length} {self.unit}, {self.passed_as if passed else self.failed_as} {self.value}")

    @abstractmethod
    def within(self, length: int) -> bool: ...


class MinLength(_LengthCheck):
    passed_as, failed_as = "at least", "fewer than"

    def within(self, length: int) -> bool:
        return length >= self.value


class MaxLength(_LengthCheck):
    passed_as, failed_as = "at most", "more than"

    def within(self, length: int) -> bool:
        return length <= self.value


@dataclass(frozen=True, kw_only=True)
class Similarity(Scorer):
    """Fuzzy similarity (rapidfuzz ratio) to the rendered `value`; passes at `threshold`."""

    options = ("value", "threshold")
    value: jinja2.Template
    threshold: float = 0.8

    @classmethod
    def parse_options(cls, options: _Options) -> dict[str, Any]:
        threshold = options.number("threshold", 0.8)
        if threshold is not None and not 0 <= threshold <= 1:
            options.error("threshold", f"must be between 0 and 1, got {threshold:g}")
        return {"value": options.template("value", default="{{ expected }}"), "threshold": threshold}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        target = render_template(self.value, variables)
        similarity = fuzz.ratio(output.strip(), target) / 100
        passed = similarity >= self.threshold
        verdict = "reaches" if passed else "is below"
        reason = f"similarity {similarity:.2f} to {_quote(target)} {verdict} threshold {self.threshold:g}"
        return ScoreResult(similarity, passed, reason)


JUDGE_INSTRUCTIONS = {
    "score": 'You grade the output of another model against a rubric. Answer with JSON only: '
    '{"score": <a number from 0 to 1>, "reason": "<one sentence>"}',
    "pass_fail": 'You grade the output of another model against a rubric. Answer with JSON only: '
    '{"verdict": "pass" or "fail", "reason": "<one sentence>"}',
}
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class LlmJudge(Scorer):
    """Asks a model (any provider) to grade the output against a rubric.

    The executor makes the judge's call like any other (cache, budget, retries) and calls
    `ascore`; an unparseable answer raises ValueError, which scores 0 with the reason."""

    options = ("model", "rubric", "scale", "threshold", "params")
    judge_model: str
    rubric: jinja2.Template
    appends_output: bool  # the rubric does not place {{ output }} itself
    scale: str
    threshold: float
    params: Mapping[str, Any]

    @classmethod
    def parse_options(cls, options: _Options) -> dict[str, Any]:
        model = options.spec.get("model")
        if not isinstance(model, str) or "/" not in model.strip("/"):
            options.error("model", f"must be provider/model, e.g. openai/gpt-4o-mini; got {model!r}")
        threshold = options.number("threshold", 0.5)
        if threshold is not None and not 0 <= threshold <= 1:
            options.error("threshold", f"must be between 0 and 1, got {threshold:g}")
        params = options.spec.get("params", {"temperature": 0})
        if not isinstance(params, Mapping):
            options.error("params", "must be an object of sampling parameters")
        rubric = options.template("rubric")
        source = str(options.spec.get("rubric", ""))
        return {
            "judge_model": model, "rubric": rubric, "threshold": threshold, "params": params,
            "scale": options.choice("scale", ("score", "pass_fail"), "score"),
            "appends_output": rubric is not None and "output" not in template_variables(source),
        }  # fmt: skip

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        raise TypeError("llm_judge needs a model call: the executor runs it through ascore")

    async def ascore(self, output: str, variables: Mapping[str, Any], call: Any) -> ScoreResult:
        rubric = render_template(self.rubric, {**variables, "output": output})
        if self.appends_output:
            rubric += f"\n\nThe output to grade:\n{output}"
        messages = ({"role": "system", "content": JUDGE_INSTRUCTIONS[self.scale]}, {"role": "user", "content": rubric})
        answer = await call(self.judge_model, messages, self.params)
        return self.verdict(answer)

    def verdict(self, answer: str) -> ScoreResult:
        match = _JSON_OBJECT.search(answer)
        try:
            data = json.loads(match.group(0)) if match else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise ValueError(f"unparseable verdict {_quote(answer)}")
        reason = str(data.get("reason", "")).strip() or "no reason given"
        if self.scale == "pass_fail":
            verdict = str(data.get("verdict", "")).strip().lower()
            if verdict not in ("pass", "fail"):
                raise ValueError(f"unparseable verdict {_quote(answer)}: expected pass or fail")
            return _verdict(verdict == "pass", reason)
        value = data.get("score")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"unparseable verdict {_quote(answer)}: expected a score from 0 to 1")
        return ScoreResult(float(value), value >= self.threshold, reason)


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
    scorer_class = SCORER_TYPES[kind]
    options = _Options(spec, path)
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
    return scorer_class(name=name, weight=weight, **arguments)

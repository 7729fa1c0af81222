"""The LLM judge: a scorer whose verdict is a model's grading of the output against a rubric."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from sweeps.engine.scorers.base import Scorer, ScoreResult, Scoring, SpecOptions, quote, verdict
from sweeps.engine.templating import render_template, template_variables

JUDGE_INSTRUCTIONS = {
    "score": "You grade the output of another model against a rubric. Answer with JSON only: "
    '{"score": <a number from 0 to 1>, "reason": "<one sentence>"}',
    "pass_fail": "You grade the output of another model against a rubric. Answer with JSON only: "
    '{"verdict": "pass" or "fail", "reason": "<one sentence>"}',
}
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class LlmJudge(Scorer):
    """Asks a model (any provider) to grade the output against a rubric.

    The executor makes the judge's call like any other (cache, budget, retries) and calls
    `ascore`; an unparseable answer raises ValueError, which scores 0 with the reason."""

    options = ("model", "rubric", "scale", "threshold", "params")
    template_keys = {"rubric": ("output",)}  # `output`: the final answer, what the judge grades
    calls_model = True
    model_keys = ("model",)
    judge_model: str
    rubric: jinja2.Template
    appends_output: bool  # the rubric does not place {{ output }} itself
    scale: str
    threshold: float
    params: Mapping[str, Any]

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
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

    async def ascore(self, output: str, variables: Mapping[str, Any], scoring: Scoring) -> ScoreResult:
        rubric = render_template(self.rubric, {**variables, "output": output})
        if self.appends_output:
            rubric += f"\n\nThe output to grade:\n{output}"
        messages = ({"role": "system", "content": JUDGE_INSTRUCTIONS[self.scale]}, {"role": "user", "content": rubric})
        answer = await scoring.call(self.judge_model, messages, self.params)
        return self.verdict(answer)

    def verdict(self, answer: str) -> ScoreResult:
        match = _JSON_OBJECT.search(answer)
        try:
            data = json.loads(match.group(0)) if match else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise ValueError(f"unparseable verdict {quote(answer)}")
        reason = str(data.get("reason", "")).strip() or "no reason given"
        if self.scale == "pass_fail":
            passed = str(data.get("verdict", "")).strip().lower()
            if passed not in ("pass", "fail"):
                raise ValueError(f"unparseable verdict {quote(answer)}: expected pass or fail")
            return verdict(passed == "pass", reason)
        value = data.get("score")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"unparseable verdict {quote(answer)}: expected a score from 0 to 1")
        return ScoreResult(float(value), value >= self.threshold, reason)

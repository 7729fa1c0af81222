"""Structured output: did the final answer call a tool, with arguments of the expected shape?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from sweeps.engine.scorers.base import Scorer, ScoreResult, Scoring, SpecOptions, verdict


@dataclass(frozen=True, kw_only=True)
class ToolCalled(Scorer):
    """Passes when the last stage's answer called `tool` (a function name) and, with
    `arguments_schema` (JSON Schema 2020-12), when that call's arguments match it."""

    options = ("tool", "arguments_schema")
    tool: str
    validator: Draft202012Validator | None

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        tool = options.spec.get("tool")
        if not isinstance(tool, str) or not tool:
            options.error("tool", f"required: the name of the function the answer must call; got {tool!r}")
        schema = options.spec.get("arguments_schema")
        validator = None
        if schema is not None:
            if not isinstance(schema, Mapping | bool):
                options.error("arguments_schema", "must be a JSON schema object")
            else:
                try:
                    Draft202012Validator.check_schema(schema)
                    validator = Draft202012Validator(schema)
                except SchemaError as exc:
                    options.error("arguments_schema", f"invalid JSON schema at {exc.json_path}: {exc.message}")
        return {"tool": tool, "validator": validator}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        raise TypeError("tool_called reads the sample's tool calls: the executor runs it through ascore")

    async def ascore(self, output: str, variables: Mapping[str, Any], scoring: Scoring) -> ScoreResult:
        made = scoring.sample.tool_calls if scoring.sample else ()
        calls = [c for c in made if c.get("name") == self.tool]
        if not calls:
            called = ", ".join(str(c.get("name")) for c in made)
            return verdict(False, f"no call of {self.tool}" + (f" (called: {called})" if called else ""))
        if self.validator is None:
            return verdict(True, f"called {self.tool}")
        problem = None
        for found in calls:  # any call of the tool with matching arguments passes
            error = best_match(self.validator.iter_errors(found.get("arguments")))
            if error is None:
                return verdict(True, f"called {self.tool} with arguments matching the schema")
            problem = problem or error
        assert problem is not None
        return verdict(
            False, f"{self.tool}'s arguments do not match the schema at {problem.json_path}: {problem.message}"
        )

"""Scorers that read the output as JSON: valid at all, or matching a JSON Schema."""

from __future__ import annotations

import json  # the standard library's: imports are absolute, this module does not shadow it
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from sweeps.engine.scorers.base import Scorer, ScoreResult, SpecOptions, verdict

# Chat models often wrap JSON in a Markdown code fence, with or without a language tag
_FENCED = re.compile(r"\A\s*```[A-Za-z0-9_-]*[ \t]*\n(.*?)\n?```\s*\Z", re.DOTALL)


def unfenced(output: str) -> str:
    """The output without the code fence around it, if it is one fenced block."""
    found = _FENCED.match(output)
    return found.group(1) if found else output


class JsonValid(Scorer):
    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        try:
            json.loads(unfenced(output))
        except ValueError as exc:
            return verdict(False, f"output is not valid JSON: {exc}")
        return verdict(True, "output is valid JSON")


@dataclass(frozen=True, kw_only=True)
class JsonSchema(Scorer):
    """The output is JSON matching `schema` (JSON Schema draft 2020-12)."""

    options = ("schema",)
    validator: Draft202012Validator

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
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
            document = json.loads(unfenced(output))
        except ValueError as exc:
            return verdict(False, f"output is not valid JSON: {exc}")
        error = best_match(self.validator.iter_errors(document))
        if error is None:
            return verdict(True, "output matches the schema")
        return verdict(False, f"output does not match the schema at {error.json_path}: {error.message}")

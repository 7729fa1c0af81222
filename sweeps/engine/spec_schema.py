"""The spec as JSON Schema, for the API's documentation and clients' generators.

Built from the same names and bounds parse_spec checks (its keys, defaults and limits, the
scorer types and their options, the strategies), so the documentation cannot drift from the
validation. It describes; parse_spec decides: routes pass the body to parse_spec whole, which
names every bad field in its 422.
"""

from __future__ import annotations

from typing import Any

from sweeps.engine.scorers import MAX_WEIGHT, SCORER_TYPES
from sweeps.engine.spec import (
    BUDGET_KEYS,
    DEFAULT_ALPHA,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RUNGS,
    DEFAULT_SWEEP_TYPE,
    EARLY_STOPPING_KEYS,
    MAX_BUDGET_TOKENS,
    MAX_BUDGET_USD,
    MAX_CONCURRENCY,
    MAX_NAME_LENGTH,
    MAX_SEED,
    MAX_TOP_K,
    STAGE_KEYS,
    SWEEP_KEYS,
    TOP_LEVEL_KEYS,
)
from sweeps.engine.strategies import STRATEGIES


def spec_json_schema(*, partial: bool = False) -> dict[str, Any]:
    """partial: some top-level keys, as a PATCH replaces them (none is required)."""
    properties = {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
        "description": {"type": "string", "default": ""},
        "pipeline": {"type": "array", "minItems": 1, "items": _stage(), "description": "the stages, in order"},
        "dataset": {
            "type": "array",
            "default": [],
            "items": {"type": "object"},
            "description": "rows of template variables; `expected` is what scorers compare with",
        },
        "scorers": {"type": "array", "default": [], "items": _scorer()},
        "sweep": _sweep(),
        "repeats": {"type": "integer", "minimum": 1, "default": 1},
        "max_concurrency": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_CONCURRENCY,
            "default": DEFAULT_MAX_CONCURRENCY,
        },
        "budget": _closed(
            {
                "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_BUDGET_TOKENS},
                "max_cost_usd": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_BUDGET_USD},
            },
            BUDGET_KEYS,
        ),
        "fail_fast": {
            "type": "boolean",
            "default": True,
            "description": "stop the sweep when a provider says the account is out of quota",
        },
        "sources": {
            "type": "object",
            "description": "the files fields were read from by `manage.py sweep`: {field: {file, sha256[, rows]}}",
            "additionalProperties": {
                "type": "object",
                "required": ["file", "sha256"],
                "properties": {"file": {"type": "string"}, "sha256": {"type": "string"}, "rows": {"type": "integer"}},
                "additionalProperties": False,
            },
        },
    }
    return {
        "title": "Spec",
        "description": "An experiment spec, as README's “The spec” describes it and `manage.py sweep` reads it.",
        **_closed(properties, TOP_LEVEL_KEYS),
        **({} if partial else {"required": ["name", "pipeline"]}),
    }


def _stage() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        **_closed(
            {
                "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "prompt": {**text, "description": "a Jinja2 template (sandboxed) of the row and earlier stages"},
                "system": {"type": ["string", "null"]},
                "model": {"type": ["string", "null"], "description": "provider/model; omitted: the sweep's model"},
                "params": {"type": "object", "description": "sent to the provider: temperature, max_tokens, ..."},
            },
            STAGE_KEYS,
        ),
        "required": ["name", "prompt"],
    }


def _scorer() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": sorted(SCORER_TYPES)},
            "name": {"type": "string"},
            "weight": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WEIGHT, "default": 1},
        },
        "description": "options by type: "
        + "; ".join(f"{kind}: {', '.join(cls.options) or '-'}" for kind, cls in sorted(SCORER_TYPES.items())),
    }


def _sweep() -> dict[str, Any]:
    early_stopping = _closed(
        {
            "rungs": {"type": "array", "items": {"type": "number"}, "default": list(DEFAULT_RUNGS)},
            "alpha": {"type": "number", "default": DEFAULT_ALPHA},
        },
        EARLY_STOPPING_KEYS,
    )
    return _closed(
        {
            "type": {"enum": list(STRATEGIES), "default": DEFAULT_SWEEP_TYPE},
            "params": {
                "type": "object",
                "description": "path (model, prompt, params.temperature, stages.<stage>.model, ...) "
                "to a list of values or a range {min, max, log?, step?}",
            },
            "n_trials": {"type": ["integer", "null"], "minimum": 1},
            "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": 5},
            "explore_ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.3},
            "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SEED},
            "early_stopping": {"anyOf": [early_stopping, {"type": "null"}]},
        },
        SWEEP_KEYS,
    )


def _closed(properties: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """An object of exactly the keys the parser accepts, in its order."""
    assert set(properties) == set(keys), set(properties) ^ set(keys)  # the parser's keys changed
    return {"type": "object", "properties": {key: properties[key] for key in keys}, "additionalProperties": False}

"""Apply one sweep configuration to the pipeline's stages.

A config holds only what the sweep varies, e.g.
`{"model": "mock/echo", "params": {"temperature": 0.5}, "stages": {"label": {"prompt": "..."}}}`.
For each stage the most specific setting wins:
    the stage's own spec < the config's top level (every stage) < config["stages"][<name>] (that stage).
`params` merge key by key, so sweeping `params.temperature` keeps a stage's `max_tokens`.
A stage with no model anywhere uses the resolved model of the stage before it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeps.engine.spec import StageSpec


@dataclass(frozen=True)
class ResolvedStage:
    name: str
    model: str  # "provider/model"
    system: str | None
    prompt: str
    params: dict


def resolve_pipeline(stages: Sequence[StageSpec], config: Mapping[str, Any]) -> list[ResolvedStage]:
    """The stages as one run executes them; neither `stages` nor `config` is changed."""
    per_stage = config.get("stages", {})
    resolved: list[ResolvedStage] = []
    for stage in stages:
        layers = (config, per_stage.get(stage.name, {}))  # least specific first
        model = _most_specific(layers, "model", stage.model)
        if model is None:
            model = resolved[-1].model if resolved else None
        if model is None:
            # parse_spec refuses such a spec; reaching here means a config was built by hand.
            raise ValueError(f"stage {stage.name!r} has no model and no earlier stage to inherit one from")
        params = copy.deepcopy(dict(stage.params))
        for layer in layers:
            params.update(copy.deepcopy(layer.get("params", {})))
        resolved.append(
            ResolvedStage(
                name=stage.name,
                model=model,
                system=_most_specific(layers, "system", stage.system),
                prompt=_most_specific(layers, "prompt", stage.prompt),
                params=params,
            )
        )
    return resolved


def _most_specific(layers: Sequence[Mapping[str, Any]], key: str, default: Any) -> Any:
    # `in`, not truthiness: a sweep may choose system None ("no system message") on purpose.
    value = default
    for layer in layers:
        if key in layer:
            value = layer[key]
    return value

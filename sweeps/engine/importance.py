"""Which parameters matter: Optuna's parameter importances (PED-ANOVA, its default, which needs
no scikit-learn) over a sweep's scored configurations, whatever strategy proposed them. A
throw-away in-memory study is rebuilt from the runs, as the TPE strategy does."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from sweeps.engine.errors import SpecError
from sweeps.engine.space import Choice, Space, parse_value_spec
from sweeps.engine.strategies.base import Config
from sweeps.engine.strategies.tpe import optuna_distribution, optuna_params, optuna_trial, quiet_optuna

MIN_RUNS = 4  # fewer scored configurations say nothing about importance


def space_of(raw_params: Mapping[str, Any]) -> Space | None:
    """The space a stored spec's `sweep.params` describes, without the parameters given one value
    (every run has it: it explains nothing); None when there is none to rank."""
    try:
        params = {key: parse_value_spec(raw, f"sweep.params.{key}") for key, raw in raw_params.items()}
    except SpecError:
        return None
    return Space(
        {key: value for key, value in params.items() if not (isinstance(value, Choice) and len(value.values) < 2)}
    )


def param_importances(space: Space, history: Sequence[tuple[Config, float]]) -> dict[str, float] | None:
    """Each swept parameter's share of the score's variation (they add up to 1), most important
    first; None with fewer than MIN_RUNS scored configurations or fewer than two parameters."""
    if len(space.keys()) < 2:
        return None
    optuna = quiet_optuna()
    distributions = {key: optuna_distribution(space.params[key]) for key in space.keys()}
    trials = []
    for config, score in history:
        params = optuna_params(space, config)
        if params is not None and math.isfinite(score):
            trials.append(optuna_trial(optuna, params, distributions, score))
    if len(trials) < MIN_RUNS:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-API warnings
        study = optuna.create_study(direction="maximize")
        study.add_trials(trials)
        try:
            found = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError):  # e.g. every score equal: nothing to apportion
            return None
    return {key: float(value) for key, value in found.items()}

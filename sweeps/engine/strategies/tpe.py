"""TPE search: Optuna's TPESampler through ask/tell, over a study rebuilt from our history.

Each round builds a throw-away in-memory study: finished configs with their scores become
COMPLETE trials, configs planned but not scored yet become RUNNING trials (TPE's constant liar
then steers parallel asks away from them), and ``n`` asks with fixed distributions give the
round's configs. Nothing of the study outlives the call, so any worker can plan any round.

Every parameter is handed to Optuna as a number it can model, and mapped back exactly:

- a list (Choice) becomes a categorical over the *indices* of its values, so any JSON value
  (lists, dicts, 1 vs 1.0 vs true) is fine and values come back as the spec wrote them;
- ``{min, max}`` becomes a float range, ``log: true`` a log-scale one;
- ``{min, max, step}`` becomes an int range over the step index, turned back with
  ``Steps.value_at``: the same decimal-exact values grid and random search produce. For a
  linear range that is an affine map of the values; for ``log: true`` (a geometric range) the
  index is the log of the value, so the order TPE models is the log scale.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sweeps.engine.space import (
    Choice,
    Space,
    Steps,
    Uniform,
    ValueSpec,
    config_hash,
    get_path,
    make_config,
)
from sweeps.engine.strategies.base import Config, History, adaptive_round_size
from sweeps.engine.strategies.random import random_search

if TYPE_CHECKING:
    from sweeps.engine.spec import SweepSpec

# Asks whose config was already seen, in total per call, before the rest of the round is drawn
# at random (which knows exactly when a discrete space is exhausted).
_MAX_DUPLICATE_ASKS = 50


def tpe(
    space: Space,
    history: History,
    n: int,
    *,
    rng: random.Random,
    seen: set[str],
    pending: Sequence[Config] = (),
) -> list[Config]:
    """Up to ``n`` new configs proposed by TPE from ``history`` (config, score), maximising.

    ``pending`` holds configs already planned whose scores are not in yet. The sampler's seed
    is drawn from ``rng``, so a sweep's seed and round number reproduce the proposals. Configs
    whose hash is in ``seen`` are skipped (and hashes of proposals are added to it); after
    ``_MAX_DUPLICATE_ASKS`` duplicates the rest of the round is random search.
    """
    if n <= 0:
        return []
    optuna = quiet_optuna()
    distributions = {key: optuna_distribution(space.params[key]) for key in space.keys()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=rng.getrandbits(32), constant_liar=True)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        trials = []
        for config, score in history:
            params = optuna_params(space, config)
            if params is not None and math.isfinite(score):
                trials.append(optuna_trial(optuna, params, distributions, score))
        for config in pending:
            params = optuna_params(space, config)
            if params is not None:
                trials.append(optuna_trial(optuna, params, distributions, None))
        study.add_trials(trials)

        taken: list[Config] = []
        duplicates = 0
        while len(taken) < n and duplicates < _MAX_DUPLICATE_ASKS:
            # The asked trial stays RUNNING, so the constant liar also steers later asks of this
            # round away from it, whether it was taken or a duplicate.
            trial = study.ask(fixed_distributions=distributions)
            config = _to_config(space, trial.params)
            digest = config_hash(config)
            if digest in seen:
                duplicates += 1
                continue
            seen.add(digest)
            taken.append(config)
    return taken + random_search(space, n - len(taken), rng, seen)


class TpeSearch:
    name = "tpe"
    is_adaptive = True
    is_exhaustive = False

    def round_size(self, sweep: SweepSpec, *, rounds_done: int, planned: int) -> int:
        return adaptive_round_size(sweep, planned)

    def propose(
        self,
        space: Space,
        *,
        n: int,
        history: History,
        rng: random.Random,
        top_k: int,
        explore_ratio: float,
        seen: set[str],
        pending: Sequence[Config] = (),
    ) -> list[Config]:
        return tpe(space, history, n, rng=rng, seen=seen, pending=pending)


def quiet_optuna() -> Any:
    import optuna  # imported on first use: grid and random sweeps never pay for it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def optuna_distribution(spec: ValueSpec) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    match spec:
        case Choice(values):
            return CategoricalDistribution(list(range(len(values))))
        case Steps():
            return IntDistribution(0, spec.count() - 1)
        case Uniform(low, high, log):
            return FloatDistribution(low, high, log=log)
    raise TypeError(f"not a value spec: {spec!r}")


def optuna_trial(optuna: Any, params: dict[str, Any], distributions: dict[str, Any], score: float | None) -> Any:
    state = optuna.trial.TrialState.COMPLETE if score is not None else optuna.trial.TrialState.RUNNING
    return optuna.trial.create_trial(params=params, distributions=distributions, value=score, state=state)


def _to_config(space: Space, params: dict[str, Any]) -> Config:
    return make_config({key: _from_param(space.params[key], params[key]) for key in space.keys()})


def _from_param(spec: ValueSpec, param: Any) -> Any:
    match spec:
        case Choice(values):
            return values[param]
        case Steps():
            return spec.value_at(param)
        case Uniform(low, high):
            return min(max(float(param), low), high)
    raise TypeError(f"not a value spec: {spec!r}")


def optuna_params(space: Space, config: Config) -> dict[str, Any] | None:
    """The Optuna params of a config; None when a value is not in the space (then it is left out)."""
    params = {}
    for key in space.keys():
        param = _to_param(space.params[key], get_path(config, key, _MISSING))
        if param is None:
            return None
        params[key] = param
    return params


_MISSING = object()


def _to_param(spec: ValueSpec, value: Any) -> Any:
    if value is _MISSING:
        return None
    match spec:
        case Choice(values):
            wanted = _canonical(value)  # JSON tells 1 from 1.0 from true, as config_hash does
            return next((i for i, choice in enumerate(values) if _canonical(choice) == wanted), None)
        case Steps():
            return _step_index(spec, value)
        case Uniform(low, high):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
            return float(value) if ok else None
    return None


def _step_index(spec: Steps, value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if spec.log:
        if value <= 0:
            return None
        guess = round(math.log(value / spec.low) / math.log(spec.step))
    else:
        guess = round((value - spec.low) / spec.step)
    if 0 <= guess < spec.count() and spec.value_at(guess) == value:
        return guess
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

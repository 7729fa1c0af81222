"""The search space of a sweep: value specs, dotted config paths and config hashes.

A *config* is the nested dict of one run's assignments, e.g.
``{"model": "mock/echo", "params": {"temperature": 0.5}}``; the sweep spec names
its parts with dotted paths such as ``params.temperature``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sweeps.engine.errors import FieldError, SpecError


@dataclass(frozen=True)
class Choice:
    """A list in the spec: one of these values."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Uniform:
    """``{min, max[, log]}``: any float in the closed range; with ``log``, uniform in log space."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Steps:
    """``{min, max, step[, log]}``: a discrete range that includes ``max`` when it lands on a step.

    Linear: ``min + i*step``. With ``log: true`` the step is a growth factor (> 1):
    ``min * step**i``, e.g. ``{min: 16, max: 1024, step: 2, log: true}`` is 16, 32, ..., 1024.
    Values are computed in decimal arithmetic on the numbers as written, so 0.1 steps land
    exactly on 0.3 and 1.0 instead of drifting. All-int bounds and step give ints.
    """

    low: float
    high: float
    step: float
    log: bool = False

    def count(self) -> int:
        """How many values there are, without building them (a fine step can make millions)."""
        low, high, step = _exact(self.low), _exact(self.high), _exact(self.step)
        if not self.log:
            return int(((high - low) / step).to_integral_value(ROUND_FLOOR)) + 1
        # Estimate the exponent with floats, then settle it exactly on the decimals.
        last = int((math.log(self.high) - math.log(self.low)) / math.log(self.step))
        while low * step ** (last + 1) <= high:
            last += 1
        while last > 0 and low * step**last > high:
            last -= 1
        return last + 1

    def value_at(self, index: int) -> float | int:
        low, step = _exact(self.low), _exact(self.step)
        value = low * step**index if self.log else low + step * index
        integral = all(isinstance(x, int) for x in (self.low, self.high, self.step))
        return int(value) if integral else float(value)

    def values(self) -> tuple[float | int, ...]:
        return tuple(self.value_at(i) for i in range(self.count()))


ValueSpec = Choice | Uniform | Steps

_RANGE_KEYS = ("min", "max", "step", "log")


def parse_value_spec(raw: Any, path: str) -> ValueSpec:
    """Turn one entry of ``sweep.params`` into a spec; SpecError lists every problem at ``path``."""
    if isinstance(raw, list):
        return _parse_choice(raw, path)
    if isinstance(raw, Mapping):
        return _parse_range(raw, path)
    raise SpecError.at(path, f"expected a list of values or a mapping with min and max, got {raw!r}")


def _parse_choice(raw: list[Any], path: str) -> Choice:
    if not raw:
        raise SpecError.at(path, "empty list: give at least one value")
    try:
        json.dumps(raw)  # configs are hashed as JSON, so every value must be JSON
    except (TypeError, ValueError) as exc:
        raise SpecError.at(path, f"values must be plain JSON data: {exc}") from exc
    return Choice(tuple(raw))


def _parse_range(raw: Mapping[Any, Any], path: str) -> Uniform | Steps:
    problems = [
        f"unknown key {str(key)!r} (expected {', '.join(_RANGE_KEYS)})" for key in raw if key not in _RANGE_KEYS
    ]
    numbers: dict[str, float] = {}
    for key in ("min", "max", "step"):
        if key not in raw:
            if key != "step":
                problems.append(f"missing {key!r}")
        elif _is_number(raw[key]):
            numbers[key] = raw[key]
        else:
            problems.append(f"{key} must be a finite number, got {raw[key]!r}")
    low, high, step = numbers.get("min"), numbers.get("max"), numbers.get("step")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        problems.append(f"log must be true or false, got {log!r}")
    if low is not None and high is not None and low > high:
        problems.append(f"min {low!r} is greater than max {high!r}")
    if step is not None and step <= 0:
        problems.append(f"step must be greater than 0, got {step!r}")
    if log is True and low is not None and low <= 0:
        problems.append(f"log: true needs min greater than 0, got {low!r}")
    if log is True and step is not None and 0 < step <= 1:
        problems.append(f"with log: true, step is a growth factor and must be greater than 1, got {step!r}")
    if problems:
        raise SpecError([FieldError(path, problem) for problem in problems])
    assert low is not None and high is not None  # a missing one was reported above
    if step is None:
        return Uniform(low, high, log)
    return Steps(low, high, step, log)


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but `min: true` is a mistake, not 1. Ints are always finite
    # (and math.isfinite would overflow on a huge one).
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _exact(number: float) -> Decimal:
    # repr is the shortest string that round-trips, i.e. the number as the user wrote it.
    return Decimal(repr(number))


def sample_value(spec: ValueSpec, rng: random.Random) -> Any:
    """One value drawn uniformly from the spec (in log space for ``log`` ranges)."""
    match spec:
        case Choice(values):
            return rng.choice(values)
        case Steps():
            return spec.value_at(rng.randrange(spec.count()))
        case Uniform(low, high, log=True):
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
            return min(max(value, low), high)  # exp(log(x)) may miss x by one ulp
        case Uniform(low, high):
            return rng.uniform(low, high)
    raise TypeError(f"not a value spec: {spec!r}")


@dataclass(frozen=True)
class Space:
    params: Mapping[str, ValueSpec]  # dotted path -> spec

    def keys(self) -> list[str]:
        # Sorted so proposals do not depend on the order the spec happened to list them in.
        return sorted(self.params)

    def grid_size(self) -> int | None:
        """Number of grid points; None when a continuous range makes the grid infinite."""
        size = 1
        for spec in self.params.values():
            match spec:
                case Choice(values):
                    size *= len(values)
                case Steps():
                    size *= spec.count()
                case Uniform():
                    return None
        return size


def set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``config["a"]["b"] = value`` for ``"a.b"``, creating the dicts on the way."""
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {dotted}: {part} already holds {node!r}")
    node[leaf] = value


def get_path(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def make_config(assignments: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh nested config from dotted assignments; values are copied so configs share nothing."""
    config: dict[str, Any] = {}
    for dotted, value in assignments.items():
        set_path(config, dotted, copy.deepcopy(value))
    return config


def flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted path -> leaf value, so ``make_config(flatten(c)) == c``; empty dicts stay leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            for sub_key, leaf in flatten(value).items():
                flat[f"{key}.{sub_key}"] = leaf
        else:
            flat[key] = value
    return flat


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of canonical JSON: independent of key order.

    JSON tells 1 from 1.0, so ``[1, 1.0]`` as choices are two configs; a spec rarely mixes them.
    """
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()

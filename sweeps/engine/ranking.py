"""Which configurations are worth keeping when several things matter at once: the Pareto front.

A run dominates another when it is at least as good on every objective and better on one.
The front is the set of runs nothing dominates: moving off it along one objective costs
something on another. The dashboard marks it on score against cost; issue 7 adds latency.
Pure Python, no Django: tested in tests/engine/test_ranking.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Objective:
    key: str  # the name of the value in each point, e.g. "score"
    maximize: bool


SCORE = Objective("score", maximize=True)
COST = Objective("cost", maximize=False)
LATENCY = Objective("latency", maximize=False)


def score_per_dollar(score: float | None, cost: float) -> float | None:
    """What a unit of score costs, inverted; None when unscored or free (nothing to divide by)."""
    return score / cost if score is not None and cost > 0 else None


def _oriented(point: Mapping[str, Any], objectives: Sequence[Objective]) -> tuple[float, ...] | None:
    """The point's values turned so that smaller is better on every objective; None when one
    is missing (an unscored run has no place on the front)."""
    values = []
    for objective in objectives:
        value = point.get(objective.key)
        if value is None or math.isnan(value):
            return None
        values.append(-float(value) if objective.maximize else float(value))
    return tuple(values)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether oriented point a (smaller is better) dominates b."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(points: Sequence[Mapping[str, Any]], objectives: Sequence[Objective] = (SCORE, COST)) -> list[int]:
    """Indices of the points no other point dominates, in the order of the first objective
    (best first), then the next. Points missing a value are left out. Equal points are all kept:
    neither is better.

    Sorting lexicographically puts every point after anything that dominates it, so each point
    needs checking only against the front found so far: O(n log n + n * front size) rather than
    comparing every pair, which matters when the page recomputes it twice a second."""
    if not objectives:
        raise ValueError("pareto_front needs at least one objective")
    oriented = [(values, i) for i, p in enumerate(points) if (values := _oriented(p, objectives)) is not None]
    oriented.sort()
    front: list[tuple[tuple[float, ...], int]] = []
    for values, index in oriented:
        if not any(dominates(kept, values) for kept, _ in front):
            front.append((values, index))
    return [index for _, index in front]

"""Paired early stopping over rows: stop spending on configurations that are clearly worse.

Every configuration of a sweep sees the dataset's rows in one shared shuffled order, in rungs
(e.g. the first 10 %, then 30 %, then all). When every configuration of a round has finished a
rung, each is compared with the best one so far on exactly the same rows; one that a one-sided
Wilcoxon signed-rank test shows worse at level alpha receives no more rows.

Paired, because rows differ in difficulty far more than configurations do: comparing per-row
differences removes the rows' own spread, so a few rows tell what a plain comparison of means
would need the whole dataset for. The best so far is never tested against itself, so it always
finishes: the winner's score is a full-data score. Pure Python: tested in
tests/engine/test_early_stopping.py.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence

from sweeps.engine.stats import worse_than


def row_order(rows: int, seed: object) -> list[int]:
    """The dataset's row indices in the sweep's one shared shuffled order."""
    order = list(range(rows))
    # Shuffled, so that the first rung is a fair sample of the dataset, whatever its file order.
    random.Random(f"early-stopping:{seed}").shuffle(order)
    return order


def rung_sizes(rows: int, rungs: Sequence[float]) -> list[int]:
    """How many rows (of the shared order) each rung ends at, increasing, the last = all rows."""
    sizes = sorted({min(rows, max(1, math.ceil(share * rows - 1e-9))) for share in rungs} | {rows})
    return [size for size in sizes if size > 0]


def next_size(seen: int, sizes: Sequence[int]) -> int | None:
    """The row count of the rung after `seen` rows, or None when every row is seen."""
    return next((size for size in sizes if size > seen), None)


def to_prune[K: Hashable](
    candidates: Mapping[K, Mapping[int, float]],
    leader: Mapping[int, float] | None,
    *,
    alpha: float,
) -> set[K]:
    """Which candidates to stop: those shown worse than the best on the rows they all saw.

    candidates: per configuration, its per-row scores (mean over replicates) on the rows seen.
    leader: the per-row scores of the best finished configuration of earlier rounds, if any; it
    competes for "best" but is never pruned (it is done).
    """
    contenders: dict[Hashable, Mapping[int, float]] = {key: scores for key, scores in candidates.items()}
    leader_key = object()
    if leader:
        contenders[leader_key] = leader
    rows = set.intersection(*(set(scores) for scores in candidates.values())) if candidates else set()
    if not rows:
        return set()

    def mean(scores: Mapping[int, float]) -> float:
        return sum(scores[row] for row in rows) / len(rows)

    best_key = max(contenders, key=lambda key: (mean(contenders[key]), key is leader_key))
    best = {row: contenders[best_key][row] for row in rows if row in contenders[best_key]}
    return {
        key
        for key, scores in candidates.items()
        if key != best_key and worse_than({row: scores[row] for row in rows}, best, alpha=alpha)
    }

"""Grid search: every combination of the parameters' values, all in round 0."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sweeps.engine.space import Choice, Space, Steps, Uniform, make_config
from sweeps.engine.strategies.base import Config, History, take_new

if TYPE_CHECKING:
    from sweeps.engine.spec import SweepSpec


def interleaved(axes: Sequence[Sequence[object]]) -> list[tuple[object, ...]]:
    """Every combination of the axes' values, in an order where the first max(len(axis))
    combinations already try every value of every axis: a sweep stopped at 30 % has tried every
    model and every prompt, not the first model with all prompts. Combination i is i's
    mixed-radix digits (the longest axis fastest) with each slower digit shifted by the sum of
    the faster ones, modulo its axis: a bijection, so nothing is left out or repeated."""
    order = sorted(range(len(axes)), key=lambda a: len(axes[a]))  # slowest first: the shortest axis
    sizes = [len(axes[a]) for a in order]
    combos = []
    for index in range(math.prod(sizes)):
        shifted = [0] * len(sizes)
        faster = 0
        for position in range(len(sizes) - 1, -1, -1):  # fastest first
            index, digit = divmod(index, sizes[position])
            shifted[position] = (digit + faster) % sizes[position]
            faster += digit
        values = {a: axes[a][d] for a, d in zip(order, shifted, strict=True)}
        combos.append(tuple(values[a] for a in range(len(axes))))
    return combos


def grid(space: Space) -> list[Config]:
    """Every combination over the sorted keys, interleaved (see ``interleaved``)."""
    keys = space.keys()
    axes = []
    for key in keys:
        match space.params[key]:
            case Choice(values):
                axes.append(values)
            case Steps() as steps:
                axes.append(steps.values())
            case Uniform():
                raise ValueError(f"grid cannot enumerate {key}: a range without step is continuous")
    return [make_config(dict(zip(keys, combo, strict=True))) for combo in interleaved(axes)]


class GridSearch:
    name = "grid"
    is_adaptive = False
    is_exhaustive = True

    def round_size(self, sweep: SweepSpec, *, rounds_done: int, planned: int) -> int:
        # The whole grid in round 0 (propose ignores n); nothing after it.
        return (sweep.space.grid_size() or 0) if rounds_done == 0 else 0

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
        """Every grid point not seen yet, whatever ``n``; a value listed twice gives one config."""
        points = grid(space)
        return take_new(points, len(points), seen)

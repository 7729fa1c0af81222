"""Grid search: every combination of the parameters' values, all in round 0."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sweeps.engine.space import Choice, Space, Steps, Uniform, make_config
from sweeps.engine.strategies.base import Config, History, take_new

if TYPE_CHECKING:
    from sweeps.engine.spec import SweepSpec


def grid(space: Space) -> list[Config]:
    """Every combination, in ``itertools.product`` order over the sorted keys."""
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
    return [make_config(dict(zip(keys, combo))) for combo in itertools.product(*axes)]


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

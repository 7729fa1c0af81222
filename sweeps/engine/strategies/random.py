"""Random search: configs drawn uniformly from the space, all in round 0."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sweeps.engine.space import Space, make_config, sample_value
from sweeps.engine.strategies.base import MAX_MISSES, Config, History, take_new
from sweeps.engine.strategies.grid import grid

if TYPE_CHECKING:
    from sweeps.engine.spec import SweepSpec


def random_search(space: Space, n: int, rng: random.Random, seen: set[str] | None = None) -> list[Config]:
    """Up to ``n`` new configs drawn uniformly; fewer when the space runs out."""
    seen = set() if seen is None else seen
    if n <= 0:
        return []
    size = space.grid_size()
    if size is not None and size <= 2 * (n + len(seen)):
        # A discrete space that seen plus this call may fill by half or more: shuffle all of
        # it, so running out is known exactly instead of guessed from a run of duplicates.
        points = grid(space)
        rng.shuffle(points)
        return take_new(points, n, seen)
    # Here over half the space is unseen, so each draw is new with probability > 1/2 and
    # MAX_MISSES duplicates in a row only happen when a continuous range is a single point.
    draws = (sample_config(space, rng) for _ in itertools.count())
    return take_new(draws, n, seen, max_misses=MAX_MISSES)


def sample_config(space: Space, rng: random.Random) -> Config:
    return make_config({key: sample_value(space.params[key], rng) for key in space.keys()})


class RandomSearch:
    name = "random"
    is_adaptive = False
    is_exhaustive = False

    def round_size(self, sweep: SweepSpec, *, rounds_done: int, planned: int) -> int:
        # All n_trials in round 0; nothing after it.
        return max(0, (sweep.n_trials or 0) - planned) if rounds_done == 0 else 0

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
        return random_search(space, n, rng, seen)

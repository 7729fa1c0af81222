"""Guided search: round after round, change one parameter of the best configs so far (exploit)
and draw some configs at random (explore)."""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sweeps.engine.space import Choice, Space, Steps, Uniform, ValueSpec, get_path, sample_value, set_path
from sweeps.engine.strategies.base import MAX_MISSES, Config, History, adaptive_round_size, take_new
from sweeps.engine.strategies.random import random_search

if TYPE_CHECKING:
    from sweeps.engine.spec import SweepSpec


def guided(
    space: Space,
    history: History,
    n: int,
    *,
    top_k: int,
    explore_ratio: float,
    rng: random.Random,
    seen: set[str] | None = None,
) -> list[Config]:
    """Exploit the best configs so far by changing one parameter each; explore at random.

    ``history`` holds (config, score) of every finished run. Returns the exploiting configs
    first, then the random ones. When the neighbours of the best run out, random configs
    take their places, so a round still gets ``n`` while the space has room.
    """
    seen = set() if seen is None else seen
    if not history:
        return random_search(space, n, rng, seen)
    n_explore = min(n, max(1, round(n * explore_ratio)))
    # sorted() is stable, so among equal scores the earlier run wins.
    ranked = sorted(history, key=lambda run: run[1], reverse=True)
    parents = [config for config, _score in ranked[:top_k]]
    children = _exploit(space, parents, n - n_explore, rng, seen)
    return children + random_search(space, n - len(children), rng, seen)


class GuidedSearch:
    name = "guided"
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
        return guided(space, history, n, top_k=top_k, explore_ratio=explore_ratio, rng=rng, seen=seen)


def _exploit(space: Space, parents: list[Config], n: int, rng: random.Random, seen: set[str]) -> list[Config]:
    movable = [(parent, keys) for parent in parents if (keys := _changeable_keys(space, parent))]
    if not movable:
        return []
    # Cycling the parents spreads the children over all of the top k; a parent whose
    # neighbours are all seen only yields misses, and MAX_MISSES in a row ends the search.
    children = (_change_one(space, parent, keys, rng) for parent, keys in itertools.cycle(movable))
    return take_new(children, n, seen, max_misses=MAX_MISSES)


def _changeable_keys(space: Space, config: Config) -> list[str]:
    return [key for key in space.keys() if _has_other_value(space.params[key], get_path(config, key))]


def _has_other_value(spec: ValueSpec, current: Any) -> bool:
    match spec:
        case Choice(values):
            return any(value != current for value in values)
        case Steps():
            return spec.count() > 1 or spec.value_at(0) != current
        case Uniform(low, high):
            return low < high or low != current
    raise TypeError(f"not a value spec: {spec!r}")


def _change_one(space: Space, parent: Config, keys: list[str], rng: random.Random) -> Config:
    key = rng.choice(keys)
    spec, current = space.params[key], get_path(parent, key)
    # Terminates: _has_other_value guarantees another value, drawn with probability >= 1/len.
    value = sample_value(spec, rng)
    while value == current:
        value = sample_value(spec, rng)
    child = copy.deepcopy(parent)
    set_path(child, key, copy.deepcopy(value))
    return child

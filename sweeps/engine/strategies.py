"""Strategies that propose configs to run: grid, random, guided and TPE search.

Every strategy is deterministic given its ``random.Random``, so a sweep's seed reproduces its
proposals. Proposals are distinct by ``config_hash``, also from the ``seen`` set of hashes the
caller passes in (configs proposed earlier); each strategy adds what it proposes to ``seen``.
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Iterable, Sequence
from typing import Any

from sweeps.engine.space import (
    Choice,
    Space,
    Steps,
    Uniform,
    ValueSpec,
    config_hash,
    get_path,
    make_config,
    sample_value,
    set_path,
)
from sweeps.engine.tpe import tpe

Config = dict[str, Any]

# Random draws that may all be duplicates give up after this many in a row. Only reached when
# the remaining space is (nearly) exhausted: see random_search and _exploit for why.
_MAX_MISSES = 200


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
                raise ValueError(
                    f"grid cannot enumerate {key}: a range without step is continuous"
                )
    return [make_config(dict(zip(keys, combo))) for combo in itertools.product(*axes)]


def random_search(
    space: Space, n: int, rng: random.Random, seen: set[str] | None = None
) -> list[Config]:
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
        return _take_new(points, n, seen)
    # Here over half the space is unseen, so each draw is new with probability > 1/2 and
    # _MAX_MISSES duplicates in a row only happen when a continuous range is a single point.
    draws = (_sample_config(space, rng) for _ in itertools.count())
    return _take_new(draws, n, seen, max_misses=_MAX_MISSES)


def guided(
    space: Space,
    history: Sequence[tuple[Config, float]],
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


def propose(
    kind: str,
    space: Space,
    *,
    n: int,
    history: Sequence[tuple[Config, float]],
    rng: random.Random,
    top_k: int,
    explore_ratio: float,
    seen: set[str],
    pending: Sequence[Config] = (),
) -> list[Config]:
    """Dispatch on the sweep type; grid ignores ``n`` and ``history``.

    ``pending`` (configs planned but not scored yet) only matters to tpe.
    """
    if kind == "grid":
        points = grid(space)
        return _take_new(points, len(points), seen)
    if kind == "random":
        return random_search(space, n, rng, seen)
    if kind == "guided":
        return guided(
            space, history, n, top_k=top_k, explore_ratio=explore_ratio, rng=rng, seen=seen
        )
    if kind == "tpe":
        return tpe(space, history, n, rng=rng, seen=seen, pending=pending)
    raise ValueError(f"unknown strategy {kind!r}: expected grid, random, guided or tpe")


def _sample_config(space: Space, rng: random.Random) -> Config:
    return make_config({key: sample_value(space.params[key], rng) for key in space.keys()})


def _exploit(
    space: Space, parents: list[Config], n: int, rng: random.Random, seen: set[str]
) -> list[Config]:
    movable = [(parent, keys) for parent in parents if (keys := _changeable_keys(space, parent))]
    if not movable:
        return []
    # Cycling the parents spreads the children over all of the top k; a parent whose
    # neighbours are all seen only yields misses, and _MAX_MISSES in a row ends the search.
    children = (
        _change_one(space, parent, keys, rng) for parent, keys in itertools.cycle(movable)
    )
    return _take_new(children, n, seen, max_misses=_MAX_MISSES)


def _changeable_keys(space: Space, config: Config) -> list[str]:
    return [
        key for key in space.keys() if _has_other_value(space.params[key], get_path(config, key))
    ]


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


def _take_new(
    candidates: Iterable[Config], n: int, seen: set[str], *, max_misses: int | None = None
) -> list[Config]:
    """The first ``n`` candidates whose hash is not in ``seen``, adding their hashes to it."""
    taken: list[Config] = []
    if n <= 0:
        return taken  # before drawing anything: candidates may be an endless generator
    misses = 0
    for config in candidates:
        digest = config_hash(config)
        if digest in seen:
            misses += 1
            if misses == max_misses:
                break
            continue
        seen.add(digest)
        taken.append(config)
        misses = 0
        if len(taken) == n:
            break
    return taken

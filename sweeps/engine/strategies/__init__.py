"""Search strategies, one per sweep type: grid, random, guided and tpe (see base.py for the
Strategy protocol every one implements). Callers ask the strategy of a sweep
(`SweepSpec.strategy`, or `strategy_named`) instead of comparing type names."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random  # not `import random`: the random submodule would take that name

from sweeps.engine.space import Space
from sweeps.engine.strategies.base import Config, History, Strategy
from sweeps.engine.strategies.grid import GridSearch, grid
from sweeps.engine.strategies.guided import GuidedSearch, guided
from sweeps.engine.strategies.random import RandomSearch, random_search
from sweeps.engine.strategies.tpe import TpeSearch, tpe

__all__ = [
    "NAMES_TEXT", "STRATEGIES", "Config", "History", "Strategy", "grid", "guided", "propose", "random_search",
    "strategy_named", "tpe",
]  # fmt: skip

# By sweep type, in the order the spec's error messages list them.
STRATEGIES: dict[str, Strategy] = {s.name: s for s in (GridSearch(), RandomSearch(), GuidedSearch(), TpeSearch())}
NAMES_TEXT = f"{', '.join(list(STRATEGIES)[:-1])} or {list(STRATEGIES)[-1]}"  # "grid, random, guided or tpe"


def strategy_named(kind: str) -> Strategy:
    try:
        return STRATEGIES[kind]
    except KeyError:
        raise ValueError(f"unknown strategy {kind!r}: expected {NAMES_TEXT}") from None


def propose(
    kind: str,
    space: Space,
    *,
    n: int,
    history: History,
    rng: Random,
    top_k: int,
    explore_ratio: float,
    seen: set[str],
    pending: Sequence[Config] = (),
) -> list[Config]:
    """The proposals of the strategy named `kind`; grid ignores ``n`` and ``history``, and only
    tpe uses ``pending`` (configs planned but not scored yet)."""
    return strategy_named(kind).propose(
        space, n=n, history=history, rng=rng, top_k=top_k, explore_ratio=explore_ratio, seen=seen, pending=pending
    )

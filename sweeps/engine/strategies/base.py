"""What every search strategy offers the planner, the estimate and spec validation.

A strategy answers three questions, so that no caller compares sweep types by name:

- `propose`: which new configs to run, given every (config, score) so far;
- `round_size`: how many configs the next round asks for (0: the sweep has all it will get);
- `is_adaptive` / `is_exhaustive`: whether it plans round after round from the scores, and
  whether it runs every configuration of the space.

Every strategy is deterministic given its ``random.Random``, so a sweep's seed reproduces its
proposals. Proposals are distinct by ``config_hash``, also from the ``seen`` set of hashes the
caller passes in (configs proposed earlier); each strategy adds what it proposes to ``seen``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sweeps.engine.space import Space, config_hash

if TYPE_CHECKING:  # spec.py imports the strategies at run time
    from sweeps.engine.spec import SweepSpec

Config = dict[str, Any]
History = Sequence[tuple[Config, float]]  # (config, score) of every finished run

# Random draws that may all be duplicates give up after this many in a row. Only reached when
# the remaining space is (nearly) exhausted: see random_search and guided's exploit for why.
MAX_MISSES = 200

# Adaptive strategies (guided, tpe) spread n_trials over about this many rounds.
ADAPTIVE_ROUNDS = 5


class Strategy(Protocol):
    name: str  # the spec's sweep.type
    # Plans round after round, each from every score observed so far; otherwise everything it
    # proposes comes in round 0, so the estimate can count (and with a seed, name) the configs.
    is_adaptive: bool
    # Proposes every configuration of the space: the space must be discrete and within the grid
    # limit, and n_trials is not used (its size is the number of configurations).
    is_exhaustive: bool

    def round_size(self, sweep: SweepSpec, *, rounds_done: int, planned: int) -> int:
        """How many configs the next round asks for, after `rounds_done` rounds that planned
        `planned` configs; 0 when the sweep has all the configs it will get."""
        ...

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
        """Up to ``n`` new configs. ``pending`` holds configs planned but not scored yet;
        ``top_k`` and ``explore_ratio`` are the spec's, for the strategies that use them."""
        ...


def adaptive_round_size(sweep: SweepSpec, planned: int) -> int:
    """A round of an adaptive strategy: about n_trials / ADAPTIVE_ROUNDS configs, at least
    top_k (the configs a round refines around), never beyond n_trials in all."""
    n_trials = sweep.n_trials or 0
    remaining = n_trials - planned
    if remaining <= 0:
        return 0
    return min(remaining, max(sweep.top_k, math.ceil(n_trials / ADAPTIVE_ROUNDS)))


def take_new(candidates: Iterable[Config], n: int, seen: set[str], *, max_misses: int | None = None) -> list[Config]:
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

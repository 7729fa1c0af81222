"""The strategy objects that the planner, the estimate and spec validation ask instead of
comparing sweep types: how many configs each round asks for, and what each proposes."""

from __future__ import annotations

import random

import pytest

from sweeps.engine.space import Choice, Space, Steps
from sweeps.engine.spec import SweepSpec, parse_spec
from sweeps.engine.strategies import STRATEGIES, grid, guided, random_search, strategy_named, tpe

SPACE = Space({"model": Choice(("mock/a", "mock/b", "mock/c")), "params.temperature": Steps(0, 1, 0.25)})  # 15 points


def sweep(kind: str, n_trials: int | None = None, top_k: int = 5) -> SweepSpec:
    return SweepSpec(type=kind, space=SPACE, n_trials=n_trials, top_k=top_k, explore_ratio=0.3, seed=1)


def sizes(spec: SweepSpec, rounds: int) -> list[int]:
    """Round sizes as the planner asks for them, every round planning what it was asked."""
    asked, planned = [], 0
    for done in range(rounds):
        n = spec.strategy.round_size(spec, rounds_done=done, planned=planned)
        asked.append(n)
        planned += n
    return asked


def test_the_registry_holds_one_strategy_per_sweep_type_under_its_name():
    assert list(STRATEGIES) == ["grid", "random", "guided", "tpe"]
    assert all(strategy.name == kind for kind, strategy in STRATEGIES.items())


def test_only_guided_and_tpe_plan_round_after_round_and_only_grid_runs_the_whole_space():
    assert [s.is_adaptive for s in STRATEGIES.values()] == [False, False, True, True]
    assert [s.is_exhaustive for s in STRATEGIES.values()] == [True, False, False, False]


def test_a_parsed_sweep_knows_its_strategy():
    data = {"name": "x", "pipeline": [{"name": "s", "prompt": "hi", "model": "mock/a"}],
            "sweep": {"type": "tpe", "n_trials": 4, "params": {"params.temperature": [0, 1]}}}  # fmt: skip
    assert parse_spec(data).sweep.strategy is STRATEGIES["tpe"]


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown strategy 'bayes': expected grid, random, guided or tpe"):
        strategy_named("bayes")


def test_grid_asks_for_the_whole_space_once():
    assert sizes(sweep("grid"), 3) == [15, 0, 0]


def test_random_asks_for_n_trials_once():
    assert sizes(sweep("random", n_trials=7), 3) == [7, 0, 0]


@pytest.mark.parametrize("kind", ["guided", "tpe"])
def test_adaptive_rounds_spread_n_trials_over_about_five_rounds_of_at_least_top_k(kind):
    assert sizes(sweep(kind, n_trials=40, top_k=5), 7) == [8, 8, 8, 8, 8, 0, 0]
    assert sizes(sweep(kind, n_trials=12, top_k=5), 4) == [5, 5, 2, 0]  # top_k beats 12 / 5
    assert sizes(sweep(kind, n_trials=3, top_k=5), 2) == [3, 0]  # never beyond n_trials


@pytest.mark.parametrize("kind", ["guided", "tpe"])
def test_adaptive_rounds_count_what_earlier_rounds_planned(kind):
    spec = sweep(kind, n_trials=40, top_k=5)
    assert spec.strategy.round_size(spec, rounds_done=2, planned=37) == 3
    assert spec.strategy.round_size(spec, rounds_done=2, planned=40) == 0


def test_each_strategy_proposes_what_its_function_does():
    history = [(config, float(i)) for i, config in enumerate(grid(SPACE)[:4])]
    seen_before = {"unrelated"}

    def ask(kind: str) -> list[dict]:
        return STRATEGIES[kind].propose(SPACE, n=5, history=history, rng=random.Random(3), top_k=2,
                                        explore_ratio=0.4, seen=set(seen_before))  # fmt: skip

    assert ask("grid") == grid(SPACE)
    assert ask("random") == random_search(SPACE, 5, random.Random(3), set(seen_before))
    assert ask("guided") == guided(SPACE, history, 5, top_k=2, explore_ratio=0.4, rng=random.Random(3),
                                   seen=set(seen_before))  # fmt: skip
    assert ask("tpe") == tpe(SPACE, history, 5, rng=random.Random(3), seen=set(seen_before))

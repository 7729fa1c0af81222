from __future__ import annotations

import itertools
import random

import pytest

from sweeps.engine.space import Choice, Space, Steps, Uniform, config_hash, flatten
from sweeps.engine.strategies import grid, guided, propose, random_search
from sweeps.engine.strategies.grid import interleaved

FOUR_POINTS = Space({"model": Choice(("mock/echo", "mock/upper")), "params.temperature": Choice((0.0, 1.0))})

# Big enough that a random config is almost never one change away from a given one.
WIDE = Space(
    {
        "model": Choice(tuple(f"mock/m{i}" for i in range(10))),
        "params.temperature": Steps(0, 0.9, 0.1),
        "params.top_p": Steps(0.1, 1.0, 0.1),
        "params.seed": Choice(tuple(range(10))),
    }
)


def changed_keys(parent: dict, child: dict) -> list[str]:
    before, after = flatten(parent), flatten(child)
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def is_neighbour(parent: dict, child: dict) -> bool:
    return len(changed_keys(parent, child)) == 1


def hashes(configs: list[dict]) -> set[str]:
    return {config_hash(config) for config in configs}


# --- grid -----------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_over_sorted_keys_interleaved():
    space = Space({"params.temperature": Choice((0.0, 1.0)), "model": Choice(("a", "b", "c"))})
    assert [(c["model"], c["params"]["temperature"]) for c in grid(space)] == [
        ("a", 0.0),
        ("b", 1.0),  # the next configuration changes every parameter it can
        ("c", 0.0),  # three in: every model and every temperature tried
        ("a", 1.0),
        ("b", 0.0),
        ("c", 1.0),
    ]


@pytest.mark.parametrize("sizes", [(4, 10), (3, 5, 2), (7,), (2, 2, 2, 3)])
def test_every_stretch_of_an_interleaved_grid_covers_every_value_evenly(sizes):
    axes = [[f"v{i}" for i in range(size)] for size in sizes]
    combos = interleaved(axes)
    assert sorted(combos) == sorted(itertools.product(*axes))  # every combination once
    longest = max(sizes)
    for axis in range(len(sizes)):  # the first `longest` configurations try every value of every axis
        assert {combo[axis] for combo in combos[:longest]} == set(axes[axis])


def test_grid_enumerates_steps():
    configs = grid(Space({"params.top_p": Steps(0.5, 1.0, 0.25)}))
    assert configs == [{"params": {"top_p": v}} for v in (0.5, 0.75, 1.0)]


def test_grid_of_an_empty_space_is_one_empty_config():
    assert grid(Space({})) == [{}]


def test_grid_refuses_a_continuous_range():
    with pytest.raises(ValueError, match="grid cannot enumerate params.top_p"):
        grid(Space({"model": Choice(("a",)), "params.top_p": Uniform(0.5, 1.0)}))


def test_grid_configs_do_not_share_values_with_the_space():
    space = Space({"params.stop": Choice((["\n"],))})
    [config] = grid(space)
    config["params"]["stop"].append("END")
    assert space.params["params.stop"] == Choice((["\n"],))


# --- random ---------------------------------------------------------------------------------


def test_random_configs_take_values_from_each_spec():
    space = Space({"model": Choice(("a", "b")), "params.t": Uniform(0.2, 0.4), "params.k": Steps(1, 5, 2)})
    configs = random_search(space, 50, random.Random(1))
    assert len(configs) == 50
    for config in configs:
        assert config["model"] in ("a", "b")
        assert 0.2 <= config["params"]["t"] <= 0.4
        assert config["params"]["k"] in (1, 3, 5)


def test_random_with_the_same_seed_repeats_itself():
    assert random_search(WIDE, 20, random.Random(7)) == random_search(WIDE, 20, random.Random(7))


def test_random_with_different_seeds_differs():
    assert random_search(WIDE, 20, random.Random(7)) != random_search(WIDE, 20, random.Random(8))


def test_random_stops_when_a_small_space_is_exhausted():
    configs = random_search(FOUR_POINTS, 10, random.Random(0))
    assert len(configs) == 4
    assert len(hashes(configs)) == 4
    assert hashes(configs) == hashes(grid(FOUR_POINTS))


def test_random_stops_when_a_degenerate_range_leaves_few_points():
    space = Space({"model": Choice(("a", "b")), "params.t": Uniform(0.5, 0.5)})
    assert len(random_search(space, 10, random.Random(0))) == 2


def test_random_skips_seen_configs_and_records_its_own():
    seen: set[str] = set()
    first = random_search(FOUR_POINTS, 3, random.Random(0), seen)
    assert seen == hashes(first)
    second = random_search(FOUR_POINTS, 10, random.Random(1), seen)
    assert len(second) == 1
    assert hashes(second).isdisjoint(hashes(first))
    assert seen == hashes(grid(FOUR_POINTS))


def test_random_in_a_large_space_returns_n_distinct():
    configs = random_search(WIDE, 500, random.Random(3))
    assert len(hashes(configs)) == 500


def test_random_fills_a_mid_size_space_completely():
    # 400 points asked for 400: drawing with replacement would give up before the last few.
    space = Space({"params.a": Steps(1, 20, 1), "params.b": Steps(1, 20, 1)})
    assert len(hashes(random_search(space, 400, random.Random(0)))) == 400


# --- guided ---------------------------------------------------------------------------------


def scored(configs: list[dict], scores: list[float]) -> list[tuple[dict, float]]:
    return list(zip(configs, scores, strict=True))


def wide_history(seed: int = 0, size: int = 6) -> list[tuple[dict, float]]:
    configs = random_search(WIDE, size, random.Random(seed))
    return scored(configs, [0.1 * i for i in range(size)])  # the last one is best


def exploit(
    space: Space,
    history: list[tuple[dict, float]],
    n: int,
    *,
    top_k: int = 1,
    explore_ratio: float = 0.0,  # still explores once: n_explore is at least 1
    seed: int = 0,
    seen: set[str] | None = None,
) -> list[dict]:
    rng = random.Random(seed)
    return guided(space, history, n, top_k=top_k, explore_ratio=explore_ratio, rng=rng, seen=seen)


def test_guided_without_history_is_random_search():
    proposals = guided(WIDE, [], 8, top_k=3, explore_ratio=0.3, rng=random.Random(5))
    assert proposals == random_search(WIDE, 8, random.Random(5))


def test_guided_exploits_by_changing_exactly_one_parameter():
    history = wide_history()
    best = history[-1][0]
    exploits = exploit(WIDE, history, 10, seed=2)[:9]
    for child in exploits:
        [key] = changed_keys(best, child)
        assert key in WIDE.keys()
    # Every parameter can be the one that changes.
    assert len({changed_keys(best, child)[0] for child in exploits}) > 1


@pytest.mark.parametrize(("n", "explore_ratio", "n_exploit"), [(10, 0.3, 7), (20, 0.5, 10), (10, 0.0, 9), (4, 1.0, 0)])
def test_guided_explores_the_requested_share(n, explore_ratio, n_exploit):
    history = wide_history()
    best = history[-1][0]
    proposals = exploit(WIDE, history, n, explore_ratio=explore_ratio, seed=4)
    assert len(proposals) == n
    assert sum(is_neighbour(best, child) for child in proposals) == n_exploit
    assert all(is_neighbour(best, child) for child in proposals[:n_exploit])


def test_guided_cycles_through_the_top_k():
    history = wide_history(size=6)
    top = [history[-1][0], history[-2][0]]
    others = [config for config, _ in history[:-2]]
    proposals = exploit(WIDE, history, 20, top_k=2, explore_ratio=0.1, seed=6)
    exploits = proposals[:18]
    assert all(any(is_neighbour(parent, child) for parent in top) for child in exploits)
    assert sum(is_neighbour(top[0], child) for child in exploits) == 9
    assert sum(is_neighbour(top[1], child) for child in exploits) == 9
    assert not any(is_neighbour(other, child) for other in others for child in exploits)


def test_guided_breaks_score_ties_by_history_order():
    history = wide_history(size=3)
    (first, _), (second, _), (third, _) = history
    tied = [(first, 0.5), (second, 0.9), (third, 0.9)]
    proposals = exploit(WIDE, tied, 6, seed=1)
    assert all(is_neighbour(second, child) for child in proposals[:5])


def test_guided_follows_a_new_best_score():
    history = wide_history()
    seen = hashes([config for config, _ in history])
    rng = random.Random(9)
    guided(WIDE, history, 5, top_k=1, explore_ratio=0.2, rng=rng, seen=seen)
    newcomer = random_search(WIDE, 1, random.Random(99), seen)[0]
    updated = [*history, (newcomer, 2.0)]
    proposals = guided(WIDE, updated, 5, top_k=1, explore_ratio=0.2, rng=rng, seen=seen)
    assert all(is_neighbour(newcomer, child) for child in proposals[:4])


def test_guided_never_repeats_history_or_seen():
    history = wide_history()
    seen = hashes([config for config, _ in history])
    before = set(seen)
    proposals = exploit(WIDE, history, 30, top_k=3, explore_ratio=0.3, seed=3, seen=seen)
    assert len(proposals) == 30
    assert hashes(proposals).isdisjoint(before)
    assert seen == before | hashes(proposals)


def test_guided_with_the_same_seed_repeats_itself():
    history = wide_history()
    first = exploit(WIDE, history, 12, top_k=3, explore_ratio=0.3, seed=11)
    assert exploit(WIDE, history, 12, top_k=3, explore_ratio=0.3, seed=11) == first
    assert exploit(WIDE, history, 12, top_k=3, explore_ratio=0.3, seed=12) != first


def test_guided_only_changes_parameters_that_have_another_value():
    space = Space({"model": Choice(("mock/echo",)), "params.temperature": Steps(0, 1, 0.1)})
    parent = {"model": "mock/echo", "params": {"temperature": 0.5}}
    proposals = exploit(space, [(parent, 1.0)], 6)
    for child in proposals[:5]:
        assert changed_keys(parent, child) == ["params.temperature"]


def test_guided_returns_fewer_when_the_space_is_exhausted():
    parent = {"model": "mock/echo", "params": {"temperature": 0.0}}
    seen = {config_hash(parent)}
    # Two neighbours exist (change model or change temperature); the last point is random only.
    proposals = exploit(FOUR_POINTS, [(parent, 1.0)], 10, seen=seen)
    assert len(proposals) == 3
    assert hashes(proposals) | {config_hash(parent)} == hashes(grid(FOUR_POINTS))


def test_guided_does_not_alter_its_history():
    history = wide_history()
    snapshot = [(flatten(config), score) for config, score in history]
    for child in exploit(WIDE, history, 10, top_k=2, explore_ratio=0.3):
        child["params"]["temperature"] = "mutated"
    assert [(flatten(config), score) for config, score in history] == snapshot


@pytest.mark.parametrize("seed", range(5))
def test_guided_exploit_never_proposes_the_parent_again(seed):
    # The parent is not in `seen` here, so only the "different value" rule keeps it out.
    space = Space({"params.temperature": Choice((0.0, 1.0))})
    parent = {"params": {"temperature": 0.0}}
    proposals = exploit(space, [(parent, 1.0)], 2, seed=seed)
    assert proposals[0] == {"params": {"temperature": 1.0}}


def test_guided_tops_up_with_random_when_the_neighbourhood_is_used_up():
    space = Space({key: Choice((0, 1, 2)) for key in ("params.a", "params.b", "params.c")})
    parent = {"params": {"a": 0, "b": 0, "c": 0}}
    seen = {config_hash(parent)}
    proposals = exploit(space, [(parent, 1.0)], 12, seen=seen)
    assert len(hashes(proposals)) == 12
    # All 6 neighbours come first, then random configs take the places left.
    assert all(is_neighbour(parent, child) for child in proposals[:6])


def test_guided_children_do_not_share_values_with_the_space():
    space = Space({"params.stop": Choice((["\n"], ["END"]))})
    parent = {"params": {"stop": ["\n"]}}
    child = exploit(space, [(parent, 1.0)], 2)[0]
    child["params"]["stop"].append("mutated")
    assert space.params["params.stop"] == Choice((["\n"], ["END"]))
    assert parent == {"params": {"stop": ["\n"]}}


# --- propose --------------------------------------------------------------------------------


def call_propose(kind: str, seen: set[str], history=(), n: int = 3) -> list[dict]:
    rng = random.Random(0)
    return propose(
        kind,
        FOUR_POINTS,
        n=n,
        history=list(history),
        rng=rng,
        top_k=2,
        explore_ratio=0.5,
        seen=seen,
    )


def test_propose_grid_ignores_n_and_skips_seen():
    seen: set[str] = set()
    assert call_propose("grid", seen, n=1) == grid(FOUR_POINTS)
    assert call_propose("grid", seen) == []


def test_propose_random_and_guided_dispatch():
    random_seen: set[str] = set()
    assert call_propose("random", random_seen) == random_search(FOUR_POINTS, 3, random.Random(0))
    parent = grid(FOUR_POINTS)[0]
    guided_seen = {config_hash(parent)}
    proposals = call_propose("guided", guided_seen, history=[(parent, 1.0)], n=2)
    assert is_neighbour(parent, proposals[0])
    assert len(guided_seen) == 3


def test_propose_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown strategy 'annealing'"):
        call_propose("annealing", set())

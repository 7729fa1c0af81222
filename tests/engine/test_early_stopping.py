"""Paired early stopping's decisions, on constructed per-row scores."""

from __future__ import annotations

import random

import pytest

from sweeps.engine.early_stopping import next_size, row_order, rung_sizes, to_prune


def test_the_row_order_is_a_shuffle_shared_by_seed():
    order = row_order(50, 7)
    assert sorted(order) == list(range(50)) and order != list(range(50))
    assert row_order(50, 7) == order and row_order(50, 8) != order


@pytest.mark.parametrize(
    ("rows", "rungs", "sizes"),
    [
        (50, (0.1, 0.3, 1.0), [5, 15, 50]),
        (3, (0.1, 0.3, 1.0), [1, 3]),  # a rung never has zero rows; equal rungs merge
        (10, (0.25, 1.0), [3, 10]),
        (7, (1.0,), [7]),
    ],
)
def test_rungs_become_row_counts(rows, rungs, sizes):
    assert rung_sizes(rows, rungs) == sizes


def test_the_next_rung_follows_the_rows_seen():
    sizes = [5, 15, 50]
    assert [next_size(seen, sizes) for seen in (0, 5, 14, 15, 50)] == [5, 15, 15, 50, None]


def noisy(mean: float, rows: int, rng: random.Random) -> dict[int, float]:
    """Per-row scores around `mean`, each row a little harder or easier than the average."""
    return {row: min(1.0, max(0.0, mean + rng.gauss(0, 0.15))) for row in range(rows)}


def prefix(scores: dict[int, float], rows: int) -> dict[int, float]:
    return {row: scores[row] for row in range(rows)}


def test_a_clearly_worse_configuration_is_pruned_and_the_best_never_is():
    rng = random.Random(3)
    full = {"best": noisy(0.8, 100, rng), "close": noisy(0.78, 100, rng), "bad": noisy(0.3, 100, rng)}
    assert max(full, key=lambda k: sum(full[k].values())) == "best"  # the constructed truth

    pruned_at = {}
    for size in (10, 30, 100):  # the rungs: every configuration has seen the same first rows
        pruned = to_prune({k: prefix(v, size) for k, v in full.items() if k not in pruned_at}, None, alpha=0.05)
        pruned_at.update(dict.fromkeys(pruned, size))

    assert pruned_at.get("bad") == 10  # a gap of 0.5 shows within the first rung
    assert "best" not in pruned_at


def test_the_best_on_full_data_survives_over_many_constructed_landscapes():
    """20 landscapes where one configuration is clearly best: it is never pruned, the clearly
    worse ones always are by the end."""
    for seed in range(20):
        rng = random.Random(seed)
        difficulty = [rng.uniform(-0.3, 0.3) for _ in range(60)]  # shared by all: rows, not configs, vary most
        means = {"winner": 0.75, **{f"loser{i}": rng.uniform(0.2, 0.45) for i in range(5)}}
        full = {k: {r: min(1.0, max(0.0, m + d + rng.gauss(0, 0.05))) for r, d in enumerate(difficulty)}
                for k, m in means.items()}  # fmt: skip
        alive = set(full)
        for size in (6, 18, 60):
            alive -= to_prune({k: prefix(full[k], size) for k in alive}, None, alpha=0.05)
        assert alive == {"winner"}, seed


def test_equal_configurations_are_not_pruned():
    rng = random.Random(5)
    same = noisy(0.6, 30, rng)
    assert to_prune({"a": same, "b": dict(same), "c": dict(same)}, None, alpha=0.05) == set()


def test_the_leader_of_an_earlier_round_sets_the_bar_and_is_never_pruned():
    rng = random.Random(9)
    leader = noisy(0.9, 20, rng)
    candidates = {"weak": noisy(0.4, 20, rng), "as_good": {row: value for row, value in leader.items()}}
    assert to_prune(candidates, leader, alpha=0.05) == {"weak"}
    # without the leader, "as_good" is the best and "weak" still loses to it
    assert to_prune(candidates, None, alpha=0.05) == {"weak"}


def test_only_the_rows_every_candidate_saw_are_compared():
    # "late" has seen 3 rows only: the comparison is on those, too few to show anything.
    assert to_prune({"a": {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0}, "late": {0: 0.0, 1: 0.0, 2: 0.0}}, None,
                    alpha=0.05) == set()  # fmt: skip
    assert to_prune({"a": {r: 1.0 for r in range(8)}, "late": {r: 0.0 for r in range(8)}}, None, alpha=0.05) == {"late"}

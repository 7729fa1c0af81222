"""The Pareto front: maximise score, minimise cost (and latency, for issue 7)."""

from __future__ import annotations

import itertools
import random

import pytest

from sweeps.engine.ranking import (
    COST,
    LATENCY,
    SCORE,
    Objective,
    dominates,
    pareto_front,
)


def brute_force_front(points, objectives) -> set[int]:
    """The definition, pair by pair: what the fast version must agree with."""

    def oriented(p):
        return tuple(-p[o.key] if o.maximize else p[o.key] for o in objectives)

    complete = [i for i, p in enumerate(points) if all(p.get(o.key) is not None for o in objectives)]
    return {i for i in complete if not any(dominates(oriented(points[j]), oriented(points[i])) for j in complete)}


def test_score_against_cost():
    points = [
        {"score": 0.9, "cost": 3.0},  # best score: on the front however expensive
        {"score": 0.8, "cost": 1.0},  # on the front
        {"score": 0.7, "cost": 2.0},  # worse and dearer than the one above: dominated
        {"score": 0.2, "cost": 0.1},  # cheapest: on the front however bad
        {"score": 0.8, "cost": 1.5},  # same score as [1] but dearer: dominated
    ]
    assert pareto_front(points) == [0, 1, 3]  # best score first


def test_equal_points_are_all_kept_and_missing_values_left_out():
    points = [{"score": 0.5, "cost": 1.0}, {"score": 0.5, "cost": 1.0}, {"score": None, "cost": 0.0},
              {"score": 0.9}, {"score": float("nan"), "cost": 0.0}]  # fmt: skip
    assert pareto_front(points) == [0, 1]


def test_a_single_point_and_no_points():
    assert pareto_front([{"score": 0.1, "cost": 9}]) == [0]
    assert pareto_front([]) == []


def test_latency_as_a_third_objective_keeps_fast_runs_that_two_objectives_drop():
    points = [
        {"score": 0.9, "cost": 1.0, "latency": 900},
        {"score": 0.8, "cost": 2.0, "latency": 100},  # dominated on score and cost, but fastest
        {"score": 0.8, "cost": 2.0, "latency": 950},  # dominated on all three
    ]
    assert pareto_front(points, (SCORE, COST)) == [0]
    assert pareto_front(points, (SCORE, COST, LATENCY)) == [0, 1]


def test_direction_of_each_objective_is_respected():
    points = [{"score": 0.1, "cost": 5.0}, {"score": 0.9, "cost": 1.0}]
    assert pareto_front(points, (SCORE, COST)) == [1]
    minimise_score = Objective("score", maximize=False)
    maximise_cost = Objective("cost", maximize=True)
    assert pareto_front(points, (minimise_score, maximise_cost)) == [0]


@pytest.mark.parametrize("objectives", [(SCORE, COST), (SCORE, COST, LATENCY)])
def test_agrees_with_the_definition_on_random_points(objectives):
    rng = random.Random(6)
    for _ in range(200):
        # Few distinct values, so ties and equal points are common.
        points = [{"score": rng.choice([None, 0.0, 0.25, 0.5, 0.75, 1.0]), "cost": rng.randint(0, 5),
                   "latency": rng.randint(0, 3)} for _ in range(rng.randint(0, 25))]  # fmt: skip
        front = pareto_front(points, objectives)
        assert set(front) == brute_force_front(points, objectives)
        assert len(front) == len(set(front))


def test_front_is_ordered_best_first_on_the_first_objective():
    rng = random.Random(1)
    points = [{"score": rng.random(), "cost": rng.random()} for _ in range(300)]
    front = pareto_front(points)
    scores = [points[i]["score"] for i in front]
    costs = [points[i]["cost"] for i in front]
    assert scores == sorted(scores, reverse=True)
    assert costs == sorted(costs, reverse=True)  # on a 2-D front, a lower score must buy a lower cost
    for a, b in itertools.pairwise(front):
        assert points[a]["score"] > points[b]["score"]


def test_dominance():
    assert dominates((1, 1), (1, 2)) and not dominates((1, 2), (1, 1))
    assert not dominates((1, 1), (1, 1))  # equal is not better
    assert not dominates((0, 3), (3, 0))  # a trade-off


def test_no_objectives_is_refused():
    with pytest.raises(ValueError):
        pareto_front([{"score": 1}], ())

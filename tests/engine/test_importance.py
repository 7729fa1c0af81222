"""Parameter importance over a sweep's scored configurations (Optuna's PED-ANOVA)."""

from __future__ import annotations

import random

from sweeps.engine.importance import param_importances, space_of

RAW = {"params.temperature": {"min": 0.0, "max": 1.0}, "model": ["mock/a", "mock/b", "mock/c"]}


def history(n: int, seed: int = 1):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t, m = rng.random(), rng.choice(["mock/a", "mock/b", "mock/c"])
        out.append(({"model": m, "params": {"temperature": t}}, 1 - t))  # the score follows temperature alone
    return out


def test_the_parameter_the_score_follows_is_the_important_one():
    found = param_importances(space_of(RAW), history(40))
    assert set(found) == {"params.temperature", "model"}
    assert found["params.temperature"] > 0.8 and abs(sum(found.values()) - 1) < 1e-9


def test_too_little_to_tell_is_none():
    assert param_importances(space_of(RAW), history(3)) is None
    assert param_importances(space_of({"model": ["mock/a", "mock/b"]}), history(40)) is None  # one parameter
    assert space_of({"model": []}) is None  # not a space


def test_configurations_outside_the_space_are_left_out():
    outside = [({"model": "mock/z", "params": {"temperature": 0.5}}, 0.3)] * 10
    assert param_importances(space_of(RAW), outside) is None


def test_a_parameter_with_one_value_is_not_ranked():
    """Every run has it: it explains nothing, and a bar at 0 would only crowd the chart."""
    found = param_importances(space_of({**RAW, "system": ["Be brief."], "params.max_tokens": [256]}), history(40))
    assert set(found) == {"params.temperature", "model"}

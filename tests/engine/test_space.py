from __future__ import annotations

import math
import random

import pytest

from sweeps.engine.errors import SpecError
from sweeps.engine.space import (
    Choice,
    Space,
    Steps,
    Uniform,
    config_hash,
    flatten,
    get_path,
    make_config,
    parse_value_spec,
    sample_value,
    set_path,
)

PATH = "sweep.params.params.top_p"


def messages(raw: object) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_value_spec(raw, PATH)
    assert all(error.path == PATH for error in caught.value.errors)
    return [error.message for error in caught.value.errors]


# --- parse_value_spec ---------------------------------------------------------------------


def test_list_parses_to_choice():
    spec = parse_value_spec(["mock/echo", "mock/upper"], PATH)
    assert spec == Choice(("mock/echo", "mock/upper"))


def test_min_max_parses_to_uniform():
    assert parse_value_spec({"min": 0.5, "max": 1.0}, PATH) == Uniform(0.5, 1.0)
    spec = parse_value_spec({"min": 1e-3, "max": 1, "log": True}, PATH)
    assert spec == Uniform(1e-3, 1, log=True)


def test_min_max_step_parses_to_steps():
    assert parse_value_spec({"min": 0, "max": 1, "step": 0.1}, PATH) == Steps(0, 1, 0.1)


def test_min_greater_than_max_names_path_and_values():
    with pytest.raises(SpecError) as caught:
        parse_value_spec({"min": 1.0, "max": 0.5}, PATH)
    assert str(caught.value) == "sweep.params.params.top_p: min 1.0 is greater than max 0.5"


def test_empty_list_is_refused():
    assert messages([]) == ["empty list: give at least one value"]


@pytest.mark.parametrize("step", [0, -0.1])
def test_step_must_be_positive(step):
    assert messages({"min": 0, "max": 1, "step": step}) == [f"step must be greater than 0, got {step}"]


@pytest.mark.parametrize("low", [0, -1.0])
def test_log_needs_positive_min(low):
    assert messages({"min": low, "max": 1, "log": True}) == [f"log: true needs min greater than 0, got {low}"]


def test_log_step_must_be_a_growth_factor():
    assert messages({"min": 1, "max": 8, "step": 0.5, "log": True}) == [
        "with log: true, step is a growth factor and must be greater than 1, got 0.5"
    ]


def test_unknown_keys_are_named():
    assert messages({"min": 0, "max": 1, "steps": 0.1}) == ["unknown key 'steps' (expected min, max, step, log)"]


def test_missing_bounds_are_named():
    assert messages({"step": 1}) == ["missing 'min'", "missing 'max'"]


@pytest.mark.parametrize("bad", ["0.5", True, None, math.nan, math.inf])
def test_bounds_must_be_finite_numbers(bad):
    assert messages({"min": bad, "max": 1}) == [f"min must be a finite number, got {bad!r}"]


def test_log_must_be_boolean():
    assert messages({"min": 1, "max": 2, "log": "yes"}) == ["log must be true or false, got 'yes'"]


@pytest.mark.parametrize("raw", ["mock/echo", 0.5, None])
def test_scalar_is_refused(raw):
    assert messages(raw) == [f"expected a list of values or a mapping with min and max, got {raw!r}"]


def test_choice_values_must_be_json():
    [message] = messages([object()])
    assert message.startswith("values must be plain JSON data")


def test_every_problem_is_reported_at_once():
    assert messages({"min": 2, "max": 1, "step": 0, "color": "red"}) == [
        "unknown key 'color' (expected min, max, step, log)",
        "min 2 is greater than max 1",
        "step must be greater than 0, got 0",
    ]


# --- Steps ----------------------------------------------------------------------------------


def test_float_steps_do_not_drift():
    values = Steps(0, 1, 0.1).values()
    assert values == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert values[-1] == 1.0


def test_float_steps_keep_a_max_that_repeated_addition_would_miss():
    # 0.1 + 0.1 + 0.1 > 0.3 in floats, so a naive loop stops at 0.2.
    assert Steps(0, 0.3, 0.1).values() == (0.0, 0.1, 0.2, 0.3)


def test_steps_stop_before_an_off_grid_max():
    assert Steps(0, 1, 0.3).values() == (0.0, 0.3, 0.6, 0.9)


def test_int_steps_stay_ints():
    values = Steps(0, 10, 5).values()
    assert values == (0, 5, 10)
    assert all(type(value) is int for value in values)


def test_a_float_anywhere_makes_float_steps():
    values = Steps(0, 2, 1.0).values()
    assert values == (0.0, 1.0, 2.0)
    assert all(type(value) is float for value in values)


def test_log_steps_multiply_by_step():
    assert Steps(16, 1024, 2, log=True).values() == (16, 32, 64, 128, 256, 512, 1024)
    assert Steps(0.001, 1, 10.0, log=True).values() == (0.001, 0.01, 0.1, 1.0)
    assert Steps(1, 100, 3, log=True).values() == (1, 3, 9, 27, 81)


def test_huge_step_ranges_are_counted_without_building_them():
    steps = Steps(0, 1, 1e-9)
    assert steps.count() == 1_000_000_001
    assert steps.value_at(steps.count() - 1) == 1.0


# --- sample_value -----------------------------------------------------------------------------


def test_sample_choice_draws_every_listed_value():
    rng = random.Random(0)
    draws = {sample_value(Choice(("a", "b", "c")), rng) for _ in range(200)}
    assert draws == {"a", "b", "c"}


def test_sample_uniform_stays_within_bounds_and_spreads():
    rng = random.Random(0)
    draws = [sample_value(Uniform(0.5, 1.0), rng) for _ in range(2000)]
    assert all(0.5 <= draw <= 1.0 for draw in draws)
    assert min(draws) < 0.51 and max(draws) > 0.99
    assert 0.45 < sum(draw < 0.75 for draw in draws) / len(draws) < 0.55


def test_sample_steps_hits_every_step_including_max():
    rng = random.Random(0)
    steps = Steps(0, 1, 0.25)
    draws = {sample_value(steps, rng) for _ in range(300)}
    assert draws == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_sample_log_uniform_spreads_evenly_over_decades():
    rng = random.Random(0)
    draws = [sample_value(Uniform(1e-3, 1e3, log=True), rng) for _ in range(6000)]
    assert all(1e-3 <= draw <= 1e3 for draw in draws)
    # Six decades, about 1/6 of the draws in each; a linear draw would put ~0 below 1.
    per_decade = [sum(10**d <= x < 10 ** (d + 1) for x in draws) for d in range(-3, 3)]
    assert all(800 < count < 1200 for count in per_decade), per_decade


def test_sample_of_a_single_point_range_is_that_point():
    rng = random.Random(0)
    assert {sample_value(Uniform(2.0, 2.0, log=True), rng) for _ in range(50)} == {2.0}


# --- Space ----------------------------------------------------------------------------------


def test_space_keys_are_sorted():
    space = Space({"stages.b.prompt": Choice(("x",)), "model": Choice(("m",)), "params.t": Choice((0,))})
    assert space.keys() == ["model", "params.t", "stages.b.prompt"]


def test_grid_size_is_the_product_of_value_counts():
    space = Space({"model": Choice(("a", "b")), "params.top_p": Steps(0.5, 1.0, 0.1)})
    assert space.grid_size() == 2 * 6


def test_grid_size_is_none_with_a_continuous_range():
    assert Space({"model": Choice(("a",)), "params.t": Uniform(0, 1)}).grid_size() is None


def test_empty_space_has_one_grid_point():
    assert Space({}).grid_size() == 1


# --- dotted paths and configs ---------------------------------------------------------------


def test_set_path_creates_nested_dicts_and_keeps_siblings():
    config = {"params": {"top_p": 0.9}}
    set_path(config, "params.temperature", 0.5)
    set_path(config, "stages.summarize.prompt", "Hi")
    assert config == {
        "params": {"top_p": 0.9, "temperature": 0.5},
        "stages": {"summarize": {"prompt": "Hi"}},
    }


def test_set_path_refuses_to_walk_through_a_value():
    with pytest.raises(ValueError, match="cannot set model.name: model already holds 'mock/echo'"):
        set_path({"model": "mock/echo"}, "model.name", "x")


def test_get_path_reads_nested_values_or_the_default():
    config = {"params": {"temperature": 0.0}, "model": "mock/echo"}
    assert get_path(config, "params.temperature") == 0.0
    assert get_path(config, "params.top_p", "none") == "none"
    assert get_path(config, "model.name", "none") == "none"


def test_make_config_builds_nested_config():
    config = make_config({"model": "mock/echo", "params.temperature": 0.5, "stages.a.prompt": "P"})
    assert config == {
        "model": "mock/echo",
        "params": {"temperature": 0.5},
        "stages": {"a": {"prompt": "P"}},
    }


def test_make_config_copies_values():
    stop = ["\n"]
    first = make_config({"params.stop": stop})
    second = make_config({"params.stop": stop})
    first["params"]["stop"].append("END")
    assert stop == ["\n"]
    assert second["params"]["stop"] == ["\n"]


def test_flatten_inverts_make_config():
    assignments = {"model": "m", "params.t": 0.5, "params.extra": {}, "stages.a.prompt": "P"}
    assert flatten(make_config(assignments)) == assignments


def test_config_hash_ignores_key_order():
    one = {"model": "m", "params": {"temperature": 0.5, "top_p": 1.0}}
    other = {"params": {"top_p": 1.0, "temperature": 0.5}, "model": "m"}
    assert config_hash(one) == config_hash(other)
    assert len(config_hash(one)) == 64


def test_config_hash_changes_with_any_value():
    base = {"model": "m", "params": {"temperature": 0.5}}
    assert config_hash(base) != config_hash({"model": "m", "params": {"temperature": 0.6}})
    assert config_hash(base) != config_hash({"model": "n", "params": {"temperature": 0.5}})


def test_config_hash_tells_int_from_float():
    # Documented: JSON keeps 1 and 1.0 apart, so they are different configs.
    assert config_hash({"n": 1}) != config_hash({"n": 1.0})

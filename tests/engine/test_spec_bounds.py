"""Every number of a spec has a maximum, and no value that cannot be stored gets past parse_spec:
NUL, lone surrogates, NaN and infinities, integers beyond 64 bits, wherever they are. A property
test feeds the parser hostile values in every place: it answers a spec or a SpecError, nothing else."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeps.engine.errors import SpecError
from sweeps.engine.spec import SpecLimits, load_spec_text, parse_spec
from sweeps.engine.values import text_problem, value_problems


def base(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Bounds",
        "pipeline": [{"name": "answer", "prompt": "Q: {{ question }}", "model": "mock/echo"}],
        "dataset": [{"question": "one", "expected": "1"}, {"question": "two", "expected": "2"}],
        "scorers": [{"type": "contains", "value": "{{ expected }}"}],
        "sweep": {"type": "random", "params": {"params.temperature": {"min": 0, "max": 1}}, "n_trials": 10},
    }
    data.update(overrides)
    return data


LIMITS = SpecLimits(max_grid=1000, max_trials=100, max_repeats=5, max_samples=400)


def refusals(data: Any, limits: SpecLimits | None = LIMITS) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data, limits=limits)
    return {error.path: error.message for error in info.value.errors}


def with_sweep(**fields: Any) -> dict[str, Any]:
    data = base()
    data["sweep"] = {**data["sweep"], **fields}
    return data


# --- item 7: the maxima ---


@pytest.mark.parametrize(
    "data, path, message",
    [
        (with_sweep(n_trials=1_000_000_000), "sweep.n_trials", "must be at most 100"),
        (base(repeats=1_000_000_000), "repeats", "must be at most 5"),
        (base(repeats=10**10), "repeats", "must be at most 5"),
        (with_sweep(top_k=10**6), "sweep.top_k", "must be at most 1,000"),
        (with_sweep(seed=-1), "seed", "must be at least 0"),
        (with_sweep(seed=2**63), "sweep.seed", "must fit in 64 bits"),
        (base(budget={"max_tokens": 10**30}), "budget.max_tokens", "must fit in 64 bits"),
        (base(budget={"max_tokens": 2**63 - 1}), "budget.max_tokens", "must be at most 1,000,000,000,000,000"),
        (base(budget={"max_cost_usd": 1e12}), "budget.max_cost_usd", "must be at most 1,000,000,000"),
        (base(scorers=[{"type": "contains", "value": "x", "weight": 1e300}]), "scorers[0].weight", "at most 1,000,000"),
        (base(pipeline=[{"name": "a", "prompt": "{{ question }}", "model": "mock/echo", "params": {"max_tokens": 10**12}}]),
         "pipeline[0].params.max_tokens", "max_tokens must be a whole number from 1 to 10,000,000"),
        (with_sweep(params={"params.max_tokens": [100, "lots"]}), "sweep.params.params.max_tokens", "max_tokens must be"),
    ],
)  # fmt: skip
def test_every_number_has_a_maximum_named_by_its_field(data, path, message):
    errors = refusals(data)
    assert any(p.endswith(path) and message in m for p, m in errors.items()), errors


def test_samples_per_sweep_are_bounded_whatever_makes_them():
    # 100 trials x 2 rows x 2 repeats = 400: at the limit; one more repeat is over it.
    assert parse_spec(with_sweep(n_trials=100) | {"repeats": 2}, limits=LIMITS).repeats == 2
    errors = refusals(with_sweep(n_trials=100) | {"repeats": 3})
    assert "600 samples" in errors["sweep.n_trials"] and "limit of 400" in errors["sweep.n_trials"]
    grid = base(sweep={"type": "grid", "params": {"params.temperature": list(range(300))}})
    assert "600 samples" in refusals(grid)["sweep.params"]


def test_without_limits_a_stored_spec_is_read_again_as_it_was():
    # A sweep's snapshot is parsed again by its worker: a setting lowered since must not break it.
    data = with_sweep(n_trials=5000) | {"repeats": 50}
    assert parse_spec(data).sweep.n_trials == 5000
    assert "sweep.n_trials" in refusals(data)


# --- item 8: values nothing can store ---


@pytest.mark.parametrize(
    "data, path, message",
    [
        (base(name="a\x00b"), "name", "NUL"),
        (base(name="a\ud800b"), "name", "lone surrogate"),
        (base(description="\udfff"), "description", "lone surrogate"),
        (base(pipeline=[{"name": "answer", "prompt": "Q: {{ question }}\x00", "model": "mock/echo"}]), "pipeline[0].prompt", "NUL"),
        (base(dataset=[{"question": "x\x00"}]), "dataset[0].question", "NUL"),
        (base(dataset=[{"quest\x00ion": "x"}]), "dataset[0]", "a key must not contain the NUL"),
        (base(dataset=[{"question": float("nan")}]), "dataset[0].question", "must be a finite number"),
        (base(dataset=[{"question": 10**30}]), "dataset[0].question", "must fit in 64 bits"),
        (with_sweep(explore_ratio=float("inf")), "sweep.explore_ratio", "must be a finite number"),
        (base(budget={"max_cost_usd": float("nan")}), "budget.max_cost_usd", "must be a finite number"),
        (with_sweep(params={"params.temperature": [0.5, float("-inf")]}), "sweep.params.params.temperature[1]", "finite"),
    ],
)  # fmt: skip
def test_values_that_cannot_be_stored_are_refused_by_their_path(data, path, message):
    errors = refusals(data)
    assert message in errors.get(path, ""), errors


def test_json_infinity_and_nan_say_finite_not_number_got_number():
    data = json.loads(json.dumps(base()).replace('"n_trials": 10', '"n_trials": 10, "seed": NaN'))
    assert refusals(data) == {"sweep.seed": "must be a finite number, got nan"}
    assert refusals(load_spec_text("name: x\nbudget: {max_cost_usd: .inf}\n"))["budget.max_cost_usd"].startswith(
        "must be a finite number"
    )


def test_text_problem_passes_ordinary_unicode():
    assert text_problem("héllo ✓ 😀 \t\n") is None
    assert value_problems({"a": [1, 2.5, -(2**63), 2**63 - 1, "ok", None, True]}) == []


# --- the property: any value anywhere gives a spec or a SpecError ---

hostile_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0xDFFF), max_size=8)
hostile_scalars = st.one_of(
    st.none(), st.booleans(), hostile_text,
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([10**30, 2**63, -1, 0, 10**10]),
    st.floats(allow_nan=True, allow_infinity=True),
)  # fmt: skip
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)),
    max_leaves=6,
)
# Every place of the base spec a value can go.
PLACES = [
    ("name",), ("description",), ("repeats",), ("max_concurrency",), ("fail_fast",),
    ("budget", "max_tokens"), ("budget", "max_cost_usd"), ("budget",),
    ("sweep", "n_trials"), ("sweep", "top_k"), ("sweep", "seed"), ("sweep", "explore_ratio"), ("sweep", "type"),
    ("sweep", "early_stopping"), ("sweep", "params", "params.temperature"), ("sweep", "params", "model"),
    ("pipeline", 0, "name"), ("pipeline", 0, "prompt"), ("pipeline", 0, "model"), ("pipeline", 0, "params"),
    ("pipeline", 0, "system"), ("dataset", 0, "question"), ("dataset", 0), ("dataset",),
    ("scorers", 0, "value"), ("scorers", 0, "weight"), ("scorers", 0),
]  # fmt: skip


@given(place=st.sampled_from(PLACES), value=hostile_values)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_value_in_any_place_is_a_spec_or_a_spec_error(place, value):
    data = copy.deepcopy(base())
    target = data
    for key in place[:-1]:
        target = target.setdefault(key, {}) if isinstance(target, dict) else target[key]
    target[place[-1]] = value
    try:
        spec = parse_spec(data, limits=LIMITS)
    except SpecError as e:
        assert e.errors and all(error.message for error in e.errors)
        return
    # What passed can be stored: every value is storable text or a 64-bit / finite number.
    assert value_problems(spec.to_dict()) == []

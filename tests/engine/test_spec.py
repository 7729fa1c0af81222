from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sweeps.engine.errors import SpecError
from sweeps.engine.space import Choice, Steps, Uniform
from sweeps.engine.spec import BudgetSpec, StageSpec, load_spec_text, parse_spec

# The example of DESIGN.md "Experiment spec", with real prompts in place of "...".
DESIGN_EXAMPLE = """\
name: Ticket triage
pipeline:
  - name: summarize
    system: You are concise.
    prompt: "Summarize this ticket: {{ ticket }}"
    model: mock/echo
    params: {temperature: 0.2, max_tokens: 128}
  - name: label
    prompt: "One word label for: {{ summarize }}"   # earlier outputs are variables
dataset:
  - {ticket: "I was charged twice", expected: billing}
scorers:
  - {type: contains, value: "{{ expected }}", weight: 2}
  - {type: max_length, value: 40}
sweep:
  type: grid            # grid | random | guided
  params:               # dotted paths into a run's config
    model: [mock/echo, mock/upper]
    params.temperature: [0.0, 0.5, 1.0]           # every stage
    stages.summarize.prompt: ["Summarize: {{ ticket }}", "TL;DR {{ ticket }}"]
    params.top_p: {min: 0.5, max: 1.0, step: 0.1} # discrete range
  n_trials: 40          # random / guided
  top_k: 5              # guided
  explore_ratio: 0.3    # guided
  seed: 7               # reproducible proposals
repeats: 1              # replicates per (config, row)
max_concurrency: 16
budget: {max_tokens: 200000, max_cost_usd: 5}
"""


def valid() -> dict[str, Any]:
    """A small valid spec; each refusal test breaks exactly one thing in it."""
    return {
        "name": "Triage",
        "pipeline": [
            {"name": "summarize", "prompt": "Summarize: {{ ticket }}", "model": "mock/echo"},
            {"name": "label", "prompt": "Label: {{ summarize }}"},
        ],
        "dataset": [{"ticket": "charged twice", "expected": "billing"}],
        "scorers": [{"type": "contains", "value": "{{ expected }}"}],
    }


def edited(edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    spec = valid()
    edit(spec)
    return spec


def with_sweep(**sweep: Any) -> dict[str, Any]:
    return edited(lambda s: s.update(sweep=sweep))


def refusals(data: Any, **options: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(data, **options)
    return [(error.path, error.message) for error in info.value.errors]


def assert_refused(data: Any, path: str, message: str, **options: Any) -> None:
    errors = refusals(data, **options)
    assert any(p == path and message in m for p, m in errors), errors


# --- a valid spec ----------------------------------------------------------------------


def test_design_example_parses_to_typed_values():
    spec = parse_spec(load_spec_text(DESIGN_EXAMPLE))

    assert spec.name == "Ticket triage"
    assert spec.pipeline == (
        StageSpec(
            name="summarize",
            prompt="Summarize this ticket: {{ ticket }}",
            system="You are concise.",
            model="mock/echo",
            params={"temperature": 0.2, "max_tokens": 128},
        ),
        StageSpec(name="label", prompt="One word label for: {{ summarize }}", system=None, model=None, params={}),
    )
    assert spec.dataset == ({"ticket": "I was charged twice", "expected": "billing"},)
    assert spec.scorers == (
        {"type": "contains", "value": "{{ expected }}", "weight": 2},
        {"type": "max_length", "value": 40},
    )
    assert spec.sweep.type == "grid"
    assert spec.sweep.space.params == {
        "model": Choice(("mock/echo", "mock/upper")),
        "params.temperature": Choice((0.0, 0.5, 1.0)),
        "stages.summarize.prompt": Choice(("Summarize: {{ ticket }}", "TL;DR {{ ticket }}")),
        "params.top_p": Steps(0.5, 1.0, 0.1),
    }
    assert spec.sweep.space.grid_size() == 2 * 3 * 2 * 6
    assert (spec.sweep.n_trials, spec.sweep.top_k, spec.sweep.explore_ratio, spec.sweep.seed) == (
        40,
        5,
        0.3,
        7,
    )
    assert (spec.repeats, spec.max_concurrency) == (1, 16)
    assert spec.budget == BudgetSpec(max_tokens=200000, max_cost_usd=5)


def test_defaults_fill_what_a_minimal_spec_leaves_out():
    spec = parse_spec({"name": "Minimal", "pipeline": [{"name": "only", "prompt": "Hi", "model": "mock/echo"}]})

    assert spec.description == ""
    assert spec.dataset == ({},)  # one empty row: the pipeline still runs once per config
    assert spec.scorers == ()
    assert spec.sweep.type == "grid"
    assert spec.sweep.space.params == {}
    assert (spec.sweep.n_trials, spec.sweep.top_k, spec.sweep.explore_ratio, spec.sweep.seed) == (
        None,
        5,
        0.3,
        None,
    )
    assert (spec.repeats, spec.max_concurrency) == (1, 8)
    assert spec.budget == BudgetSpec(max_tokens=None, max_cost_usd=None)


def test_an_empty_dataset_means_one_empty_row():
    data = {
        "name": "No data",
        "pipeline": [{"name": "only", "prompt": "Hi", "model": "mock/echo"}],
        "dataset": [],
    }
    assert parse_spec(data).dataset == ({},)


def test_json_text_is_accepted_like_yaml():
    from_json = parse_spec(load_spec_text(json.dumps(valid())))
    assert from_json == parse_spec(valid())
    assert from_json.pipeline[1].name == "label"


def test_a_column_of_any_row_is_a_template_variable():
    data = valid()
    data["dataset"] = [{"ticket": "a"}, {"ticket": "b", "channel": "email"}]
    data["pipeline"][1]["prompt"] = "Label {{ summarize }} from {{ channel }}"
    data["scorers"] = [{"type": "contains", "value": "{{ channel }}"}]
    assert parse_spec(data).dataset[1] == {"ticket": "b", "channel": "email"}


def test_integral_floats_count_as_integers():
    # JavaScript clients send 5 as 5.0.
    spec = parse_spec(edited(lambda s: s.update(repeats=3.0, max_concurrency=256)))
    assert spec.repeats == 3 and isinstance(spec.repeats, int)
    assert spec.max_concurrency == 256


def test_the_sweep_may_offer_no_system_message_as_a_choice():
    spec = parse_spec(with_sweep(params={"system": [None, "Be brief."]}))
    assert spec.sweep.space.params["system"] == Choice((None, "Be brief."))


def test_a_stage_prompt_in_the_sweep_may_use_earlier_stages():
    spec = parse_spec(with_sweep(params={"stages.label.prompt": ["{{ summarize }} / {{ ticket }}"]}))
    assert "stages.label.prompt" in spec.sweep.space.params


@pytest.mark.parametrize("sweep_model", ["model", "stages.summarize.model"])
def test_the_sweep_can_supply_the_first_stage_model(sweep_model):
    data = edited(lambda s: s["pipeline"][0].pop("model"))
    data["sweep"] = {"params": {sweep_model: ["mock/echo", "mock/upper"]}}
    assert parse_spec(data).pipeline[0].model is None


def test_known_providers_accept_their_models():
    spec = parse_spec(
        with_sweep(params={"model": ["mock/echo", "openai/gpt-4o-mini"]}), known_providers={"mock", "openai"}
    )
    assert spec.sweep.space.params["model"] == Choice(("mock/echo", "openai/gpt-4o-mini"))


def test_the_spec_does_not_share_state_with_its_input():
    data = valid()
    data["pipeline"][0]["params"] = {"stop": ["\n"]}
    spec = parse_spec(data)
    data["pipeline"][0]["params"]["stop"].append("!")
    data["dataset"][0]["ticket"] = "changed"
    assert spec.pipeline[0].params == {"stop": ["\n"]}
    assert spec.dataset[0]["ticket"] == "charged twice"


def test_yaml_keeps_dates_as_text():
    # A spec is stored as JSON, which has no dates.
    assert load_spec_text("day: 2024-01-31") == {"day": "2024-01-31"}


def test_a_name_longer_than_its_column_is_refused():
    with pytest.raises(SpecError) as caught:
        parse_spec(valid() | {"name": "n" * 201})
    assert [str(e) for e in caught.value.errors] == ["name: has 201 characters; at most 200 are allowed"]
    assert parse_spec(valid() | {"name": "n" * 200}).name == "n" * 200


def test_yaml_aliases_are_refused_naming_the_line():
    laughs = 'a: &a ["lol", "lol"]\nb: &b [*a, *a]\nc: [*b, *b]\n'  # each level doubles the JSON
    with pytest.raises(SpecError) as caught:
        load_spec_text(laughs)
    assert str(caught.value) == "invalid YAML at line 2: aliases (*name) are not allowed in a spec: write the value out"


# --- round trip ------------------------------------------------------------------------


def test_to_dict_round_trips_the_design_example():
    spec = parse_spec(load_spec_text(DESIGN_EXAMPLE))
    as_json = json.loads(json.dumps(spec.to_dict()))  # JSON-serialisable, nothing lost
    assert parse_spec(as_json) == spec
    assert as_json["sweep"]["params"]["params.top_p"] == {"min": 0.5, "max": 1.0, "step": 0.1}
    assert as_json["pipeline"][1] == {
        "name": "label",
        "prompt": "One word label for: {{ summarize }}",
        "system": None,
        "model": None,
        "params": {},
    }


def test_to_dict_round_trips_ranges_and_defaults():
    data = with_sweep(
        type="random",
        n_trials=12,
        params={
            "params.temperature": {"min": 0.0, "max": 1.5},
            "params.top_p": {"min": 0.01, "max": 1.0, "log": True},
            "params.max_tokens": {"min": 16, "max": 1024, "step": 2, "log": True},
        },
    )
    spec = parse_spec(data)
    normalised = spec.to_dict()

    assert parse_spec(json.loads(json.dumps(normalised))) == spec
    assert spec.sweep.space.params["params.top_p"] == Uniform(0.01, 1.0, log=True)
    assert normalised["sweep"]["params"]["params.temperature"] == {"min": 0.0, "max": 1.5}
    assert normalised["sweep"]["params"]["params.max_tokens"] == {
        "min": 16,
        "max": 1024,
        "step": 2,
        "log": True,
    }
    assert normalised["max_concurrency"] == 8 and normalised["sweep"]["top_k"] == 5
    assert normalised["budget"] == {"max_tokens": None, "max_cost_usd": None}


# --- refusals --------------------------------------------------------------------------


def test_every_problem_is_reported_at_once():
    data = valid()
    del data["name"]
    data["pipeline"][1]["prompt"] = "{{ summary }}"
    data["repeats"] = 0
    data["sweep"] = {"type": "random", "explore_ratio": 2}

    paths = [path for path, _ in refusals(data)]

    assert sorted(paths) == sorted(["name", "pipeline[1].prompt", "repeats", "sweep.n_trials", "sweep.explore_ratio"])


def test_error_names_field_path_and_reason():
    data = with_sweep(params={"params.top_p": {"min": 1.0, "max": 0.5}})
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert str(info.value) == "sweep.params.params.top_p: min 1.0 is greater than max 0.5"


def test_a_spec_that_is_not_an_object_is_refused():
    assert refusals(["name", "pipeline"]) == [("", "the spec must be an object with a name and a pipeline, got list")]


REFUSALS: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    # (case, edit of valid(), path, message)
    ("missing name", lambda s: s.pop("name"), "name", "is required"),
    ("blank name", lambda s: s.update(name="  "), "name", "must not be empty"),
    ("name not text", lambda s: s.update(name=5), "name", "must be a string, got integer"),
    ("unknown top-level key", lambda s: s.update(nmae="x"), "nmae", "unknown key; did you mean 'name'?"),
    ("missing pipeline", lambda s: s.pop("pipeline"), "pipeline", "needs at least one stage"),
    ("empty pipeline", lambda s: s.update(pipeline=[]), "pipeline", "needs at least one stage"),
    (
        "pipeline not a list",
        lambda s: s.update(pipeline={"name": "a"}),
        "pipeline",
        "must be a list of stages, got object",
    ),
    (
        "stage not an object",
        lambda s: s["pipeline"].append("c"),
        "pipeline[2]",
        "must be an object, got string",
    ),
    (
        "unknown stage key",
        lambda s: s["pipeline"][1].update(promt="x"),
        "pipeline[1].promt",
        "did you mean 'prompt'?",
    ),
    ("missing stage name", lambda s: s["pipeline"][1].pop("name"), "pipeline[1].name", "is required"),
    (
        "duplicate stage name",
        lambda s: s["pipeline"].append({"name": "label", "prompt": "{{ ticket }}"}),
        "pipeline[2].name",
        "duplicate stage name 'label'",
    ),
    (
        "stage name with a space",
        lambda s: s["pipeline"][1].update(name="my label"),
        "pipeline[1].name",
        "'my label' is not a valid stage name",
    ),
    (
        "stage name starting with a digit",
        lambda s: s["pipeline"][1].update(name="2nd"),
        "pipeline[1].name",
        "'2nd' is not a valid stage name",
    ),
    (
        "stage name a keyword",
        lambda s: s["pipeline"][1].update(name="if"),
        "pipeline[1].name",
        "'if' is not a valid stage name",
    ),
    (
        "stage name a Jinja literal",
        lambda s: s["pipeline"][1].update(name="true"),
        "pipeline[1].name",
        "'true' is not a valid stage name",
    ),
    (
        "stage name is a column",
        lambda s: s["pipeline"][1].update(name="expected"),
        "pipeline[1].name",
        "'expected' is also a dataset column",
    ),
    ("missing prompt", lambda s: s["pipeline"][1].pop("prompt"), "pipeline[1].prompt", "is required"),
    (
        "prompt does not compile",
        lambda s: s["pipeline"][0].update(prompt="{{ ticket }"),
        "pipeline[0].prompt",
        "line 1:",
    ),
    (
        "system does not compile",
        lambda s: s["pipeline"][0].update(system="{% if %}"),
        "pipeline[0].system",
        "line 1:",
    ),
    (
        "unknown variable",
        lambda s: s["pipeline"][0].update(prompt="{{ tickt }}"),
        "pipeline[0].prompt",
        "unknown variable 'tickt': not a dataset column (expected, ticket) nor an earlier stage (none)",
    ),
    (
        "variable of a later stage",
        lambda s: s["pipeline"][0].update(prompt="{{ label }}"),
        "pipeline[0].prompt",
        "'label' is not an earlier stage: a stage can use only the outputs of stages before it",
    ),
    (
        "stage uses itself",
        lambda s: s["pipeline"][1].update(system="{{ label }}"),
        "pipeline[1].system",
        "'label' is not an earlier stage",
    ),
    (
        "model without provider",
        lambda s: s["pipeline"][0].update(model="gpt-4o"),
        "pipeline[0].model",
        "'gpt-4o' is not of the form provider/model",
    ),
    (
        "model with empty name",
        lambda s: s["pipeline"][0].update(model="mock/"),
        "pipeline[0].model",
        "is not of the form provider/model",
    ),
    (
        "first stage without a model",
        lambda s: s["pipeline"][0].pop("model"),
        "pipeline[0].model",
        "the first stage needs a model (provider/model) unless the sweep sets model",
    ),
    (
        "stage params not an object",
        lambda s: s["pipeline"][0].update(params=[1]),
        "pipeline[0].params",
        "must be an object, got list",
    ),
    (
        "dataset not a list",
        lambda s: s.update(dataset={"ticket": "x"}),
        "dataset",
        "must be a list of objects, got object",
    ),
    (
        "dataset row not an object",
        lambda s: s["dataset"].extend([{"ticket": "b"}, {"ticket": "c"}, "d"]),
        "dataset[3]",
        "must be an object, got string",
    ),
    (
        "dataset row with a number key",
        lambda s: s["dataset"].append({1: "x"}),
        "dataset[1]",
        "keys must be strings, got integer 1",
    ),
    (
        "scorers not a list",
        lambda s: s.update(scorers={"type": "contains"}),
        "scorers",
        "must be a list, got object",
    ),
    (
        "scorer not an object",
        lambda s: s["scorers"].append("contains"),
        "scorers[1]",
        "must be an object, got string",
    ),
    (
        "unknown scorer type",
        lambda s: s["scorers"].append({"type": "vibes"}),
        "scorers[1].type",
        "unknown scorer type 'vibes'",
    ),
    (
        "scorer weight 0",
        lambda s: s["scorers"][0].update(weight=0),
        "scorers[0].weight",
        "must be greater than 0",
    ),
    (
        "scorer bad regex",
        lambda s: s["scorers"].append({"type": "regex", "value": "("}),
        "scorers[1].value",
        "invalid regular expression",
    ),
    (
        "scorer unknown variable",
        lambda s: s["scorers"][0].update(value="{{ expectd }}"),
        "scorers[0].value",
        "unknown variable 'expectd': not a dataset column (expected, ticket) nor an earlier stage (summarize, label)",
    ),
    ("repeats 0", lambda s: s.update(repeats=0), "repeats", "must be at least 1, got 0"),
    ("repeats a boolean", lambda s: s.update(repeats=True), "repeats", "must be an integer, got boolean"),
    (
        "max_concurrency 0",
        lambda s: s.update(max_concurrency=0),
        "max_concurrency",
        "must be at least 1, got 0",
    ),
    (
        "max_concurrency above cap",
        lambda s: s.update(max_concurrency=257),
        "max_concurrency",
        "must be at most 256, got 257",
    ),
    (
        "budget tokens 0",
        lambda s: s.update(budget={"max_tokens": 0}),
        "budget.max_tokens",
        "must be at least 1, got 0",
    ),
    (
        "budget tokens negative",
        lambda s: s.update(budget={"max_tokens": -5}),
        "budget.max_tokens",
        "must be at least 1, got -5",
    ),
    (
        "budget cost 0",
        lambda s: s.update(budget={"max_cost_usd": 0}),
        "budget.max_cost_usd",
        "must be greater than 0, got 0",
    ),
    (
        "budget cost negative",
        lambda s: s.update(budget={"max_cost_usd": -0.5}),
        "budget.max_cost_usd",
        "must be greater than 0",
    ),
    (
        "budget cost not a number",
        lambda s: s.update(budget={"max_cost_usd": "5"}),
        "budget.max_cost_usd",
        "must be a number, got string",
    ),
    ("unknown budget key", lambda s: s.update(budget={"tokens": 5}), "budget.tokens", "unknown key"),
    ("budget not an object", lambda s: s.update(budget=5), "budget", "must be an object, got integer"),
]


@pytest.mark.parametrize(
    ("edit", "path", "message"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_refusal(edit, path, message):
    assert_refused(edited(edit), path, message)


def test_unknown_provider_is_refused_when_providers_are_known():
    data = with_sweep(params={"model": ["mock/echo", "acme/big"]})
    errors = refusals(data, known_providers=["openai", "mock"])
    assert errors == [("sweep.params.model[1]", "unknown provider 'acme' (known: mock, openai)")]


SWEEP_REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown type",
        {"type": "bayes"},
        "sweep.type",
        "unknown sweep type 'bayes': use grid, random, guided or tpe",
    ),
    ("unknown sweep key", {"n_trial": 3}, "sweep.n_trial", "did you mean 'n_trials'?"),
    ("params not an object", {"params": ["model"]}, "sweep.params", "must be an object, got list"),
    ("bare name", {"params": {"temperature": [0.1]}}, "sweep.params.temperature", "not a parameter path"),
    ("params without a name", {"params": {"params": [0.1]}}, "sweep.params.params", "not a parameter path"),
    ("nested params", {"params": {"params.a.b": [1]}}, "sweep.params.params.a.b", "not a parameter path"),
    (
        "unknown field",
        {"params": {"temperature.x": [1]}},
        "sweep.params.temperature.x",
        "not a parameter path",
    ),
    (
        "stage path without a field",
        {"params": {"stages.label": ["x"]}},
        "sweep.params.stages.label",
        "not a parameter path",
    ),
    (
        "stage path with a bare name",
        {"params": {"stages.label.temperature": [1]}},
        "sweep.params.stages.label.temperature",
        "not a parameter path",
    ),
    (
        "unknown stage",
        {"params": {"stages.nope.prompt": ["x"]}},
        "sweep.params.stages.nope.prompt",
        "unknown stage 'nope' (stages: summarize, label)",
    ),
    (
        "empty choices",
        {"params": {"params.temperature": []}},
        "sweep.params.params.temperature",
        "empty list",
    ),
    (
        "value spec neither list nor range",
        {"params": {"params.temperature": 0.5}},
        "sweep.params.params.temperature",
        "expected a list of values",
    ),
    (
        "min above max",
        {"params": {"params.top_p": {"min": 1.0, "max": 0.5}}},
        "sweep.params.params.top_p",
        "min 1.0 is greater than max 0.5",
    ),
    (
        "model as a range",
        {"params": {"model": {"min": 1, "max": 2, "step": 1}}},
        "sweep.params.model",
        "model takes a list of choices, not a range",
    ),
    (
        "model choice malformed",
        {"params": {"model": ["mock/echo", "echo"]}},
        "sweep.params.model[1]",
        "'echo' is not of the form provider/model",
    ),
    (
        "prompt choice not text",
        {"params": {"prompt": ["ok", 3]}},
        "sweep.params.prompt[1]",
        "must be a string, got integer",
    ),
    (
        "prompt choice does not compile",
        {"params": {"stages.label.prompt": ["{{ x"]}},
        "sweep.params.stages.label.prompt[0]",
        "line 1:",
    ),
    (
        "stage prompt choice uses a later stage",
        {"params": {"stages.summarize.prompt": ["{{ label }}"]}},
        "sweep.params.stages.summarize.prompt[0]",
        "'label' is not an earlier stage",
    ),
    (
        "shared prompt choice uses a stage",  # it applies to the first stage too
        {"params": {"prompt": ["{{ summarize }}"]}},
        "sweep.params.prompt[0]",
        "'summarize' is not an earlier stage",
    ),
    (
        "system choice unknown variable",
        {"params": {"system": ["{{ tone }}"]}},
        "sweep.params.system[0]",
        "unknown variable 'tone'",
    ),
    (
        "grid with a continuous range",
        {"params": {"params.temperature": {"min": 0, "max": 1}}},
        "sweep.params.params.temperature",
        "a grid needs discrete values: add a step or give a list, or use type random or guided",
    ),
    ("random without n_trials", {"type": "random"}, "sweep.n_trials", "is required for a random sweep"),
    ("guided without n_trials", {"type": "guided"}, "sweep.n_trials", "is required for a guided sweep"),
    (
        "guided with n_trials null",
        {"type": "guided", "n_trials": None},
        "sweep.n_trials",
        "is required for a guided sweep",
    ),
    ("tpe without n_trials", {"type": "tpe"}, "sweep.n_trials", "is required for a tpe sweep"),
    ("n_trials 0", {"type": "random", "n_trials": 0}, "sweep.n_trials", "must be at least 1, got 0"),
    (
        "n_trials not an integer",
        {"type": "random", "n_trials": "ten"},
        "sweep.n_trials",
        "must be an integer, got string",
    ),
    ("top_k 0", {"type": "guided", "n_trials": 5, "top_k": 0}, "sweep.top_k", "must be at least 1, got 0"),
    (
        "explore_ratio below 0",
        {"explore_ratio": -0.1},
        "sweep.explore_ratio",
        "must be between 0 and 1, got -0.1",
    ),
    (
        "explore_ratio above 1",
        {"explore_ratio": 1.5},
        "sweep.explore_ratio",
        "must be between 0 and 1, got 1.5",
    ),
    ("seed not an integer", {"seed": 1.5}, "sweep.seed", "must be an integer, got number"),
]


@pytest.mark.parametrize(
    ("sweep", "path", "message"),
    [case[1:] for case in SWEEP_REFUSALS],
    ids=[case[0] for case in SWEEP_REFUSALS],
)
def test_sweep_refusal(sweep, path, message):
    assert_refused(with_sweep(**sweep), path, message)


def test_explore_ratio_bounds_are_allowed():
    assert parse_spec(with_sweep(explore_ratio=0)).sweep.explore_ratio == 0
    assert parse_spec(with_sweep(explore_ratio=1)).sweep.explore_ratio == 1


def test_a_grid_over_the_limit_advises_random_or_guided():
    params = {
        "params.temperature": {"min": 0, "max": 1, "step": 0.01},
        "model": ["mock/a", "mock/b"],
    }  # 101 * 2

    assert refusals(with_sweep(params=params), max_grid=201) == [
        (
            "sweep.params",
            "the grid has 202 configurations, more than the limit of 201: use type random or guided with n_trials",
        )
    ]
    assert parse_spec(with_sweep(params=params), max_grid=202).sweep.space.grid_size() == 202
    # The same space sampled is fine: only a grid enumerates every point.
    assert parse_spec(with_sweep(type="random", n_trials=20, params=params), max_grid=201).sweep.type == "random"


def test_invalid_yaml_names_the_line():
    with pytest.raises(SpecError) as info:
        load_spec_text("name: x\npipeline:\n  - name: [a\n")
    [error] = info.value.errors
    assert error.path == ""
    assert error.message.startswith("invalid YAML at line 4:")


def test_duplicate_yaml_keys_are_refused_not_silently_overwritten():
    with pytest.raises(SpecError) as info:
        load_spec_text("sweep:\n  params:\n    params.temperature: [0]\n    params.temperature: [1]\n")
    assert str(info.value) == "invalid YAML at line 4: duplicate key 'params.temperature'"


def test_fail_fast_defaults_to_true_and_takes_a_boolean():
    assert parse_spec(valid()).fail_fast is True
    assert parse_spec({**valid(), "fail_fast": False}).fail_fast is False
    with pytest.raises(SpecError) as e:
        parse_spec({**valid(), "fail_fast": "yes"})
    assert [str(err) for err in e.value.errors] == ["fail_fast: must be true or false, got string"]


def test_a_judge_rubric_may_use_columns_stages_and_output_and_names_a_known_provider():
    judge = {"type": "llm_judge", "model": "openai/gpt-4o-mini", "rubric": "{{ ticket }} {{ label }} {{ output }}"}
    assert parse_spec({**valid(), "scorers": [judge]}, known_providers={"mock", "openai"}).scorers[0] == judge

    bad = {**judge, "model": "acme/x", "rubric": "{{ outptu }}"}
    assert refusals({**valid(), "scorers": [bad]}, known_providers={"mock", "openai"}) == [
        ("scorers[0].rubric", "unknown variable 'outptu': not a dataset column (expected, ticket) "
                              "nor an earlier stage (summarize, label, output)"),
        ("scorers[0].model", "unknown provider 'acme' (known: mock, openai)"),
    ]  # fmt: skip


def test_a_numeric_rubric_is_text_without_variables_not_a_crash():
    judge = {"type": "llm_judge", "model": "openai/gpt-4o-mini", "rubric": 42}  # YAML `rubric: 42`
    assert parse_spec({**valid(), "scorers": [judge]}).scorers[0] == judge


def test_a_tpe_sweep_is_accepted_with_ranges_and_n_trials():
    params = {"model": ["mock/echo", "mock/upper"], "params.temperature": {"min": 0.0, "max": 1.0},
              "params.max_tokens": {"min": 16, "max": 1024, "step": 2, "log": True}}  # fmt: skip
    sweep = parse_spec(with_sweep(type="tpe", n_trials=12, seed=3, params=params)).sweep
    assert (sweep.type, sweep.n_trials, sweep.seed) == ("tpe", 12, 3)
    assert sorted(sweep.space.params) == ["model", "params.max_tokens", "params.temperature"]


def test_early_stopping_is_off_unless_asked_and_takes_defaults():
    assert parse_spec(valid()).sweep.early_stopping is None
    es = parse_spec(
        with_sweep(type="grid", params={"params.temperature": [0, 1]}, early_stopping={})
    ).sweep.early_stopping
    assert (es.rungs, es.alpha) == ((0.1, 0.3, 1.0), 0.05)


def test_early_stopping_always_ends_on_the_whole_dataset_and_round_trips():
    spec = parse_spec(with_sweep(type="grid", params={"params.temperature": [0, 1]},
                                 early_stopping={"rungs": [0.2, 0.5], "alpha": 0.01}))  # fmt: skip
    assert (spec.sweep.early_stopping.rungs, spec.sweep.early_stopping.alpha) == ((0.2, 0.5, 1.0), 0.01)
    assert parse_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("early_stopping", "path", "message"),
    [
        ({"rungs": [0.3, 0.1]}, "sweep.early_stopping.rungs", "must increase"),
        ({"rungs": []}, "sweep.early_stopping.rungs", "must be a list"),
        ({"rungs": [0.1, 1.5]}, "sweep.early_stopping.rungs[1]", "above 0 and at most 1"),
        ({"rungs": [0, 1]}, "sweep.early_stopping.rungs[0]", "above 0 and at most 1"),
        ({"alpha": 0.9}, "sweep.early_stopping.alpha", "between"),
        ({"patience": 3}, "sweep.early_stopping.patience", "unknown key; allowed: rungs, alpha"),
        ("yes", "sweep.early_stopping", "must be an object"),
    ],
)
def test_early_stopping_refusal(early_stopping, path, message):
    assert_refused(with_sweep(type="grid", params={"params.temperature": [0, 1]}, early_stopping=early_stopping),
                   path, message)  # fmt: skip


# --- template bombs are refused at validation (issue 12, item 5) ------------------------

BOMB = "{% for i in range(20000) %}{% for j in range(20000) %}{% endfor %}{% endfor %}"


@pytest.mark.parametrize("scorer_type", ["regex", "contains", "exact_match"])
def test_a_scorer_value_that_is_a_template_bomb_is_refused(scorer_type):
    data = edited(lambda s: s.update(scorers=[{"type": scorer_type, "value": BOMB}]))
    assert_refused(data, "scorers[0].value", "template limit: ")


def test_a_stage_prompt_that_is_a_template_bomb_is_refused():
    data = edited(lambda s: s["pipeline"][0].update(prompt=BOMB + "{{ ticket }}"))
    assert_refused(data, "pipeline[0].prompt", "template limit: ")


def test_a_size_bomb_in_a_scorer_is_refused():
    data = edited(lambda s: s.update(scorers=[{"type": "regex", "value": "{{ '{:>999999999}'.format('a') }}"}]))
    assert_refused(data, "scorers[0].value", "too large")

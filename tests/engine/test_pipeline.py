from __future__ import annotations

import copy

import pytest

from sweeps.engine.pipeline import ResolvedStage, resolve_pipeline
from sweeps.engine.space import make_config
from sweeps.engine.spec import StageSpec, parse_spec

SUMMARIZE = StageSpec(
    name="summarize",
    prompt="Summarize: {{ ticket }}",
    system="You are concise.",
    model="mock/echo",
    params={"temperature": 0.2, "max_tokens": 128},
)
LABEL = StageSpec(name="label", prompt="Label: {{ summarize }}", system=None, model=None, params={})
STAGES = (SUMMARIZE, LABEL)


def test_an_empty_config_keeps_each_stage_as_written():
    assert resolve_pipeline(STAGES, {}) == [
        ResolvedStage(
            name="summarize",
            model="mock/echo",
            system="You are concise.",
            prompt="Summarize: {{ ticket }}",
            params={"temperature": 0.2, "max_tokens": 128},
        ),
        # No model of its own: the one before it.
        ResolvedStage(name="label", model="mock/echo", system=None, prompt="Label: {{ summarize }}", params={}),
    ]


def test_top_level_config_applies_to_every_stage():
    config = {
        "model": "mock/upper",
        "system": "Be terse.",
        "prompt": "Echo {{ ticket }}",
        "params": {"top_p": 0.9},
    }

    summarize, label = resolve_pipeline(STAGES, config)

    for stage in (summarize, label):
        assert (stage.model, stage.system, stage.prompt) == ("mock/upper", "Be terse.", "Echo {{ ticket }}")
        assert stage.params["top_p"] == 0.9


def test_a_stage_entry_wins_over_the_top_level_for_that_stage_only():
    config = {
        "model": "mock/upper",
        "prompt": "Shared {{ ticket }}",
        "stages": {"label": {"model": "mock/short", "prompt": "Only label {{ summarize }}"}},
    }

    summarize, label = resolve_pipeline(STAGES, config)

    assert (summarize.model, summarize.prompt) == ("mock/upper", "Shared {{ ticket }}")
    assert (label.model, label.prompt) == ("mock/short", "Only label {{ summarize }}")


def test_params_merge_key_by_key_across_the_three_levels():
    config = {
        "params": {"temperature": 0.5, "top_p": 0.9},
        "stages": {"summarize": {"params": {"top_p": 1.0}}},
    }

    summarize, label = resolve_pipeline(STAGES, config)

    # max_tokens from the stage, temperature from the top level, top_p from the stage entry.
    assert summarize.params == {"temperature": 0.5, "max_tokens": 128, "top_p": 1.0}
    assert label.params == {"temperature": 0.5, "top_p": 0.9}


def test_a_stage_inherits_the_resolved_model_of_the_stage_before_it():
    third = StageSpec(name="polish", prompt="{{ label }}", system=None, model=None, params={})
    config = {"stages": {"summarize": {"model": "mock/json"}}}

    models = [stage.model for stage in resolve_pipeline((SUMMARIZE, LABEL, third), config)]

    assert models == ["mock/json", "mock/json", "mock/json"]


def test_a_stage_model_of_its_own_is_not_inherited_over():
    own = StageSpec(name="label", prompt="{{ summarize }}", system=None, model="mock/short", params={})
    assert [s.model for s in resolve_pipeline((SUMMARIZE, own), {})] == ["mock/echo", "mock/short"]


def test_a_config_can_remove_the_system_message():
    # None is a value the sweep chose, not a missing key.
    summarize, _ = resolve_pipeline(STAGES, {"system": None})
    assert summarize.system is None


def test_neither_stages_nor_config_are_changed():
    stop_stage = StageSpec(
        name="summarize", prompt="{{ ticket }}", system=None, model="mock/echo", params={"stop": ["\n"]}
    )
    config = {"params": {"logit_bias": {"1": 5}}, "stages": {"summarize": {"params": {"temperature": 1.0}}}}
    config_before, stage_before = copy.deepcopy(config), copy.deepcopy(stop_stage)

    [resolved] = resolve_pipeline((stop_stage,), config)
    resolved.params["stop"].append("!")
    resolved.params["logit_bias"]["2"] = 1

    assert config == config_before
    assert stop_stage == stage_before
    assert resolve_pipeline((stop_stage,), config)[0].params == {
        "stop": ["\n"],
        "logit_bias": {"1": 5},
        "temperature": 1.0,
    }


def test_no_model_anywhere_is_an_error():
    orphan = StageSpec(name="only", prompt="Hi", system=None, model=None, params={})
    with pytest.raises(ValueError, match="stage 'only' has no model"):
        resolve_pipeline((orphan,), {})


def test_a_parsed_spec_and_a_sweep_config_resolve_together():
    spec = parse_spec(
        {
            "name": "Triage",
            "pipeline": [
                {"name": "summarize", "prompt": "Summarize: {{ ticket }}", "params": {"max_tokens": 64}},
                {"name": "label", "prompt": "Label: {{ summarize }}"},
            ],
            "dataset": [{"ticket": "charged twice"}],
            "sweep": {"params": {"model": ["mock/echo"], "stages.label.params.temperature": [0.0, 1.0]}},
        }
    )
    config = make_config({"model": "mock/echo", "stages.label.params.temperature": 1.0})

    summarize, label = resolve_pipeline(spec.pipeline, config)

    assert (summarize.model, summarize.params) == ("mock/echo", {"max_tokens": 64})
    assert (label.model, label.params) == ("mock/echo", {"temperature": 1.0})

"""Structured output over real HTTP: `response_format`, `tools` and `tool_choice` go to the
provider as stage params, the tool calls that come back are recorded on the sample (and kept in
the response cache), and the tool_called scorer judges them, for OpenAI and Anthropic alike."""

from __future__ import annotations

import pytest

from sweeps.models import Provider, RunSample, Score
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import wait_for_sweep
from tests.fakes.llm_server import FakeLLMServer

pytestmark = pytest.mark.django_db(transaction=True)

ARGUMENTS = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "route", "parameters": ARGUMENTS}}]
ANTHROPIC_TOOLS = [{"name": "route", "description": "Route a ticket", "input_schema": ARGUMENTS}]
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "route", "schema": ARGUMENTS}}
SCORERS = [
    {"type": "tool_called", "tool": "route", "arguments_schema": ARGUMENTS},
    {"type": "tool_called", "tool": "escalate", "name": "escalated"},
    {"type": "tool_called", "tool": "route", "name": "numeric", "arguments_schema": {
        "type": "object", "properties": {"text": {"type": "number"}}}},
]  # fmt: skip
DATASET = [{"ticket": "charged twice"}, {"ticket": "cannot log in"}]


@pytest.fixture
def server(monkeypatch, mock_latency):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-structured")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-structured")
    with FakeLLMServer() as server:
        for name, url in (("openai", server.url), ("anthropic", server.anthropic_url)):
            Provider.objects.update_or_create(
                name=name, defaults={"kind": name, "base_url": url, "api_key_env": f"{name.upper()}_API_KEY"}
            )
        yield server


def sweep_of(user, model: str, params: dict):
    data = {"name": model, "pipeline": [{"name": "route", "prompt": "Route: {{ ticket }}", "model": model,
                                         "params": params}], "dataset": DATASET, "scorers": SCORERS}  # fmt: skip
    experiment = experiment_create(owner=user, data=data)
    return experiment, wait_for_sweep(sweep_start(experiment=experiment))


@pytest.mark.parametrize(
    ("model", "params"),
    [("openai/gpt-4o-mini", {"tools": OPENAI_TOOLS, "tool_choice": "required", "response_format": RESPONSE_FORMAT}),
     ("anthropic/claude-3-5-haiku-20241022", {"tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "any"}})],
)  # fmt: skip
def test_tool_calls_are_sent_recorded_cached_and_scored(user, server, model, params):
    experiment, sweep = sweep_of(user, model, params)

    assert sweep.status == "completed" and sweep.completed == 2
    for request in server.requests:
        assert {key: request.json[key] for key in params} == params  # passed through as written
    for sample in RunSample.objects.filter(sweep=sweep):
        [stage] = sample.stages
        assert stage["tool_calls"] == [{"name": "route", "arguments": {"text": f"Route: {sample.inputs['ticket']}"}}]
        assert stage["finish_reason"] == "tool_calls"
    verdicts = {(s.sample.inputs["ticket"], s.name): (s.passed, s.reason)
                for s in Score.objects.filter(sample__sweep=sweep).select_related("sample")}  # fmt: skip
    assert verdicts[("charged twice", "tool_called")] == (True, "called route with arguments matching the schema")
    assert verdicts[("charged twice", "escalated")] == (False, "no call of escalate (called: route)")
    assert verdicts[("charged twice", "numeric")] == (
        False, "route's arguments do not match the schema at $.text: 'Route: charged twice' is not of type 'number'"
    )  # fmt: skip

    calls_before = len(server.requests)
    again = wait_for_sweep(sweep_start(experiment=experiment))  # all from the cache, tool calls included
    assert len(server.requests) == calls_before and again.cached == 2
    assert {s.reason for s in Score.objects.filter(sample__sweep=again, name="tool_called")} == {
        "called route with arguments matching the schema"
    }


def test_an_openai_answer_that_is_only_a_tool_call_reads_as_its_json(user, server):
    _, sweep = sweep_of(user, "openai/gpt-4o-mini", {"tools": OPENAI_TOOLS})
    sample = RunSample.objects.filter(sweep=sweep).order_by("row_index").first()
    assert sample.output == '[{"name": "route", "arguments": {"text": "Route: charged twice"}}]'

"""Semantic similarity end to end: a sweep's similarity scorer with `method: embedding` calls
the fake server's /v1/embeddings over real HTTP, like any call (cached, counted, priced), and the
estimate counts those calls before anything is spent."""

from __future__ import annotations

import math

import pytest

from sweeps.models import Provider, RunSample, Score
from sweeps.selectors.estimates import estimate_spec
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import spec, wait_for_sweep
from tests.fakes.llm_server import FakeLLMServer, embeddings_answer

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-embeddings-e2e"
PRICE_IN = 0.02  # text-embedding-3-small in sweeps/providers/prices.py, USD per million tokens
SCORER = {"type": "similarity", "method": "embedding", "model": "openai/text-embedding-3-small", "threshold": 0.5,
          "value": "{{ expected }} problem"}  # fmt: skip


@pytest.fixture
def server(monkeypatch, mock_latency):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeLLMServer() as server:
        Provider.objects.update_or_create(
            name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY"}
        )
        yield server


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embedding_similarity_scores_by_cosine_and_its_calls_are_paid_once(user, server):
    data = spec(scorers=[SCORER], sweep={"type": "grid", "params": {"model": ["mock/echo"]}})
    experiment = experiment_create(owner=user, data=data)

    [line] = [line for line in estimate_spec(experiment.parsed_spec()).lines if line.name.startswith("judge:")]
    assert (line.model, line.calls, line.tokens_out) == ("openai/text-embedding-3-small", 3, 0)

    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    assert sweep.status == "completed" and sweep.completed == 3
    embedding_requests = [r for r in server.requests if r.path == "/v1/embeddings"]
    assert len(embedding_requests) == 3
    for request in embedding_requests:
        output, target = request.json["input"]
        sample = RunSample.objects.get(sweep=sweep, output=output)
        assert target == f"{sample.inputs['expected']} problem"
        first, second = (item["embedding"] for item in embeddings_answer(request.json)["data"])
        score = Score.objects.get(sample=sample)
        assert score.value == pytest.approx(max(0.0, cosine(first, second)))
        assert score.passed is (score.value >= 0.5) and score.reason.startswith("cosine similarity ")
        [call] = [stage for stage in sample.stages if stage["name"] == "judge:similarity"]
        tokens = len(output.split()) + len(target.split())  # the fake server counts words
        assert (call["tokens_in"], call["tokens_out"], call["finish_reason"]) == (tokens, 0, "embedding")
        assert call["cost_usd"] == pytest.approx(tokens * PRICE_IN / 1e6)
        assert call["output"].startswith("2 embeddings of 64 dimensions")
    assert {s.passed for s in Score.objects.filter(sample__sweep=sweep)} == {True, False}  # it tells them apart

    again = wait_for_sweep(sweep_start(experiment=experiment))  # the same calls: all from the cache
    assert again.status == "completed"
    assert len([r for r in server.requests if r.path == "/v1/embeddings"]) == 3
    assert [s.value for s in Score.objects.filter(sample__sweep=again).order_by("sample__row_index")] == [
        s.value for s in Score.objects.filter(sample__sweep=sweep).order_by("sample__row_index")
    ]
    [line] = [line for line in estimate_spec(experiment.parsed_spec()).lines if line.name.startswith("judge:")]
    assert line.cached == 3  # the estimate finds them in the cache too


def test_a_failed_embedding_call_scores_0_with_the_reason(user, server):
    from tests.fakes.llm_server import Scripted

    server.responder = lambda request: Scripted(401) if request.path == "/v1/embeddings" else None
    data = spec(scorers=[SCORER], sweep={"type": "grid", "params": {"model": ["mock/echo"]}})
    sweep = wait_for_sweep(sweep_start(experiment=experiment_create(owner=user, data=data)))
    assert sweep.status == "completed"
    reasons = {s.reason for s in Score.objects.filter(sample__sweep=sweep)}
    assert reasons == {'embedding error: openai: 401 invalid API key — set OPENAI_API_KEY; the server said: '
                       '"fake server: scripted 401"'}  # fmt: skip

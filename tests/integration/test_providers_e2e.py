"""Whole sweeps against real HTTP providers: the OpenAI and Anthropic adapters talk to the
fake LLM server over real sockets, run by the embedded worker thread on the real database.

What the issue promises end to end: what goes over the wire (key headers, params, messages),
tokens and cost from the server's usage and the shipped price table, retries that never come
earlier than Retry-After, permanent errors that fail a sample at once, quota exhaustion that
pauses the sweep (or not, with fail_fast: false), unavailable providers refused up front, the
LLM judge through the same calls and cache, and the API key never written anywhere.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from django.apps import apps

from sweeps.engine.errors import SpecError
from sweeps.engine.scorers import JUDGE_INSTRUCTIONS
from sweeps.events import publishing
from sweeps.models import Provider, RunSample, Score, Sweep
from sweeps.services import ServiceError
from sweeps.services.experiments import experiment_create, experiment_update, known_providers
from sweeps.services.sweeps import sweep_pause, sweep_resume, sweep_start
from tests.conftest import wait_for, wait_for_sweep
from tests.fakes.llm_server import (
    FakeLLMServer,
    RecordedRequest,
    Scripted,
    anthropic_answer,
    openai_answer,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Unique per session, so finding one of them anywhere can only mean it leaked from here.
OPENAI_KEY = f"sk-e2e-openai-{uuid.uuid4().hex}"
ANTHROPIC_KEY = f"sk-ant-e2e-{uuid.uuid4().hex}"
OPENAI_PRICE = (0.15, 0.60)  # gpt-4o-mini in sweeps/providers/prices.py, USD per million tokens
ANTHROPIC_PRICE = (0.80, 4.00)  # claude-3-5-haiku
ROW_PRICE = (7.0, 7.0)  # the rows' own prices: a cost computed from them means the table was ignored
FAST_RETRY = {"retry": {"max_attempts": 5, "base": 0.05, "cap": 0.2}}  # real waits, but short

SYSTEM = "You are a terse support agent."
TICKETS = ["billing charged twice", "login broken since monday", "parcel lost in shipping"]
VERDICT = '{"score": 0.75, "reason": "fine"}'


@pytest.fixture
def server():
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def providers(server, monkeypatch, db):
    """The openai and anthropic rows pointed at the fake server, with their keys set."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    common = {"price_in_per_mtok": ROW_PRICE[0], "price_out_per_mtok": ROW_PRICE[1], "options": FAST_RETRY,
              "requests_per_minute": None, "tokens_per_minute": None, "enabled": True}  # fmt: skip
    Provider.objects.update_or_create(
        name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY", **common}
    )
    Provider.objects.update_or_create(
        name="anthropic",
        defaults={"kind": "anthropic", "base_url": server.anthropic_url, "api_key_env": "ANTHROPIC_API_KEY", **common},
    )
    Provider.objects.update_or_create(name="mock", defaults={"kind": "mock", "options": {}})


@pytest.fixture
def published(monkeypatch) -> list[dict[str, Any]]:
    """Every event sent to browsers (from the worker thread and from the services)."""
    sent: list[dict[str, Any]] = []

    async def record(events):
        sent.extend(events)

    monkeypatch.setattr(publishing, "_send", record)
    return sent


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def stage_spec(model: str, *, params: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Provider e2e",
        "pipeline": [
            {
                "name": "summarize",
                "system": SYSTEM,
                "prompt": "Summarize: {{ ticket }}",
                "model": model,
                "params": params if params is not None else {"temperature": 0.3, "max_tokens": 50},
            },
        ],  # fmt: skip
        "dataset": [{"ticket": ticket} for ticket in TICKETS],
        "scorers": [{"type": "icontains", "value": "{{ ticket }}"}],
        "max_concurrency": 4,
    }
    data.update(overrides)
    return data


def run_sweep(user, data: dict[str, Any]) -> Sweep:
    experiment = experiment_create(owner=user, data=data)
    return wait_for_sweep(sweep_start(experiment=experiment))


def user_message(request: RecordedRequest) -> str:
    return [m["content"] for m in request.json["messages"] if m["role"] == "user"][-1]


def database_text() -> str:
    """Every row of every table the project's models keep, every column, as text."""
    tables = [model for model in apps.get_models() if model._meta.managed and not model._meta.proxy]
    return "\n".join(json.dumps(row, default=str) for model in tables for row in model.objects.values())


def assert_never_written(secret: str, logs, published: list[dict[str, Any]], *, expected_in_db: str) -> None:
    dump = database_text()
    # The dump really holds the sweep's data, so its silence about the key means something.
    assert TICKETS[0] in dump and expected_in_db in dump
    assert secret not in dump
    assert logs.records and secret not in logs.text
    assert published and secret not in json.dumps(published, default=str)


def expected_cost(tokens_in: int, tokens_out: int, price: tuple[float, float]) -> float:
    return (tokens_in * price[0] + tokens_out * price[1]) / 1e6


# --- 1, 2: what goes over the wire, and what is recorded -------------------------------------------


def test_openai_sweep_sends_key_params_and_messages_and_records_usage_and_cost(
    user, server, providers, published, logs
):
    params = {"temperature": 0.3, "max_tokens": 50, "seed": 7, "presence_penalty": 0.25}
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini", params=params))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    assert len(server.requests) == 3
    by_prompt = {user_message(r): r for r in server.requests}
    for request in server.requests:
        assert request.path == "/v1/chat/completions" and request.status == 200
        assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        body = request.json
        assert body["model"] == "gpt-4o-mini"
        assert {k: body[k] for k in params} == params
        assert body["messages"][0] == {"role": "system", "content": SYSTEM}
        assert [m["role"] for m in body["messages"]] == ["system", "user"]

    tokens_in = tokens_out = 0
    cost = 0.0
    for sample in RunSample.objects.filter(sweep=sweep):
        request = by_prompt[f"Summarize: {sample.inputs['ticket']}"]
        usage = openai_answer(request.json)["usage"]  # what the server reported for this request
        assert (sample.tokens_in, sample.tokens_out) == (usage["prompt_tokens"], usage["completion_tokens"])
        assert sample.tokens_in > 0 and sample.tokens_out > 0
        assert sample.cost_usd == pytest.approx(expected_cost(sample.tokens_in, sample.tokens_out, OPENAI_PRICE))
        assert sample.output == f"Summarize: {sample.inputs['ticket']}"  # the server's answer text
        assert sample.stages[0]["attempts"] == 1
        tokens_in += sample.tokens_in
        tokens_out += sample.tokens_out
        cost += sample.cost_usd
    assert (sweep.tokens_in, sweep.tokens_out) == (tokens_in, tokens_out)
    assert sweep.cost_usd == pytest.approx(cost)

    assert_never_written(OPENAI_KEY, logs, published, expected_in_db="OPENAI_API_KEY")


def test_anthropic_sweep_sends_its_headers_and_top_level_system(user, server, providers, published, logs):
    params = {"temperature": 0.2, "max_tokens": 60, "stop": "END"}
    sweep = run_sweep(user, stage_spec("anthropic/claude-3-5-haiku-20241022", params=params))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    assert len(server.requests) == 3
    for request in server.requests:
        assert request.path == "/v1/messages" and request.status == 200
        assert request.headers["x-api-key"] == ANTHROPIC_KEY
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in request.headers
        body = request.json
        assert body["model"] == "claude-3-5-haiku-20241022"
        assert body["system"] == SYSTEM
        assert [m["role"] for m in body["messages"]] == ["user"]
        assert (body["temperature"], body["max_tokens"], body["stop_sequences"]) == (0.2, 60, ["END"])

    by_prompt = {user_message(r): r for r in server.requests}
    for sample in RunSample.objects.filter(sweep=sweep):
        usage = anthropic_answer(by_prompt[f"Summarize: {sample.inputs['ticket']}"].json)["usage"]
        assert (sample.tokens_in, sample.tokens_out) == (usage["input_tokens"], usage["output_tokens"])
        assert sample.cost_usd == pytest.approx(expected_cost(sample.tokens_in, sample.tokens_out, ANTHROPIC_PRICE))
        assert sample.stages[0]["finish_reason"] == "stop"
    assert sweep.tokens_in == sum(RunSample.objects.filter(sweep=sweep).values_list("tokens_in", flat=True))

    assert_never_written(ANTHROPIC_KEY, logs, published, expected_in_db="ANTHROPIC_API_KEY")


def test_openai_base_url_may_come_from_the_environment(user, server, providers, monkeypatch):
    Provider.objects.filter(name="openai").update(base_url="")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.completed) == ("completed", 3), sweep.error
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 3


# --- 3: retries -------------------------------------------------------------------------------------


def retries_of(server: FakeLLMServer, status: int) -> list[tuple[RecordedRequest, RecordedRequest]]:
    """(failed request, the next request with the same body) for each request answered `status`."""
    pairs = []
    for index, failed in enumerate(server.requests):
        if failed.status == status:
            retry = next(r for r in server.requests[index + 1 :] if r.body == failed.body)
            pairs.append((failed, retry))
    return pairs


def test_429_with_retry_after_is_retried_no_sooner_than_asked(user, server, providers):
    server.script(*[Scripted(429, headers={"Retry-After": "1"})] * 2)
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    assert RunSample.objects.filter(sweep=sweep, status="completed").count() == 3
    assert [r.status for r in server.requests].count(429) == 2 and len(server.requests) == 5
    pairs = retries_of(server, 429)
    assert len(pairs) == 2
    for failed, retry in pairs:
        assert retry.status == 200
        assert retry.received - failed.answered >= 1.0  # Retry-After: 1 honoured
    attempts = sorted(s.stages[0]["attempts"] for s in RunSample.objects.filter(sweep=sweep))
    assert attempts == [1, 2, 2]


def test_500_then_success_completes(user, server, providers):
    server.script(Scripted(500))
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    assert len(server.requests) == 4
    ((failed, retry),) = retries_of(server, 500)
    assert retry.status == 200
    attempts = sorted(s.stages[0]["attempts"] for s in RunSample.objects.filter(sweep=sweep))
    assert attempts == [1, 1, 2]


def test_retries_give_up_after_the_rows_max_attempts(user, server, providers):
    Provider.objects.filter(name="openai").update(options={"retry": {"max_attempts": 3, "base": 0.01, "cap": 0.05}})
    server.responder = lambda request: Scripted(503)
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 0, 3)
    assert len(server.requests) == 9  # 3 attempts for each of the 3 samples
    for sample in RunSample.objects.filter(sweep=sweep):
        assert "503" in sample.error and "after 3 attempts" in sample.error


def test_a_read_timeout_from_the_rows_options_is_retried(user, server, providers):
    Provider.objects.filter(name="openai").update(options={"timeout_read": 0.3, **FAST_RETRY})
    server.script(Scripted(delay=3.0))  # the first request never answers in time
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    assert len(server.requests) == 4
    slow = server.requests[0]
    retry = next(r for r in server.requests[1:] if r.body == slow.body)
    assert slow.status is None and retry.status == 200  # given up on, then asked again
    assert retry.received - slow.received >= 0.3


# --- 4, 5: permanent errors --------------------------------------------------------------------------


def test_401_fails_each_sample_at_once_with_advice_and_never_the_key(user, server, providers, published, logs):
    # Like OpenAI, the server quotes the key it was given: that text must be scrubbed.
    refusal = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}.", "type": "invalid_request_error",
                         "code": "invalid_api_key", "param": None}}  # fmt: skip
    server.responder = lambda request: Scripted(401, body=refusal)
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.stopped_reason) == ("completed", "completed")
    assert (sweep.completed, sweep.failed) == (0, 3)
    assert len(server.requests) == 3  # one each: no retries
    assert len({r.body for r in server.requests}) == 3
    for sample in RunSample.objects.filter(sweep=sweep):
        assert sample.status == "failed"
        assert "401" in sample.error and "OPENAI_API_KEY" in sample.error
        assert "Incorrect API key provided" in sample.error  # the server's words, scrubbed
        assert OPENAI_KEY not in sample.error

    assert_never_written(OPENAI_KEY, logs, published, expected_in_db="Incorrect API key provided")


QUOTA = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                   "type": "insufficient_quota", "code": "insufficient_quota", "param": None}}  # fmt: skip


def test_quota_exhausted_pauses_the_sweep_with_provider_error(user, server, providers):
    server.responder = lambda request: Scripted(429, body=QUOTA)
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini", max_concurrency=1))

    assert (sweep.status, sweep.stopped_reason) == ("paused", "provider_error")
    assert "quota exhausted" in sweep.error and "OPENAI_API_KEY" in sweep.error
    assert len(server.requests) == 1  # the first refusal stopped the sweep: no retry, no other sample
    assert RunSample.objects.filter(sweep=sweep, status="pending").count() >= 2
    assert not RunSample.objects.filter(sweep=sweep, status="running").exists()

    server.responder = None  # topped up: resuming goes on with what was left
    sweep = wait_for_sweep(sweep_resume(sweep=sweep), until=("completed", "failed"))
    assert (sweep.status, sweep.error) == ("completed", "")
    assert sweep.completed >= 2 and sweep.completed + sweep.failed == 3
    assert [r.status for r in server.requests].count(200) == sweep.completed


def test_anthropic_out_of_credit_pauses_the_sweep(user, server, providers):
    message = "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing."
    server.responder = lambda request: Scripted(400, body={"type": "error", "error": {
        "type": "invalid_request_error", "message": message}})  # fmt: skip
    sweep = run_sweep(user, stage_spec("anthropic/claude-3-5-haiku-20241022", max_concurrency=1))

    assert (sweep.status, sweep.stopped_reason) == ("paused", "provider_error")
    assert "quota exhausted" in sweep.error and "ANTHROPIC_API_KEY" in sweep.error and "credit balance" in sweep.error
    assert len(server.requests) == 1


def test_quota_exhausted_without_fail_fast_completes_with_failed_samples(user, server, providers):
    server.responder = lambda request: Scripted(429, body=QUOTA)
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini", fail_fast=False))

    assert (sweep.status, sweep.stopped_reason) == ("completed", "completed")
    assert (sweep.completed, sweep.failed) == (0, 3)
    assert len(server.requests) == 3  # one each: quota errors are not retried
    for sample in RunSample.objects.filter(sweep=sweep):
        assert sample.status == "failed" and "quota exhausted" in sample.error


def test_max_concurrency_and_fail_fast_edited_while_paused_apply_after_resume(user, server, providers):
    """Both may change while a sweep is paused; the resumed sweep obeys the new values (it once
    went on with the values it had started with)."""
    data = stage_spec("openai/gpt-4o-mini", max_concurrency=4, fail_fast=True)
    data["dataset"] = [{"ticket": f"ticket {i}"} for i in range(24)]
    server.latency = 0.2
    experiment = experiment_create(owner=user, data=data)
    sweep = sweep_start(experiment=experiment)
    wait_for(lambda: server.max_concurrency >= 3)
    sweep = wait_for_sweep(sweep_pause(sweep=sweep), until=("paused",))
    # The calls in flight finish and their job ends: the resumed sweep is a new execution.
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status="running").exists() and not server.in_flight)
    assert RunSample.objects.filter(sweep=sweep, status="pending").count() >= 8
    experiment_update(experiment=experiment, data={**data, "max_concurrency": 1, "fail_fast": False})

    before = len(server.requests)
    server.max_concurrency = 0  # the peak from here on
    last = data["dataset"][-1]["ticket"]
    server.responder = lambda request: Scripted(429, body=QUOTA) if last in user_message(request) else None
    sweep = wait_for_sweep(sweep_resume(sweep=sweep), until=("completed", "paused", "failed"))

    assert len(server.requests) > before + 1 and server.max_concurrency == 1
    # fail_fast off: the quota error failed its own sample instead of pausing the sweep.
    assert (sweep.status, sweep.stopped_reason, sweep.failed) == ("completed", "completed", 1)


# --- 6: providers that cannot be used ----------------------------------------------------------------


def test_a_provider_without_its_key_is_refused_at_creation_and_not_offered(user, server, providers, monkeypatch):
    assert {"openai", "anthropic", "mock"} <= set(known_providers())
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    assert "anthropic" not in known_providers()
    assert {"openai", "mock"} <= set(known_providers())
    with pytest.raises(SpecError) as refused:
        experiment_create(owner=user, data=stage_spec("anthropic/claude-3-5-haiku-20241022"))
    assert [str(e) for e in refused.value.errors] == [
        "pipeline[0].model: provider 'anthropic' is unavailable: set the environment variable ANTHROPIC_API_KEY"
    ]
    assert not apps.get_model("sweeps", "Experiment").objects.exists()
    experiment_create(owner=user, data=stage_spec("openai/gpt-4o-mini"))  # the others still are fine
    assert server.requests == []


def test_a_sweep_cannot_start_once_its_provider_lost_its_key(user, server, providers, monkeypatch):
    experiment = experiment_create(owner=user, data=stage_spec("anthropic/claude-3-5-haiku-20241022"))
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    with pytest.raises(
        ServiceError, match="'anthropic' is unavailable: set the environment variable ANTHROPIC_API_KEY"
    ):
        sweep_start(experiment=experiment)
    assert not Sweep.objects.exists() and server.requests == []


# --- 7: LLM as judge ---------------------------------------------------------------------------------


def is_judge(request: RecordedRequest) -> bool:
    return any(m["role"] == "system" and m["content"] == JUDGE_INSTRUCTIONS["score"] for m in request.json["messages"])


def judge_spec() -> dict[str, Any]:
    return stage_spec(
        "openai/gpt-4o-mini",
        scorers=[
            {
                "type": "llm_judge",
                "name": "quality",
                "model": "openai/gpt-4o-mini",
                "rubric": "Does this keep the facts of '{{ ticket }}'?",
            }
        ],  # fmt: skip
    )


def test_llm_judge_scores_through_the_provider_and_is_cached(user, server, providers):
    server.responder = lambda request: Scripted(text=VERDICT) if is_judge(request) else None
    experiment = experiment_create(owner=user, data=judge_spec())
    first = wait_for_sweep(sweep_start(experiment=experiment))

    assert (first.status, first.completed, first.failed) == ("completed", 3, 0), first.error
    assert len(server.requests) == 6 and sum(map(is_judge, server.requests)) == 3
    for request in filter(is_judge, server.requests):
        assert request.json["temperature"] == 0  # the judge's default params, not the stage's
        assert "Does this keep the facts of" in user_message(request)
    scores = list(Score.objects.filter(sample__sweep=first))
    assert len(scores) == 3
    assert all((s.name, s.value, s.reason, s.passed) == ("quality", 0.75, "fine", True) for s in scores)
    assert first.best_score == pytest.approx(0.75)

    # The judge's calls are paid for like any other: the server's usage, in the sample and the sweep.
    usage = [openai_answer(r.json, VERDICT if is_judge(r) else None)["usage"] for r in server.requests]
    judge_usage = [openai_answer(r.json, VERDICT)["usage"] for r in server.requests if is_judge(r)]
    assert first.tokens_in == sum(u["prompt_tokens"] for u in usage)
    assert first.tokens_out == sum(u["completion_tokens"] for u in usage)
    assert sum(u["completion_tokens"] for u in judge_usage) > 0
    for sample in RunSample.objects.filter(sweep=first):
        assert [s["name"] for s in sample.stages] == ["summarize", "judge:quality"]
        judge = sample.stages[1]
        assert judge["output"] == VERDICT and judge["tokens_in"] > 0 and judge["tokens_out"] > 0
        assert sample.tokens_in == sum(s["tokens_in"] for s in sample.stages)
        assert sample.tokens_out == sum(s["tokens_out"] for s in sample.stages)
        assert sample.cost_usd == pytest.approx(expected_cost(sample.tokens_in, sample.tokens_out, OPENAI_PRICE))
        assert sample.score == pytest.approx(0.75)

    calls = len(server.requests)
    second = wait_for_sweep(sweep_start(experiment=experiment))

    assert second.status == "completed" and second.cached == second.total == 3
    assert len(server.requests) == calls  # not one request: the stage and the judge both came from the cache
    assert all(s.value == 0.75 and s.reason == "fine" for s in Score.objects.filter(sample__sweep=second))
    for sample in RunSample.objects.filter(sweep=second):
        assert [(s["name"], s["cached"]) for s in sample.stages] == [("summarize", True), ("judge:quality", True)]


def test_a_judge_out_of_quota_pauses_and_the_resumed_sweep_scores_every_sample(user, server, providers):
    server.responder = lambda request: Scripted(429, body=QUOTA) if is_judge(request) else None
    experiment = experiment_create(owner=user, data={**judge_spec(), "max_concurrency": 1})
    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    assert (sweep.status, sweep.stopped_reason) == ("paused", "provider_error")
    assert "quota exhausted" in sweep.error

    server.responder = lambda request: Scripted(text=VERDICT) if is_judge(request) else None  # topped up
    sweep = wait_for_sweep(sweep_resume(sweep=sweep), until=("completed", "failed"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0)
    assert [(s.value, s.reason) for s in Score.objects.filter(sample__sweep=sweep)] == [(0.75, "fine")] * 3
    assert all(run.score == pytest.approx(0.75) for run in sweep.runs.all())


@pytest.mark.parametrize(
    ("judge_answer", "reason"),
    [
        (Scripted(text="Looks fine to me."), "unparseable verdict"),
        (Scripted(400, body={"error": {"message": "bad judge", "type": "invalid_request_error"}}), "400"),
    ],
    ids=["unparseable", "refused"],
)
def test_a_judge_without_a_verdict_scores_zero_and_the_sample_still_completes(
    user, server, providers, judge_answer, reason
):
    server.responder = lambda request: judge_answer if is_judge(request) else None
    sweep = run_sweep(user, judge_spec())

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    assert sum(map(is_judge, server.requests)) == 3  # one call each: neither is retried
    scores = list(Score.objects.filter(sample__sweep=sweep))
    assert len(scores) == 3
    for score in scores:
        assert (score.value, score.passed) == (0.0, False)
        assert score.reason.startswith("judge error") and reason in score.reason
    assert set(RunSample.objects.filter(sweep=sweep).values_list("status", flat=True)) == {"completed"}
    assert set(RunSample.objects.filter(sweep=sweep).values_list("score", flat=True)) == {0.0}

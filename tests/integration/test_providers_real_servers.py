"""What real servers do that the happy path never shows, replayed by the fake LLM server over
real sockets with the embedded worker on the real database: keyless local servers, a body
trickled forever, LiteLLM's and OpenAI's own rate-limit headers, a provider that stays
rate limited, and which server's answers the response cache may serve.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from sweeps.models import Provider, ResponseCache, RunSample, provider_options_problems
from sweeps.services.sweeps import sweep_resume
from tests.conftest import wait_for_sweep
from tests.fakes.llm_server import FakeLLMServer, Scripted, openai_answer
from tests.integration.api_client import ApiClient
from tests.integration.test_providers_e2e import (  # noqa: F401 (providers and server are fixtures)
    FAST_RETRY,
    TICKETS,
    providers,
    retries_of,
    run_sweep,
    server,
    stage_spec,
)

pytestmark = pytest.mark.django_db(transaction=True)


def keyless_row(server: FakeLLMServer, **options) -> Provider:
    return Provider.objects.create(name="local", kind="openai", base_url=server.url, api_key_env="", options=options)


# --- keyless servers (llama.cpp, Ollama, vLLM without --api-key) ----------------------------------


def test_a_provider_without_a_key_variable_is_available_and_sends_no_authorization(user, server, providers):
    row = keyless_row(server)
    assert row.availability() == (True, "")

    sweep = run_sweep(user, stage_spec("local/some-model"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    assert len(server.requests) == 3
    assert all("authorization" not in r.headers for r in server.requests)


def test_openai_base_url_without_openai_api_key_calls_the_local_server_keyless(user, server, providers, monkeypatch):
    Provider.objects.filter(name="openai").update(base_url="")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert Provider.objects.get(name="openai").availability() == (True, "")

    sweep = run_sweep(user, stage_spec("openai/llama"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    assert all("authorization" not in r.headers for r in server.requests)


def test_the_hosted_openai_api_still_needs_its_key(providers, monkeypatch):
    Provider.objects.filter(name="openai").update(base_url="")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert Provider.objects.get(name="openai").availability() == (False, "set the environment variable OPENAI_API_KEY")


# --- the overall deadline -------------------------------------------------------------------------


def test_a_body_trickled_forever_fails_the_sample_at_timeout_total(user, server, providers):
    # A byte every 0.1 s never trips the 5 s read timeout: only timeout_total ends each call.
    Provider.objects.filter(name="openai").update(options={**FAST_RETRY, "timeout_read": 5, "timeout_total": 1})
    server.responder = lambda request: Scripted(trickle=0.1, trickle_forever=True)

    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 0, 3)
    assert len(server.requests) == 3  # not retried: another attempt would take as long
    for sample in RunSample.objects.filter(sweep=sweep):
        assert "no complete answer within timeout_total 1 s" in sample.error


@pytest.mark.parametrize("value", [0, -1, 10**9])
def test_timeout_total_must_be_a_positive_number_of_seconds(value):
    problems = provider_options_problems("openai", {"timeout_total": value})
    assert problems == ["timeout_total must be more than 0 and at most 86400 seconds"]


@pytest.mark.parametrize(
    ("retry", "problem"),
    [({"max_wait": -5}, "retry values must be numbers >= 0"),
     ({"max_wait": "1h"}, "retry values must be numbers >= 0"),
     ({"wait": 5}, "retry accepts max_attempts, base, cap, max_wait; not wait")],
)  # fmt: skip
def test_retry_max_wait_is_a_number_of_seconds(retry, problem):
    assert provider_options_problems("openai", {"retry": retry}) == [problem]


# --- rate limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"llm_provider-retry-after": "0.4"}, 0.4),
        ({"x-ratelimit-reset-requests": "400ms", "x-ratelimit-reset-tokens": "1ms"}, 0.4),
    ],
    ids=["litellm", "openai-reset"],
)
def test_rate_limit_headers_of_real_proxies_are_honoured(user, server, providers, headers, seconds):
    server.script(*[Scripted(429, headers=headers)] * 2)
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    pairs = retries_of(server, 429)
    assert len(pairs) == 2
    for failed, retry in pairs:
        assert retry.received - failed.answered >= seconds


def test_a_provider_asking_to_wait_an_hour_pauses_the_sweep_at_once(user, server, providers):
    """LiteLLM passes a provider's hour-long reset on: the sweep pauses, saying so, instead of
    sleeping an hour with its samples leased."""
    Provider.objects.filter(name="openai").update(options={"retry": {"max_wait": 60}})
    server.responder = lambda request: Scripted(429, headers={"llm_provider-retry-after": "3600"})

    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini", max_concurrency=1, fail_fast=False))

    assert (sweep.status, sweep.stopped_reason, sweep.failed) == ("paused", "rate_limited", 0)
    assert "asked to wait 3,600 s, more than retry.max_wait (60 s)" in sweep.error
    assert len(server.requests) == 1  # no retry: the first refusal ended it


def test_a_provider_rate_limited_beyond_the_retries_pauses_the_sweep_and_fails_nothing(user, server, providers):
    Provider.objects.filter(name="openai").update(options={"retry": {"max_attempts": 2, "base": 0.01, "cap": 0.05}})
    server.responder = lambda request: Scripted(429, headers={"llm_provider-retry-after": "0.05"})

    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini", max_concurrency=1, fail_fast=False))

    assert (sweep.status, sweep.stopped_reason, sweep.failed) == ("paused", "rate_limited", 0)
    assert "429 rate limited" in sweep.error
    assert len(server.requests) <= 3 * 2  # no sample tried beyond its 2 attempts
    assert RunSample.objects.filter(sweep=sweep, status="pending").count() == 3

    server.responder = None  # the limit eased: resuming runs every sample
    sweep = wait_for_sweep(sweep_resume(sweep=sweep), until=("completed", "failed"))
    assert (sweep.status, sweep.completed, sweep.failed, sweep.error) == ("completed", 3, 0, "")


# --- which server the cache may answer for ---------------------------------------------------------


def test_the_cache_is_keyed_by_the_provider_name_and_namespace_not_its_url(user, server, providers):
    spec = stage_spec("local/some-model")
    row = keyless_row(server)
    assert run_sweep(user, spec).completed == 3
    assert len(server.requests) == 3

    with FakeLLMServer() as moved:  # the same server at another URL: its answers still hold
        Provider.objects.filter(pk=row.pk).update(base_url=moved.url)
        sweep = run_sweep(user, spec)
        assert (sweep.completed, sweep.cached, len(moved.requests)) == (3, 3, 0)

        # Other weights behind the same name: bumping the namespace asks the server again.
        Provider.objects.filter(pk=row.pk).update(options={"cache_namespace": "v2"})
        sweep = run_sweep(user, spec)
        assert (sweep.completed, sweep.cached, len(moved.requests)) == (3, 0, 3)

        # Another provider row at the same URL is another server as far as the cache knows.
        Provider.objects.create(name="other", kind="openai", base_url=moved.url, api_key_env="")
        sweep = run_sweep(user, stage_spec("other/some-model"))
        assert (sweep.completed, sweep.cached, len(moved.requests)) == (3, 0, 6)
    assert ResponseCache.objects.count() == 9


# --- answers cut short by max_tokens, and usage a server got wrong ---------------------------------


def export(api: ApiClient, sweep, format: str) -> str:
    response = api.get(f"/experiments/{sweep.experiment_id}/export", format=format)
    return b"".join(response.streaming_content).decode()


def test_truncated_answers_are_marked_on_every_page_the_api_and_the_export(user, server, providers):
    # The fake server counts a word as a token: "Summarize: billing charged twice" fits in 4,
    # the two other tickets (5 words) are cut.
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini", params={"max_tokens": 4}, sweep={
        "type": "grid", "params": {"params.temperature": [0.0, 0.5]}}))  # fmt: skip
    assert (sweep.status, sweep.completed) == ("completed", 6), sweep.error
    samples = RunSample.objects.filter(sweep=sweep)
    assert {s.inputs["ticket"] for s in samples if s.truncated} == set(TICKETS[1:])
    runs = list(sweep.runs.order_by("id"))
    assert [run.samples_truncated for run in runs] == [2, 2]

    api = ApiClient(user)
    detail = api.get(f"/runs/{runs[0].pk}").json()
    assert detail["samples_truncated"] == 2
    assert sorted(s["truncated"] for s in detail["samples"]["items"]) == [False, True, True]
    board = api.get(f"/experiments/{sweep.experiment_id}/leaderboard").json()
    assert [e["samples_truncated"] for e in board["entries"]] == [2, 2]
    runs_page = api.get(f"/experiments/{sweep.experiment_id}/runs").json()
    assert [r["samples_truncated"] for r in runs_page["items"]] == [2, 2]
    lines = [json.loads(line) for line in export(api, sweep, "jsonl").splitlines()]
    assert sum(line["truncated"] for line in lines) == 4
    rows = list(csv.DictReader(io.StringIO(export(api, sweep, "csv"))))
    assert sorted(row["truncated"] for row in rows) == ["false"] * 2 + ["true"] * 4

    client = Client()
    client.force_login(user)
    run_page = client.get(reverse("run_detail", args=[runs[0].pk])).content.decode()
    assert 'id="run-truncated"' in run_page and "2 of 3 samples were cut short by max_tokens" in run_page
    assert run_page.count('<span class="badge truncated"') == 2 * 2  # each sample's badge, and its stage's
    compare = client.get(reverse("experiment_compare", args=[sweep.experiment_id]), {"runs": [r.pk for r in runs]})
    assert compare.content.decode().count('<span class="badge truncated"') == 4
    board_page = client.get(reverse("experiment_detail", args=[sweep.experiment_id])).content.decode()
    assert board_page.count("2 truncated</span>") == 2


def test_a_usage_a_server_got_wrong_is_estimated_and_marked_not_a_database_error(user, server, providers):
    def absurd(request):
        body = openai_answer(request.json)
        body["usage"] = {"prompt_tokens": 10**12, "completion_tokens": -5}
        return Scripted(body=body)

    server.responder = absurd
    sweep = run_sweep(user, stage_spec("openai/gpt-4o-mini"))

    assert (sweep.status, sweep.completed, sweep.failed) == ("completed", 3, 0), sweep.error
    for sample in RunSample.objects.filter(sweep=sweep):
        assert sample.stages[0]["usage_estimated"] is True
        assert 0 < sample.tokens_in < 100 and 0 < sample.tokens_out < 100
    page = Client()
    page.force_login(user)
    run = sweep.runs.get()
    assert (
        "tokens estimated (the server sent no usage)" in page.get(reverse("run_detail", args=[run.pk])).content.decode()
    )

"""The OpenAI-compatible adapter against the fake server: what it sends, what it reads, and
the errors peculiar to OpenAI (quota exhausted is a 429 that no wait fixes)."""

from __future__ import annotations

import json

import pytest

from sweeps.engine.provider import CompletionRequest, ProviderError
from sweeps.providers.http import HttpSettings
from sweeps.providers.openai import OpenAIProvider
from tests.fakes.llm_server import FakeLLMServer, Scripted

KEY = "sk-openai-test-key-42"


@pytest.fixture
async def server():
    async with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def connect(server):
    made: list[OpenAIProvider] = []

    def make(*, name: str = "openai", key_env: str = "OPENAI_API_KEY", base_url: str | None = None) -> OpenAIProvider:
        provider = OpenAIProvider(
            name=name, base_url=base_url or server.url, api_key=KEY, key_env=key_env, settings=HttpSettings()
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def ask(
    content: str = "Summarize: the printer is on fire", *, system: str | None = None, **params
) -> CompletionRequest:
    messages = ({"role": "system", "content": system},) if system else ()
    return CompletionRequest(
        model="gpt-4o-mini", messages=(*messages, {"role": "user", "content": content}), params=params
    )


async def failure(provider: OpenAIProvider, request: CompletionRequest | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request or ask())
    return caught.value


async def test_sends_model_messages_and_every_param(server, connect):
    request = CompletionRequest(
        model="gpt-4o-mini",
        messages=(
            {"role": "system", "content": "You are concise."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Label: printer on fire"},
        ),
        params={
            "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "stop": ["\n\n"], "seed": 7,
            "presence_penalty": 0.5, "response_format": {"type": "json_object"}, "logit_bias": None,
        },
    )  # fmt: skip
    await connect().complete(request)
    [sent] = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {
        "model": "gpt-4o-mini",
        "messages": [dict(m) for m in request.messages],  # the system prompt stays a message
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "stop": ["\n\n"], "seed": 7,
        "presence_penalty": 0.5, "response_format": {"type": "json_object"},  # None means "not set"
    }  # fmt: skip
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert "x-api-key" not in sent.headers


async def test_base_url_may_end_with_a_slash(server, connect):
    await connect(base_url=server.url + "/").complete(ask())
    assert server.requests[0].path == "/v1/chat/completions"


async def test_reads_text_finish_reason_and_usage(server, connect):
    server.script(Scripted(body={
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "It is on fire."}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 17, "completion_tokens": 4, "total_tokens": 21},
    }))  # fmt: skip
    completion = await connect().complete(ask())
    assert completion.text == "It is on fire."
    assert (completion.tokens_in, completion.tokens_out) == (17, 4)
    assert completion.finish_reason == "length"
    assert completion.latency_ms > 0


async def test_the_default_answer_of_the_fake_server_round_trips(server, connect):
    completion = await connect().complete(ask("one two three four five", system="sys words", max_tokens=3))
    assert completion.text == "one two three"
    assert (completion.tokens_in, completion.tokens_out, completion.finish_reason) == (7, 3, "length")


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"role": "assistant", "content": None}, ""),  # all of max_tokens spent reasoning
        ({"role": "assistant", "content": None, "refusal": "I can't help with that."}, "I can't help with that."),
        ({"role": "assistant", "content": ""}, ""),
    ],
)
async def test_an_empty_answer_is_an_answer(server, connect, message, text):
    server.script(Scripted(body={
        "choices": [{"message": message, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 64},
    }))  # fmt: skip
    completion = await connect().complete(ask())
    assert (completion.text, completion.tokens_out, completion.finish_reason) == (text, 64, "length")


async def test_a_server_without_usage_gets_estimated_tokens(server, connect):
    server.script(Scripted(body={"choices": [{"message": {"content": "x" * 40}}]}))
    completion = await connect().complete(ask("y" * 80))
    assert (completion.tokens_in, completion.tokens_out) == (20, 10)  # about 4 characters a token
    assert completion.finish_reason == "stop"
    assert completion.usage_estimated


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 10**12, "completion_tokens": 3},
        {"prompt_tokens": 5, "completion_tokens": -5},
        {"prompt_tokens": 5, "completion_tokens": "many"},
        {"prompt_tokens": 1e309, "completion_tokens": 1},
        {"prompt_tokens": True, "completion_tokens": 1},
    ],
    ids=["huge", "negative", "text", "infinite", "boolean"],
)
async def test_impossible_usage_counts_are_replaced_by_an_estimate(server, connect, usage):
    server.script(Scripted(raw=json.dumps({"choices": [{"message": {"content": "x" * 40}}], "usage": usage}).encode()))
    completion = await connect().complete(ask("y" * 80))
    assert (completion.tokens_in, completion.tokens_out, completion.usage_estimated) == (20, 10, True)


async def test_a_reported_usage_is_not_marked_estimated(server, connect):
    assert not (await connect().complete(ask("hello there"))).usage_estimated


async def test_usage_without_prompt_tokens_is_malformed(server, connect):
    server.script(Scripted(body={"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 1}}))
    error = await failure(connect())
    assert not error.permanent
    assert error.message == "openai: malformed response (200): no 'prompt_tokens' field"


@pytest.mark.parametrize("field", ["code", "type"])
async def test_insufficient_quota_is_permanent_and_flagged(server, connect, field):
    error_body = {"message": "You exceeded your current quota, please check your plan and billing details.",
                  "type": "invalid_request_error", "code": None}  # fmt: skip
    error_body[field] = "insufficient_quota"
    server.script(Scripted(429, body={"error": error_body}, headers={"Retry-After": "20"}))
    error = await failure(connect())
    assert error.permanent and error.quota_exhausted
    assert error.status == 429
    assert error.message.startswith(
        "openai: 429 quota exhausted — add credit or raise the limit of the account whose key is in OPENAI_API_KEY"
    )
    assert "You exceeded your current quota" in error.message


async def test_a_rate_limit_429_is_not_a_quota_problem(server, connect):
    server.script(Scripted(429, headers={"retry-after-ms": "600"}, body={"error": {
        "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
        "type": "requests", "code": "rate_limit_exceeded",
    }}))  # fmt: skip
    error = await failure(connect())
    assert not error.permanent and not error.quota_exhausted
    assert error.retry_after == 0.6
    assert error.message.startswith('openai: 429 rate limited; the server said: "Rate limit reached')


async def test_messages_name_the_provider_row_and_its_key_variable(server, connect):
    server.script(Scripted(401, body={"error": {"message": "Incorrect API key provided: sk-open***-42."}}))
    error = await failure(connect(name="vllm", key_env="VLLM_API_KEY"))
    assert error.message == (
        'vllm: 401 invalid API key — set VLLM_API_KEY; the server said: "Incorrect API key provided: sk-open***-42."'
    )


async def test_the_issue_example_message(server, connect):
    server.script(Scripted(401, body={}))
    assert (await failure(connect())).message == "openai: 401 invalid API key — set OPENAI_API_KEY"

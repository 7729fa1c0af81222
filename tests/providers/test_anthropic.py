"""The Anthropic adapter against the fake server: the protocol translation (top-level system,
required max_tokens, stop_sequences, content blocks, stop reasons) and Anthropic's errors
(529 overloaded, "credit balance too low")."""

from __future__ import annotations

import pytest

from sweeps.engine.provider import CompletionRequest, ProviderError
from sweeps.providers.anthropic import AnthropicProvider
from tests.fakes.llm_server import FakeLLMServer, Scripted

KEY = "sk-ant-test-key-42"
LOW_CREDIT = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)


@pytest.fixture
async def server():
    async with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def connect(server):
    made: list[AnthropicProvider] = []

    def make(*, base_url: str | None = None) -> AnthropicProvider:
        provider = AnthropicProvider(
            name="anthropic", base_url=base_url or server.anthropic_url, api_key=KEY, key_env="ANTHROPIC_API_KEY"
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
        model="claude-haiku-4-5", messages=(*messages, {"role": "user", "content": content}), params=params
    )


def answer(*content: dict, stop_reason: str | None = "end_turn", **usage) -> Scripted:
    return Scripted(body={
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": list(content), "stop_reason": stop_reason, "stop_sequence": None,
        "usage": usage or {"input_tokens": 12, "output_tokens": 3},
    })  # fmt: skip


async def failure(provider: AnthropicProvider, request: CompletionRequest | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request or ask())
    return caught.value


async def test_sends_system_top_level_headers_and_params(server, connect):
    request = CompletionRequest(
        model="claude-haiku-4-5",
        messages=(
            {"role": "system", "content": "You are concise."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Label: printer on fire"},
        ),
        params={"temperature": 0.3, "top_p": 0.9, "top_k": 40, "max_tokens": 64, "stop": "\n\n", "metadata": None},
    )
    await connect().complete(request)
    [sent] = server.requests
    assert sent.path == "/v1/messages"
    assert sent.json == {
        "model": "claude-haiku-4-5",
        "system": "You are concise.",
        "messages": [dict(m) for m in request.messages[1:]],
        "temperature": 0.3, "top_p": 0.9, "top_k": 40, "max_tokens": 64,
        "stop_sequences": ["\n\n"],
    }  # fmt: skip
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers


async def test_max_tokens_defaults_to_1024_and_no_system_means_no_field(server, connect):
    await connect().complete(ask())
    sent = server.requests[0].json
    assert sent["max_tokens"] == 1024
    assert "system" not in sent


async def test_several_system_messages_become_one_and_seed_is_left_out(server, connect):
    request = CompletionRequest(
        model="claude-haiku-4-5",
        messages=(
            {"role": "system", "content": "Rule one."},
            {"role": "system", "content": "Rule two."},
            {"role": "user", "content": "Go"},
        ),
        params={"seed": 7, "stop": ["END", "STOP"]},
    )
    await connect().complete(request)
    sent = server.requests[0].json
    assert sent["system"] == "Rule one.\n\nRule two."
    assert sent["messages"] == [{"role": "user", "content": "Go"}]
    assert sent["stop_sequences"] == ["END", "STOP"]
    assert "seed" not in sent and "stop" not in sent  # Anthropic refuses both with a 400


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_base_url_with_or_without_the_version(server, connect, suffix):
    await connect(base_url=server.anthropic_url + suffix).complete(ask())
    assert server.requests[0].path == "/v1/messages"


async def test_text_blocks_are_concatenated_and_others_skipped(server, connect):
    server.script(answer(
        {"type": "thinking", "thinking": "hmm", "signature": "abc"},
        {"type": "text", "text": "It is "},
        {"type": "tool_use", "id": "t1", "name": "x", "input": {}},
        {"type": "text", "text": "on fire."},
    ))  # fmt: skip
    completion = await connect().complete(ask())
    assert completion.text == "It is on fire."
    assert (completion.tokens_in, completion.tokens_out, completion.finish_reason) == (12, 3, "stop")


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "refusal"),
        (None, "stop"),
    ],
)
async def test_stop_reasons(server, connect, stop_reason, finish_reason):
    server.script(answer({"type": "text", "text": "ok"}, stop_reason=stop_reason))
    assert (await connect().complete(ask())).finish_reason == finish_reason


async def test_prompt_cache_tokens_count_as_input(server, connect):
    server.script(answer(
        {"type": "text", "text": "ok"},
        input_tokens=10, output_tokens=2, cache_creation_input_tokens=100, cache_read_input_tokens=1000,
    ))  # fmt: skip
    completion = await connect().complete(ask())
    assert (completion.tokens_in, completion.tokens_out) == (1110, 2)


async def test_the_default_answer_of_the_fake_server_round_trips(server, connect):
    completion = await connect().complete(ask("one two three four five", system="sys words", max_tokens=3))
    assert completion.text == "one two three"
    assert (completion.tokens_in, completion.tokens_out, completion.finish_reason) == (7, 3, "length")


async def test_usage_without_output_tokens_is_malformed(server, connect):
    server.script(answer({"type": "text", "text": "ok"}, input_tokens=3))
    error = await failure(connect())
    assert not error.permanent and error.status == 200
    assert error.message == "anthropic: malformed response (200): no 'output_tokens' field"


async def test_overloaded_529_is_retryable(server, connect):
    server.script(Scripted(529, headers={"retry-after": "3"}, body={
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
    }))  # fmt: skip
    error = await failure(connect())
    assert not error.permanent and error.status == 529 and error.retry_after == 3.0
    assert error.message == 'anthropic: 529 server error; the server said: "Overloaded"'


@pytest.mark.parametrize("status", [400, 403])
async def test_low_credit_is_permanent_and_flagged(server, connect, status):
    server.script(
        Scripted(status, body={"type": "error", "error": {"type": "invalid_request_error", "message": LOW_CREDIT}})
    )
    error = await failure(connect())
    assert error.permanent and error.quota_exhausted and error.status == status
    assert error.message.startswith(f"anthropic: {status} quota exhausted — add credit")
    assert "ANTHROPIC_API_KEY" in error.message and "credit balance is too low" in error.message


async def test_an_ordinary_400_is_permanent_but_not_a_quota_problem(server, connect):
    server.script(Scripted(400, body={"type": "error", "error": {
        "type": "invalid_request_error", "message": "max_tokens: 100000 > 64000, the maximum for this model",
    }}))  # fmt: skip
    error = await failure(connect())
    assert error.permanent and not error.quota_exhausted
    assert error.message == (
        'anthropic: 400 request refused; the server said: "max_tokens: 100000 > 64000, the maximum for this model"'
    )


async def test_a_rate_limit_is_retryable_with_its_wait(server, connect):
    server.script(Scripted(429, headers={"retry-after": "12"}, body={
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"},
    }))  # fmt: skip
    error = await failure(connect())
    assert not error.permanent and not error.quota_exhausted and error.retry_after == 12.0


async def test_invalid_key_message(server, connect):
    server.script(Scripted(401, body={
        "type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }))  # fmt: skip
    error = await failure(connect())
    assert (
        error.message == 'anthropic: 401 invalid API key — set ANTHROPIC_API_KEY; the server said: "invalid x-api-key"'
    )

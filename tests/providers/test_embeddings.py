"""Embeddings over real HTTP: the OpenAI-compatible adapter's POST /embeddings against the fake
server (as vLLM, llama.cpp, Ollama and LiteLLM serve it), the mock's offline vectors, and the
adapters that have none."""

from __future__ import annotations

import math

import pytest

from sweeps.engine.provider import EmbeddingRequest, ProviderError
from sweeps.providers.anthropic import AnthropicProvider
from sweeps.providers.http import HttpSettings
from sweeps.providers.mock import MockProvider
from sweeps.providers.openai import OpenAIProvider
from tests.fakes.llm_server import FakeLLMServer, Scripted

KEY = "sk-embeddings-test"


@pytest.fixture
async def server():
    async with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def openai(server):
    provider = OpenAIProvider(name="openai", base_url=server.url, api_key=KEY, key_env="OPENAI_API_KEY",
                              settings=HttpSettings())  # fmt: skip
    yield provider
    await provider.aclose()


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def test_posts_the_texts_and_reads_one_vector_per_text_in_order(server, openai):
    texts = ("refund my order", "please refund my order", "the printer is on fire")
    embedding = await openai.embed(EmbeddingRequest("text-embedding-3-small", texts))

    [request] = server.requests
    assert request.path == "/v1/embeddings" and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {"model": "text-embedding-3-small", "input": list(texts)}
    assert len(embedding.vectors) == 3 and embedding.tokens_in == 12 and not embedding.usage_estimated
    close, far = cosine(*embedding.vectors[:2]), cosine(embedding.vectors[0], embedding.vectors[2])
    assert close > 0.8 > far


async def test_items_in_any_order_are_read_by_index(server, openai):
    server.script(Scripted(body={"data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}],
                                 "usage": {"prompt_tokens": 2}}))  # fmt: skip
    embedding = await openai.embed(EmbeddingRequest("m", ("a", "b")))
    assert embedding.vectors == ((1.0, 0.0), (0.0, 1.0))


async def test_a_server_that_counts_nothing_gets_estimated_usage(server, openai):
    server.script(Scripted(body={"data": [{"index": 0, "embedding": [1.0]}]}))
    embedding = await openai.embed(EmbeddingRequest("m", ("twelve chars",)))
    assert (embedding.tokens_in, embedding.usage_estimated) == (3, True)


@pytest.mark.parametrize(
    ("body", "problem"),
    [({"data": [{"index": 0, "embedding": [1.0]}]}, "1 embeddings for 2 texts"),
     ({"data": [{"index": 0, "embedding": "x"}, {"index": 1, "embedding": [1.0]}]}, "not a list of numbers"),
     ({"object": "list"}, "no 'data' field")],
)  # fmt: skip
async def test_a_malformed_answer_is_a_retryable_error_saying_what_is_wrong(server, openai, body, problem):
    server.script(Scripted(body=body))
    with pytest.raises(ProviderError, match=problem) as caught:
        await openai.embed(EmbeddingRequest("m", ("a", "b")))
    assert not caught.value.permanent


async def test_errors_are_the_completions_errors(server, openai):
    server.script(Scripted(404))
    with pytest.raises(ProviderError, match="404 unknown model or URL: check the model name \\('nope'\\)") as caught:
        await openai.embed(EmbeddingRequest("nope", ("a",)))
    assert caught.value.permanent


async def test_a_keyless_server_gets_no_key_header(server):
    keyless = OpenAIProvider(name="local", base_url=server.url, api_key=None, key_env="", settings=HttpSettings())
    try:
        await keyless.embed(EmbeddingRequest("nomic-embed-text", ("a",)))
    finally:
        await keyless.aclose()
    assert "authorization" not in server.requests[0].headers


async def test_anthropic_has_no_embeddings_and_says_what_to_use(server):
    anthropic = AnthropicProvider(name="anthropic", base_url=server.anthropic_url, api_key=KEY,
                                  key_env="ANTHROPIC_API_KEY", settings=HttpSettings())  # fmt: skip
    with pytest.raises(ProviderError, match="no embeddings endpoint; use an OpenAI-compatible") as caught:
        await anthropic.embed(EmbeddingRequest("claude", ("a",)))
    assert caught.value.permanent and not server.requests


async def test_the_mock_embeds_offline_and_alike_texts_are_close():
    embedding = await MockProvider().embed(EmbeddingRequest("any", ("Refund my order!", "refund my order", "fire")))
    first, second, third = embedding.vectors
    assert cosine(first, second) == pytest.approx(1.0) and cosine(first, third) == 0
    again = await MockProvider().embed(EmbeddingRequest("any", ("Refund my order!",)))
    assert again.vectors[0] == first and embedding.tokens_in > 0

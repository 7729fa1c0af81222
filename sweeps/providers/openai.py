"""OpenAI chat completions, and every server that speaks the same protocol (vLLM, Ollama,
llama.cpp, LiteLLM, OpenRouter...): POST {base_url}/chat/completions with a bearer key; and
their embeddings, POST {base_url}/embeddings, for the similarity scorer's `method: embedding`.

The spec's params go into the body as they are (temperature, top_p, max_tokens, stop, seed and
anything else the server understands), so a new OpenAI parameter needs no code here.
"""

from __future__ import annotations

import math
from typing import Any

from sweeps.engine.provider import (
    Completion,
    CompletionRequest,
    Embedding,
    EmbeddingRequest,
    calls_as_text,
    tool_call,
)
from sweeps.providers.http import MAX_REPORTED_TOKENS, ErrorBody, HttpProvider, checked_usage

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"


class OpenAIProvider(HttpProvider):
    path = "chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def request_body(self, request: CompletionRequest) -> dict[str, Any]:
        params = {key: value for key, value in request.params.items() if value is not None}
        return {**params, "model": request.model, "messages": [dict(m) for m in request.messages]}

    def parse_completion(self, data: Any, request: CompletionRequest, latency_ms: float) -> Completion:
        choice = data["choices"][0]
        message = choice["message"]
        # null content is a real answer, not a broken one: a reasoning model that spent all of
        # max_tokens thinking, or a refusal (whose text is then the answer).
        text = message.get("content") or message.get("refusal") or ""
        if not isinstance(text, str):
            raise TypeError("message.content is not text")
        calls = tuple(
            tool_call(call["function"]["name"], call["function"].get("arguments"))
            for call in message.get("tool_calls") or ()
        )
        text = text or (calls_as_text(calls) if calls else "")
        usage = data.get("usage")
        # A few compatible servers send no usage (or nonsense); retrying would only pay for the
        # answer again, so the counts are estimated and the stage says so.
        tokens_in, tokens_out, estimated = checked_usage(
            request,
            text,
            None if usage is None else lambda: (usage["prompt_tokens"], usage.get("completion_tokens") or 0),
        )
        return Completion(
            text=text,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            finish_reason=choice.get("finish_reason") or "stop",
            latency_ms=latency_ms,
            usage_estimated=estimated,
            tool_calls=calls,
        )

    async def embed(self, request: EmbeddingRequest) -> Embedding:
        body = {"model": request.model, "input": list(request.texts)}
        return await self.post("embeddings", body, request, parse_embedding)

    def is_quota_exhausted(self, status: int, error: ErrorBody) -> bool:
        # A 429 of this kind is not a rate limit: waiting does not help until someone pays.
        return status == 429 and "insufficient_quota" in (error.code, error.type)


MAX_DIMENSIONS = 100_000


def parse_embedding(data: Any, request: EmbeddingRequest, latency_ms: float) -> Embedding:
    """{"data": [{"index": i, "embedding": [floats]}...], "usage": {"prompt_tokens": n}}; the
    items may come in any order (OpenAI says to use `index`). Anything else raises as malformed."""
    items = sorted(data["data"], key=lambda item: item.get("index", 0))
    if len(items) != len(request.texts):
        raise ValueError(f"{len(items)} embeddings for {len(request.texts)} texts")
    vectors = []
    for item in items:
        vector = item["embedding"]
        if not isinstance(vector, list) or not 0 < len(vector) <= MAX_DIMENSIONS:
            raise ValueError("an embedding is not a list of numbers")
        vectors.append(tuple(float(x) for x in vector))
    usage = data.get("usage")
    estimate = sum(math.ceil(len(text) / 4) for text in request.texts)
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, int) and not isinstance(tokens, bool) and 0 <= tokens <= MAX_REPORTED_TOKENS:
        return Embedding(tuple(vectors), tokens, latency_ms)
    return Embedding(tuple(vectors), estimate, latency_ms, usage_estimated=True)  # a server that counts nothing

"""Anthropic's Messages API: POST {base_url}/v1/messages with `x-api-key` and a pinned
`anthropic-version`.

It differs from OpenAI's protocol in ways the spec should not have to care about, so they are
translated here: the system prompt is a top-level field rather than a message, `max_tokens` is
required (DEFAULT_MAX_TOKENS when the spec sets none), `stop` is called `stop_sequences`, the
answer is a list of content blocks, and stop reasons have their own names.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sweeps.engine.provider import Completion, CompletionRequest, calls_as_text, tool_call
from sweeps.providers.http import ErrorBody, HttpProvider, checked_usage

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

# Anthropic's stop reasons in the engine's (OpenAI's) words; others pass through unchanged.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
# OpenAI-only params that Anthropic refuses with a 400: a sweep over `params.seed` for every
# stage must not break the Anthropic stages.
UNSUPPORTED_PARAMS = frozenset({"seed"})
# How Anthropic words "the account is out of money" (it has no dedicated error type for it).
_OUT_OF_CREDIT = re.compile(r"credit balance|billing", re.IGNORECASE)


class AnthropicProvider(HttpProvider):
    path = "v1/messages"

    @staticmethod
    def normalized_base_url(base_url: str) -> str:
        # People paste the base URL with the version in it, as OpenAI's is written.
        return base_url.rstrip("/").removesuffix("/v1")

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {"anthropic-version": API_VERSION} | ({"x-api-key": api_key} if api_key else {})

    def request_body(self, request: CompletionRequest) -> dict[str, Any]:
        params = {
            key: value for key, value in request.params.items() if value is not None and key not in UNSUPPORTED_PARAMS
        }
        stop = params.pop("stop", None)
        if stop is not None:
            params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        if system:
            params["system"] = system
        messages = [dict(m) for m in request.messages if m["role"] != "system"]
        return {**params, "model": request.model, "messages": messages}

    def parse_completion(self, data: Any, request: CompletionRequest, latency_ms: float) -> Completion:
        text = "".join(block["text"] for block in data["content"] if block.get("type") == "text")
        calls = tuple(tool_call(b["name"], b.get("input")) for b in data["content"] if b.get("type") == "tool_use")
        text = text or (calls_as_text(calls) if calls else "")
        usage = data.get("usage")

        def reported() -> tuple[Any, Any]:
            # Prompt-cache reads and writes are input too, reported apart from input_tokens.
            cache = ("cache_creation_input_tokens", "cache_read_input_tokens")
            parts = [usage["input_tokens"], *(usage.get(field) or 0 for field in cache)]
            numbers = all(isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p) for p in parts)
            return (sum(parts) if numbers else None), usage["output_tokens"]

        tokens_in, tokens_out, estimated = checked_usage(request, text, None if usage is None else reported)
        stop_reason = data.get("stop_reason") or "end_turn"
        return Completion(
            text=text,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            finish_reason=FINISH_REASONS.get(stop_reason, stop_reason),
            latency_ms=latency_ms,
            usage_estimated=estimated,
            tool_calls=calls,
        )

    def is_quota_exhausted(self, status: int, error: ErrorBody) -> bool:
        return status in (400, 403) and bool(_OUT_OF_CREDIT.search(error.message))

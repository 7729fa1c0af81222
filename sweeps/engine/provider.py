"""What the engine needs of an LLM adapter: one chat completion per call (and, where the
server has an embeddings endpoint, the embeddings of some texts), and one error type.

The engine defines this and the adapters in sweeps/providers/ (mock, and the httpx-based OpenAI
and Anthropic ones) subclass Provider, so the dependency points one way: providers import the
engine, never the reverse. The engine knows nothing else about them: it builds a
CompletionRequest, awaits `complete`, and decides whether to retry from the ProviderError it
may get back.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CompletionRequest:
    model: str  # without the "provider/" prefix, e.g. "gpt-4o-mini"
    # {"role": "system" | "user" | "assistant", "content": "..."}, in conversation order
    messages: tuple[Mapping[str, str], ...]
    params: Mapping[str, Any]  # sampling parameters: temperature, top_p, max_tokens, ...
    # Which repeat of the same request this is: lets a sweep ask for several samples of one
    # (config, row), and keeps their cache entries apart.
    replicate: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str = "stop"  # "length" when max_tokens cut the answer short
    latency_ms: float = 0.0
    usage_estimated: bool = False  # the server sent no usable token counts: tokens_in/out are estimates
    # The tools the model called, as {"name": ..., "arguments": ...} (arguments decoded when JSON)
    tool_calls: tuple[Mapping[str, Any], ...] = ()


def tool_call(name: Any, arguments: Any) -> dict[str, Any]:
    """One tool call as the engine records it, whatever the protocol: arguments decoded from
    their JSON text when they are some (OpenAI sends a string, Anthropic an object)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # kept as sent: a model may write broken JSON, which the scorer then reports
    return {"name": str(name), "arguments": arguments}


def calls_as_text(calls: Sequence[Mapping[str, Any]]) -> str:
    """An answer that is only tool calls, as its text: what later stages and text scorers read."""
    return json.dumps(list(calls), ensure_ascii=False)


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str  # without the "provider/" prefix, e.g. "text-embedding-3-small"
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Embedding:
    vectors: tuple[tuple[float, ...], ...]  # one per text, in the request's order
    tokens_in: int
    latency_ms: float = 0.0
    usage_estimated: bool = False
    tokens_out: int = 0  # an embedding answers with no tokens; here so that it reads like a Completion


class ProviderError(Exception):
    """A call that produced no completion.

    `permanent` errors (bad request, unknown model, auth) fail the same way on every attempt;
    the others (429, 5xx, timeouts) may succeed when retried, after `retry_after` seconds when
    the provider said so.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        quota_exhausted: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent or quota_exhausted
        self.status = status  # HTTP status, when there was a response
        self.retry_after = retry_after
        # The account is out of credit: every further call fails too, so a sweep may stop at once.
        self.quota_exhausted = quota_exhausted


class Provider(ABC):
    name: str

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """Return the completion, or raise ProviderError."""

    async def embed(self, request: EmbeddingRequest) -> Embedding:
        """The embeddings of the request's texts, or raise ProviderError; most adapters have none."""
        raise ProviderError(
            f"{self.name}: no embeddings endpoint; use an OpenAI-compatible provider's embedding model",
            permanent=True,
        )

    async def aclose(self) -> None:  # noqa: B027 (optional: most adapters hold nothing)
        """Release what the adapter holds (an HTTP client); nothing by default."""

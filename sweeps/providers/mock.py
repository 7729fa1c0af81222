"""An offline provider whose answers depend on the prompt and the sampling params, like a real one.

It makes demos, tests and benchmarks run without network or keys, while a sweep over its params
still sees real score differences. The answer is deterministic given (model, messages, params,
replicate) and the provider's seed.

Models (the part after "mock/"):
- `echo`:  the last user message's text after its last ':' (all of it when there is none),
           e.g. "Summarize: the printer is on fire" -> "the printer is on fire".
- `upper`: the echo answer, upper-cased.
- `short`: the first 3 words of the echo answer.
- `json`:  `{"answer": "<echo answer>"}`.
- `error`: always raises a permanent ProviderError (status 400).
- `flaky`: answers like `echo`, but about 30 % of attempts raise a retryable ProviderError
           (status 503). Which attempts fail is seeded, and a retry of a failed request is a
           fresh draw, so retrying eventually succeeds as it would against a real provider.
Any other model raises a permanent ProviderError (status 404) naming the choices.

Embeddings (`mock/<any model>` with the similarity scorer's `method: embedding`): each text
becomes a unit vector of EMBEDDING_DIMENSIONS counting its lower-cased words by hash, so texts
sharing words are close (cosine = their words' overlap) and the same text is always the same vector.

Params (others are accepted and ignored, as real APIs accept many):
- `temperature` (0..2, default 0 so that a spec without it gets the clean answer): each word of
  the answer is dropped, duplicated or swapped with the next one with probability
  0.4 * temperature, seeded by the request, so replicates differ.
- `top_p` (0..1, default 1): below 1 it reduces that probability, by at most half.
- `max_tokens` (>= 1): cuts the final text short, finish_reason "length".
Out-of-range values raise a permanent ProviderError (status 400), as a real API would refuse them.

Usage looks real: about 1.3 tokens per word, of the messages in and of the answer out.
Latency: `latency_ms` on average, with lognormal jitter of sigma `jitter` (0 = exactly latency_ms).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from sweeps.engine.provider import (
    Completion,
    CompletionRequest,
    Embedding,
    EmbeddingRequest,
    Provider,
    ProviderError,
)

FLAKY_FAILURE_RATE = 0.3
NOISE_PER_TEMPERATURE = 0.4
EMBEDDING_DIMENSIONS = 256

_WORD = re.compile(r"\S+")


def _first_words(text: str, n: int) -> str:
    # Cut after the n-th word without touching the whitespace before it.
    end = 0
    for _, match in zip(range(n), _WORD.finditer(text)):
        end = match.end()
    return text[:end]


# How each answering model turns the (possibly noisy) echo answer into its output.
_ANSWERS: dict[str, Callable[[str], str]] = {
    "echo": lambda answer: answer,
    "upper": str.upper,
    "short": lambda answer: _first_words(answer, 3),
    "json": lambda answer: json.dumps({"answer": answer}, ensure_ascii=False),
    "flaky": lambda answer: answer,
}
MODELS = tuple(sorted([*_ANSWERS, "error"]))


class MockProvider(Provider):
    name = "mock"

    def __init__(self, *, latency_ms: float = 0.0, jitter: float = 0.0, seed: int = 0) -> None:
        if latency_ms < 0 or jitter < 0:
            raise ValueError("latency_ms and jitter must not be negative")
        self.latency_ms = latency_ms
        self.jitter = jitter
        self.seed = seed
        # Failed attempts so far per flaky request, so that its retry is a new draw. An entry
        # is dropped on success, so only requests currently failing are kept.
        self._flaky_failures: dict[int, int] = {}

    async def complete(self, request: CompletionRequest) -> Completion:
        started = time.perf_counter()
        request_seed = _request_seed(self.seed, request)
        rng = random.Random(request_seed)
        if request.model == "error":
            await self._wait(rng)
            raise ProviderError(
                "mock/error always fails (a permanent error, for testing)",
                permanent=True,
                status=400,
            )
        to_output = _ANSWERS.get(request.model)
        if to_output is None:
            raise ProviderError(
                f"unknown mock model {request.model!r}; choose one of: {', '.join(MODELS)}",
                permanent=True,
                status=404,
            )
        temperature, top_p, max_tokens = _sampling(request.params)

        answer = _echo_answer(request.messages)
        noise = min(1.0, NOISE_PER_TEMPERATURE * temperature * (0.5 + 0.5 * top_p))
        if noise > 0:
            answer = " ".join(_perturb(answer.split(), noise, rng))
        text = to_output(answer)
        tokens_out = max(1, _count_tokens(text))
        finish_reason = "stop"
        if max_tokens is not None and tokens_out > max_tokens:
            text = _first_words(text, max(1, max_tokens * 10 // 13))
            tokens_out = max_tokens
            finish_reason = "length"

        fails = request.model == "flaky" and self._flaky_attempt_fails(request_seed)
        await self._wait(rng)
        if fails:
            raise ProviderError("mock/flaky: simulated overload, try again", status=503)
        return Completion(
            text=text,
            tokens_in=max(1, sum(_count_tokens(m.get("content", "")) for m in request.messages)),
            tokens_out=tokens_out,
            finish_reason=finish_reason,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def embed(self, request: EmbeddingRequest) -> Embedding:
        started = time.perf_counter()
        await self._wait(random.Random(hashlib.blake2b("\0".join(request.texts).encode(), digest_size=8).digest()))
        return Embedding(
            vectors=tuple(_bag_of_words(text) for text in request.texts),
            tokens_in=sum(max(1, _count_tokens(text)) for text in request.texts),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _flaky_attempt_fails(self, request_seed: int) -> bool:
        failures = self._flaky_failures.get(request_seed, 0)
        fails = random.Random(request_seed + failures).random() < FLAKY_FAILURE_RATE
        if fails:
            self._flaky_failures[request_seed] = failures + 1
        else:
            self._flaky_failures.pop(request_seed, None)
        return fails

    async def _wait(self, rng: random.Random) -> None:
        # Drawn from the request's generator after the answer, so the answer does not depend on
        # the latency settings and a request's latency is reproducible.
        if self.latency_ms == 0:
            return
        delay_ms = self.latency_ms
        if self.jitter > 0:
            # A lognormal whose mean is latency_ms: a few calls are much slower, as in real life.
            mu = math.log(self.latency_ms) - self.jitter**2 / 2
            delay_ms = rng.lognormvariate(mu, self.jitter)
        await asyncio.sleep(delay_ms / 1000)


def _request_seed(seed: int, request: CompletionRequest) -> int:
    # Canonical JSON (sorted keys), so equal requests built in a different key order agree.
    canonical = json.dumps(
        [
            seed,
            request.model,
            [dict(m) for m in request.messages],
            dict(request.params),
            request.replicate,
        ],
        sort_keys=True,
        separators=(",", ":"),
        default=repr,
    )
    return int.from_bytes(hashlib.blake2b(canonical.encode(), digest_size=8).digest(), "big")


def _sampling(params: Mapping[str, Any]) -> tuple[float, float, int | None]:
    temperature = _number_param(params, "temperature", default=0.0, high=2.0)
    top_p = _number_param(params, "top_p", default=1.0, high=1.0)
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ProviderError(
            f"max_tokens must be an integer of at least 1, got {max_tokens!r}",
            permanent=True,
            status=400,
        )
    return temperature, top_p, max_tokens


def _number_param(params: Mapping[str, Any], name: str, *, default: float, high: float) -> float:
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
        raise ProviderError(f"{name} must be a number from 0 to {high:g}, got {value!r}", permanent=True, status=400)
    return float(value)


def _echo_answer(messages: tuple[Mapping[str, str], ...]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content", "")
            return content.rpartition(":")[2].strip()
    return ""


def _perturb(words: list[str], probability: float, rng: random.Random) -> list[str]:
    # Sampling noise: each word may be dropped, said twice, or swapped with the next one.
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if rng.random() >= probability:
            out.append(word)
            continue
        mistake = rng.randrange(3)
        if mistake == 0:
            continue  # dropped
        if mistake == 1:
            out += (word, word)
        elif i < len(words):
            out += (words[i], word)
            i += 1
        else:
            out.append(word)  # the last word has nothing to swap with
    return out


def _count_tokens(text: str) -> int:
    # About 1.3 tokens per English word, in integers so that truncation lands exactly.
    return (13 * len(text.split()) + 9) // 10


def _bag_of_words(text: str) -> tuple[float, ...]:
    counts = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
        counts[int.from_bytes(digest, "big") % EMBEDDING_DIMENSIONS] += 1.0
    norm = math.sqrt(sum(c * c for c in counts)) or 1.0
    return tuple(c / norm for c in counts)

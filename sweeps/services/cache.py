"""Writes to the response cache: each answer a provider gave, under its request's key."""

from __future__ import annotations

from sweeps.engine.calls import CachedResponse
from sweeps.models import ResponseCache


def cache_store(entries: list[tuple[str, str, str, CachedResponse]]) -> list[None]:
    ResponseCache.objects.bulk_create(
        (
            ResponseCache(key=key, provider=provider, model=model, text=r.text, finish_reason=r.finish_reason,
                          tokens_in=r.tokens_in, tokens_out=r.tokens_out, latency_ms=r.latency_ms, cost_usd=r.cost_usd,
                          tool_calls=[dict(call) for call in r.tool_calls])
            for key, provider, model, r in entries
        ),
        ignore_conflicts=True,  # two workers may answer the same request at once; either is fine
    )  # fmt: skip
    return [None] * len(entries)

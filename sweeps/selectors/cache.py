"""Reads of the response cache: what a request was answered before, whoever asked."""

from __future__ import annotations

from collections.abc import Iterable

from sweeps.engine.calls import CachedResponse
from sweeps.models import ResponseCache

LOOKUP_CHUNK = 500  # keys per query: well under every backend's limit on query parameters
FIELDS = ("key", "text", "tokens_in", "tokens_out", "finish_reason", "latency_ms", "cost_usd", "tool_calls")


def cached_responses(keys: Iterable[str]) -> dict[str, CachedResponse]:
    """The cached answers among `keys`, by key (hits are counted when samples are recorded)."""
    unique = list(dict.fromkeys(keys))
    found: dict[str, CachedResponse] = {}
    for start in range(0, len(unique), LOOKUP_CHUNK):
        for row in ResponseCache.objects.filter(key__in=unique[start : start + LOOKUP_CHUNK]).values(*FIELDS):
            found[row["key"]] = CachedResponse(
                row["text"],
                row["tokens_in"],
                row["tokens_out"],
                row["finish_reason"],
                row["latency_ms"],
                row["cost_usd"],
                tool_calls=tuple(row["tool_calls"] or ()),
            )
    return found


def cache_lookup(keys: list[str]) -> list[CachedResponse | None]:
    """Each key's cached answer, or None, in the keys' order (the executor's batched lookup)."""
    found = cached_responses(keys)
    return [found.get(k) for k in keys]

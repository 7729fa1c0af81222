"""The providers one sweep execution talks to, built from the Provider rows.

One adapter instance per provider per execution (so one HTTP client per event loop, never one
per call and never shared across loops).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils.module_loading import import_string

from sweeps.engine.provider import Provider, ProviderError
from sweeps.engine.retry import RetryPolicy
from sweeps.providers.mock import MockProvider

MOCK_OPTIONS = ("latency_ms", "jitter", "seed")
# Imported on first use: a sweep on the mock never loads the HTTP stack.
ADAPTERS = {
    "openai": "sweeps.providers.openai.OpenAIProvider",
    "anthropic": "sweeps.providers.anthropic.AnthropicProvider",
}


def build_adapter(row: Any) -> Provider:
    """An adapter for a Provider row (duck-typed, so tests can pass plain objects)."""
    options = dict(row.options or {})
    if row.kind == "mock":
        return MockProvider(**{k: v for k, v in options.items() if k in MOCK_OPTIONS})
    available, reason = row.availability()
    if not available:
        raise ProviderError(f"{row.name}: unavailable: {reason}", permanent=True)
    from sweeps.providers.http import HttpSettings

    return import_string(ADAPTERS[row.kind])(
        name=row.name,
        base_url=row.resolved_base_url(),
        api_key=row.api_key(),
        # "" when no key is needed and none is set: a keyless call, without a key header.
        key_env=row.api_key_env if row.key_required() or row.api_key() else "",
        settings=HttpSettings.from_options(options),
    )


class ProviderSet:
    def __init__(self, rows: Iterable[Any]) -> None:
        self._rows = {row.name: row for row in rows if row.enabled}
        self._adapters: dict[str, Provider] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._rows)

    def get(self, name: str) -> Provider:
        if name not in self._adapters:
            row = self._rows.get(name)
            if row is None:
                raise ProviderError(f"unknown provider '{name}' (known: {', '.join(self.names)})", permanent=True)
            self._adapters[name] = build_adapter(row)
        return self._adapters[name]

    def price(self, provider: str, model: str) -> tuple[float, float]:
        row = self._rows.get(provider)
        return row.price(model) if row else (0.0, 0.0)

    def cache_namespace(self, provider: str) -> str:
        """What the response cache keys this provider's answers by, besides the request: its
        row's name and its `cache_namespace` option (never its URL, so moving a server keeps
        its cache)."""
        row = self._rows.get(provider)
        return str((row.options or {}).get("cache_namespace") or "") if row else ""

    def limits(self) -> dict[str, tuple[int | None, int | None]]:
        """Requests and tokens per minute, per provider that has any."""
        return {
            name: (row.requests_per_minute, row.tokens_per_minute)
            for name, row in self._rows.items()
            if row.requests_per_minute or row.tokens_per_minute
        }

    def retry_policies(self) -> dict[str, RetryPolicy]:
        return {
            name: RetryPolicy(**row.options["retry"])
            for name, row in self._rows.items()
            if (row.options or {}).get("retry")
        }

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()

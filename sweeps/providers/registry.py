"""The providers one sweep execution talks to, built from the Provider rows.

One adapter instance per provider per execution (so one HTTP client per event loop, never one
per call and never shared across loops).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sweeps.providers.base import Provider, ProviderError
from sweeps.providers.mock import MockProvider

MOCK_OPTIONS = ("latency_ms", "jitter", "seed")


def build_adapter(kind: str, options: dict[str, Any]) -> Provider:
    if kind == "mock":
        return MockProvider(**{k: v for k, v in options.items() if k in MOCK_OPTIONS})
    raise ProviderError(f"{kind}: this provider kind is not available in this version", permanent=True)


class ProviderSet:
    def __init__(self, rows: Iterable[Any]) -> None:
        self._rows = {row.name: row for row in rows if row.enabled}
        self._adapters: dict[str, Provider] = {}

    @classmethod
    def load(cls) -> ProviderSet:
        from sweeps.models import Provider as ProviderRow  # the engine-facing half stays importable without Django

        return cls(ProviderRow.objects.all())

    @property
    def names(self) -> list[str]:
        return sorted(self._rows)

    def get(self, name: str) -> Provider:
        if name not in self._adapters:
            row = self._rows.get(name)
            if row is None:
                raise ProviderError(f"unknown provider '{name}' (known: {', '.join(self.names)})", permanent=True)
            self._adapters[name] = build_adapter(row.kind, dict(row.options or {}))
        return self._adapters[name]

    def price(self, provider: str, model: str) -> tuple[float, float]:
        row = self._rows.get(provider)
        return (row.price_in_per_mtok, row.price_out_per_mtok) if row else (0.0, 0.0)

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()

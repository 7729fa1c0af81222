"""Prices of common hosted models, USD per million tokens (input, output).

Looked up by the longest model-name prefix, so dated versions ("claude-3-5-haiku-20241022",
"gpt-4o-mini-2024-07-18") find their family. A Provider row can override any model in its
options ({"prices": {"model": [in, out]}}); models in neither use the row's own two prices.
Check your provider's price page: these change.
"""

from __future__ import annotations

from collections.abc import Mapping

PRICES: dict[str, dict[str, tuple[float, float]]] = {
    "openai": {
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-4o": (2.50, 10.00),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1": (2.00, 8.00),
        "gpt-4-turbo": (10.00, 30.00),
        "gpt-3.5-turbo": (0.50, 1.50),
        "o4-mini": (1.10, 4.40),
        "o3-mini": (1.10, 4.40),
        "o3": (2.00, 8.00),
        "o1-mini": (1.10, 4.40),
        "o1": (15.00, 60.00),
        "text-embedding-3-small": (0.02, 0.0),
        "text-embedding-3-large": (0.13, 0.0),
        "text-embedding-ada-002": (0.10, 0.0),
    },
    "anthropic": {
        "claude-3-haiku": (0.25, 1.25),
        "claude-3-5-haiku": (0.80, 4.00),
        "claude-haiku-4": (1.00, 5.00),
        "claude-3-5-sonnet": (3.00, 15.00),
        "claude-3-7-sonnet": (3.00, 15.00),
        "claude-sonnet-4": (3.00, 15.00),
        "claude-3-opus": (15.00, 75.00),
        "claude-opus-4": (15.00, 75.00),
    },
}


def model_price(
    kind: str, model: str, overrides: Mapping[str, tuple[float, float]], default: tuple[float, float]
) -> tuple[float, float]:
    for table in (overrides, PRICES.get(kind, {})):
        matches = [name for name in table if model.startswith(name)]
        if matches:
            price_in, price_out = table[max(matches, key=len)]
            return float(price_in), float(price_out)
    return default

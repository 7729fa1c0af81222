"""The response cache key: what makes two provider calls the same call."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def cache_key(
    *, provider: str, model: str, params: Mapping[str, Any], messages: Sequence[Mapping[str, str]], replicate: int
) -> str:
    # The replicate index is part of the key so that `repeats` buys real samples, while a
    # re-run of the same sweep is still free. Keys and base URLs are deliberately absent.
    canonical = json.dumps(
        {"p": provider, "m": model, "params": params, "msgs": messages, "r": replicate},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()

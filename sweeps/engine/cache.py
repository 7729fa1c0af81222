"""The response cache key: what makes two provider calls the same call."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def cache_key(
    *,
    provider: str,
    model: str,
    params: Mapping[str, Any],
    messages: Sequence[Mapping[str, str]],
    replicate: int,
    namespace: str = "",
) -> str:
    # The provider is its row's name: a server moved to another URL keeps its cache, while
    # another row (another server) never sees it. `namespace` is the row's cache_namespace
    # option, bumped when the weights behind a name change; absent when empty, so the keys made
    # before it existed still hit. The replicate index is part of the key so that `repeats`
    # buys real samples, while a re-run of the same sweep is still free. Keys and base URLs
    # are deliberately absent.
    fields: dict[str, Any] = {"p": provider, "m": model, "params": params, "msgs": messages, "r": replicate}
    if namespace:
        fields["ns"] = namespace
    canonical = json.dumps(
        fields,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# An embedding call's texts, as the messages of its key: no chat message has this role.
EMBEDDING_INPUT = "embedding input"


def embedding_key(*, provider: str, model: str, texts: Sequence[str], namespace: str = "") -> str:
    """The cache key of the embeddings of `texts`: one answer whatever the replicate."""
    messages = [{"role": EMBEDDING_INPUT, "content": text} for text in texts]
    return cache_key(provider=provider, model=model, params={}, messages=messages, replicate=0, namespace=namespace)

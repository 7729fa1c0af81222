"""The pre-flight estimate against this installation: its response cache and its providers' prices.

The arithmetic is in sweeps.engine.estimate; this module only answers its questions from the
database. It never builds a provider adapter, so estimating never calls a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db.models import Avg, Count

from sweeps.engine.calls import CachedResponse
from sweeps.engine.estimate import Estimate, estimate_sweep, proposed_configs
from sweeps.engine.spec import ExperimentSpec
from sweeps.models import ResponseCache
from sweeps.selectors.cache import cached_responses
from sweeps.selectors.providers import provider_set
from sweeps.services.planning import round_rng


class DatabaseSources:
    def __init__(self) -> None:
        self.providers = provider_set()  # prices only: ProviderSet.price never builds an adapter

    def cached(self, keys: Sequence[str]) -> Mapping[str, CachedResponse]:
        return cached_responses(keys)

    def mean_output_tokens(self, model: str) -> tuple[float, int] | None:
        provider, _, name = model.partition("/")
        stats = ResponseCache.objects.filter(provider=provider, model=name).aggregate(
            mean=Avg("tokens_out"), n=Count("id")
        )
        return (stats["mean"], stats["n"]) if stats["n"] else None

    def price(self, model: str) -> tuple[float, float]:
        provider, _, name = model.partition("/")
        return self.providers.price(provider, name)

    def cache_namespace(self, provider: str) -> str:
        return self.providers.cache_namespace(provider)


def estimate_spec(spec: ExperimentSpec) -> Estimate:
    # The rng of the planner's first round: a seeded random sweep proposes these very configs.
    proposal = proposed_configs(spec.sweep, round_rng(spec.sweep.seed, 0))
    return estimate_sweep(spec, proposal, DatabaseSources())

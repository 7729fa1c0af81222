"""Provider rows: created and changed with the model's validation (the key-variable rule
included), from the API and the admin alike. Keys never pass through here: a row names the
environment variable that holds its key."""

from __future__ import annotations

from typing import Any

from sweeps.models import Provider
from sweeps.services import ServiceError


class ProviderExists(ServiceError):
    pass


def provider_create(*, data: dict[str, Any]) -> Provider:
    """A new row; ValidationError names each bad field, ProviderExists a taken name."""
    if Provider.objects.filter(name=data.get("name")).exists():
        raise ProviderExists(
            f"A provider named {data.get('name')!r} exists; PATCH /providers/{data.get('name')} changes it."
        )
    return provider_save(Provider(**data))


def provider_update(*, provider: Provider, changes: dict[str, Any]) -> Provider:
    for field, value in changes.items():
        setattr(provider, field, value)
    return provider_save(provider)


def provider_save(provider: Provider) -> Provider:
    provider.full_clean()
    provider.save()
    return provider

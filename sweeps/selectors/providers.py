"""Reads of provider rows. Every signed-in user may see which providers exist and whether
sweeps can call them now."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from sweeps.models import Provider
from sweeps.providers.registry import ProviderSet


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.all()


def provider_get(*, name: str) -> Provider:
    return get_object_or_404(Provider, name=name)


def provider_set() -> ProviderSet:
    """Every row, ready to build adapters (only enabled rows can be called)."""
    return ProviderSet(Provider.objects.all())

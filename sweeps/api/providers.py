"""Providers: anyone may see which exist and whether they can be called now; only staff users
may add or change them. Keys never pass through here: a provider names the environment variable."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from sweeps.api.schemas import Message, ProviderIn, ProviderOut, ProviderPatch
from sweeps.models import Provider

router = Router(tags=["providers"])
ERRORS = {401: Message, 403: Message, 404: Message, 409: Message, 422: dict}


def provider_out(provider: Provider) -> dict:
    available, reason = provider.availability()
    fields = ProviderOut.model_fields.keys() - {"available", "unavailable_reason"}
    return {**{f: getattr(provider, f) for f in fields}, "available": available, "unavailable_reason": reason}


def require_staff(request: HttpRequest) -> None:
    if not request.auth.is_staff:
        raise HttpError(403, "Only staff users may add or change providers; ask an administrator.")


def save(provider: Provider) -> Provider:
    try:
        provider.full_clean()
    except ValidationError as e:
        detail = [{"loc": ["body", field], "msg": msg, "type": "invalid"} for field, msgs in e.message_dict.items() for msg in msgs]
        raise NinjaValidationError(detail) from e
    provider.save()
    return provider


@router.get("", response={200: list[ProviderOut], 401: Message})
def list_providers(request: HttpRequest):
    """Every provider, whether sweeps can call it now, and if not, what to do about it."""
    return [provider_out(p) for p in Provider.objects.all()]


@router.post("", response={201: ProviderOut, **ERRORS})
def create_provider(request: HttpRequest, body: ProviderIn):
    require_staff(request)
    if Provider.objects.filter(name=body.name).exists():
        raise HttpError(409, f"A provider named {body.name!r} exists; PATCH /providers/{body.name} changes it.")
    return Status(201, provider_out(save(Provider(**body.model_dump()))))


@router.patch("/{name}", response={200: ProviderOut, **ERRORS})
def update_provider(request: HttpRequest, name: str, body: ProviderPatch):
    require_staff(request)
    provider = get_object_or_404(Provider, name=name)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(provider, field, value)
    return provider_out(save(provider))

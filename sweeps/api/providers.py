"""Providers: anyone may see which exist and whether they can be called now; adding or changing
one takes what the admin takes: staff status and the model permission (add_provider,
change_provider). Keys never pass through here: a provider names the environment variable,
within the allowed names (sweeps/providers/keys.py, checked by the model's validation)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from sweeps.api.auth import ApiRequest
from sweeps.api.schemas import Message, ProviderIn, ProviderOut, ProviderPatch
from sweeps.models import Provider

router = Router(tags=["providers"])
ERRORS = {401: Message, 403: Message, 404: Message, 409: Message, 422: dict}


def provider_out(provider: Provider) -> dict:
    available, reason = provider.availability()
    fields = ProviderOut.model_fields.keys() - {"available", "unavailable_reason"}
    return {**{f: getattr(provider, f) for f in fields}, "available": available, "unavailable_reason": reason}


def require_permission(request: ApiRequest, action: str) -> None:
    user = request.auth
    if not (user.is_active and user.is_staff and user.has_perm(f"sweeps.{action}_provider")):
        raise HttpError(403, f"To {action} providers you need staff status and the {action}_provider "
                             "permission, as in the admin; ask an administrator.")  # fmt: skip


def save(provider: Provider) -> Provider:
    try:
        provider.full_clean()
    except ValidationError as e:
        detail = [{"loc": ["body", field], "msg": msg, "type": "invalid"} for field, msgs in e.message_dict.items() for msg in msgs]
        raise NinjaValidationError(detail) from e
    provider.save()
    return provider


@router.get("", response={200: list[ProviderOut], 401: Message})
def list_providers(request: ApiRequest):
    """Every provider, whether sweeps can call it now, and if not, what to do about it."""
    return [provider_out(p) for p in Provider.objects.all()]


@router.post("", response={201: ProviderOut, **ERRORS})
def create_provider(request: ApiRequest, body: ProviderIn):
    require_permission(request, "add")
    if Provider.objects.filter(name=body.name).exists():
        raise HttpError(409, f"A provider named {body.name!r} exists; PATCH /providers/{body.name} changes it.")
    return Status(201, provider_out(save(Provider(**body.model_dump()))))


@router.patch("/{name}", response={200: ProviderOut, **ERRORS})
def update_provider(request: ApiRequest, name: str, body: ProviderPatch):
    require_permission(request, "change")
    provider = get_object_or_404(Provider, name=name)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(provider, field, value)
    return provider_out(save(provider))

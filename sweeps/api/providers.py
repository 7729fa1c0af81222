"""Providers: anyone may see which exist and whether they can be called now; adding or changing
one takes what the admin takes: staff status and the model permission (add_provider,
change_provider). Keys never pass through here: a provider names the environment variable,
within the allowed names (sweeps/providers/keys.py, checked by the model's validation)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from ninja import Router, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from sweeps.api.auth import ApiRequest
from sweeps.api.schemas import Message, ProviderIn, ProviderOut, ProviderPatch
from sweeps.models import Provider
from sweeps.selectors.providers import provider_get, provider_list
from sweeps.services.providers import ProviderExists, provider_create, provider_update

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


def as_422(e: ValidationError) -> NinjaValidationError:
    """The model's field errors in the shape every other 422 of the API has."""
    detail = [
        {"loc": ["body", field], "msg": msg, "type": "invalid"}
        for field, msgs in e.message_dict.items()
        for msg in msgs
    ]
    return NinjaValidationError(detail)


@router.get("", response={200: list[ProviderOut], 401: Message})
def list_providers(request: ApiRequest):
    """Every provider, whether sweeps can call it now, and if not, what to do about it."""
    return [provider_out(p) for p in provider_list()]


@router.post("", response={201: ProviderOut, **ERRORS})
def create_provider(request: ApiRequest, body: ProviderIn):
    require_permission(request, "add")
    try:
        return Status(201, provider_out(provider_create(data=body.model_dump())))
    except ProviderExists as e:
        raise HttpError(409, str(e)) from e
    except ValidationError as e:
        raise as_422(e) from e


@router.patch("/{name}", response={200: ProviderOut, **ERRORS})
def update_provider(request: ApiRequest, name: str, body: ProviderPatch):
    require_permission(request, "change")
    try:
        return provider_out(
            provider_update(provider=provider_get(name=name), changes=body.model_dump(exclude_unset=True))
        )
    except ValidationError as e:
        raise as_422(e) from e

"""Read-only share links over the API: make and list an experiment's, revoke one. The same
services as the owner's page; the `url` is the whole link, to hand to whoever should read."""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from sweeps.api.auth import ApiRequest
from sweeps.api.schemas import Message
from sweeps.models import ShareLink
from sweeps.selectors.experiments import experiment_get
from sweeps.selectors.shares import share_get, share_list, share_path
from sweeps.services import ServiceError
from sweeps.services.shares import LABEL_MAX_LENGTH, share_create, share_revoke

experiment_router = Router(tags=["shares"])
router = Router(tags=["shares"])
ERRORS = {401: Message, 404: Message}


class ShareIn(Schema):
    sweep_id: int | None = Field(None, description="share this sweep alone; omit for every sweep, later ones too")
    label: str = Field("", max_length=LABEL_MAX_LENGTH, description="whom it is for, to tell links apart")


class ShareOut(Schema):
    id: int
    experiment_id: int
    sweep_id: int | None
    label: str
    url: str = Field(description="the read-only link: anyone holding it can read what it covers")
    created_at: datetime
    revoked_at: datetime | None


def share_out(request: ApiRequest, link: ShareLink) -> dict:
    return {
        "id": link.pk,
        "experiment_id": link.experiment_id,
        "sweep_id": link.sweep_id,
        "label": link.label,
        "url": request.build_absolute_uri(share_path(link)),
        "created_at": link.created_at,
        "revoked_at": link.revoked_at,
    }


@experiment_router.post("/{int:experiment_id}/shares", response={201: ShareOut, 422: Message, **ERRORS})
def create_share(request: ApiRequest, experiment_id: int, body: ShareIn):
    """A new read-only link to the experiment (every sweep) or to one of its sweeps."""
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    try:
        link = share_create(user=request.auth, experiment=experiment, sweep_id=body.sweep_id, label=body.label)
    except ServiceError as e:
        raise HttpError(422, str(e)) from e
    return Status(201, share_out(request, link))


@experiment_router.get("/{int:experiment_id}/shares", response={200: list[ShareOut], **ERRORS})
def list_shares(request: ApiRequest, experiment_id: int):
    """The experiment's share links, newest first, revoked ones included."""
    experiment = experiment_get(user=request.auth, experiment_id=experiment_id)
    return [share_out(request, link) for link in share_list(user=request.auth, experiment_id=experiment.pk)]


@router.delete("/{int:share_id}", response={200: ShareOut, 409: Message, **ERRORS})
def revoke_share(request: ApiRequest, share_id: int):
    """Revoke a link: from now on its URL answers 404. 409 when it was already revoked."""
    link = share_revoke(link=share_get(user=request.auth, share_id=share_id))
    return share_out(request, link)

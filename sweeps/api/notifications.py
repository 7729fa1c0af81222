"""Notifications of the signed-in user: list, create (the webhook's signing secret is in the
creation's answer only), pause or resume, delete, and send a test delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.core.exceptions import ValidationError
from ninja import Field, Router, Schema, Status
from pydantic import ConfigDict, StrictBool

from sweeps.api.auth import ApiRequest
from sweeps.api.providers import as_422
from sweeps.api.schemas import Message
from sweeps.models import Notification
from sweeps.selectors.notifications import notification_get, notification_list
from sweeps.services.notifications import (
    PAUSED_TEST_NOTE,
    URL_MAX_LENGTH,
    TooSoon,
    notification_create,
    notification_delete,
    notification_send_test,
    notification_set_active,
)

router = Router(tags=["notifications"])

Event = Literal["completed", "failed", "budget", "provider"]


def every_event() -> list[Event]:
    return ["completed", "failed", "budget", "provider"]


class NotificationIn(Schema):
    webhook_url: str = Field("", max_length=URL_MAX_LENGTH)
    email: str = Field("", max_length=254)
    events: list[Event] = Field(default_factory=every_event, description="default: all four", max_length=4)
    experiment_id: int | None = Field(None, ge=1, le=2**63 - 1, description="none: every experiment of yours")


class NotificationPatch(Schema):
    """Only `active` may change: a new URL or e-mail is a new notification (with a new secret)."""

    model_config = ConfigDict(extra="forbid")

    active: StrictBool = Field(description="false pauses it (nothing is sent when sweeps end), true resumes it")


class NotificationOut(Schema):
    id: int
    webhook_url: str
    email: str
    events: list[str]
    experiment_id: int | None
    active: bool
    created_at: datetime
    last_event: str = Field(
        description="the latest delivery's event (`sweep.completed`, `test`, ...); empty before any"
    )
    last_sent_at: datetime | None
    last_ok: bool | None = Field(description="whether the latest delivery reached every target; null before any")
    last_result: str = Field(description='what it gave, e.g. "webhook: HTTP 200; e-mail sent"')


class NotificationCreated(NotificationOut):
    secret: str | None = Field(description="signs the webhook's body; shown here only, never again")


def out(notification: Notification) -> dict:
    return {f: getattr(notification, f) for f in NotificationOut.model_fields}


@router.get("", response={200: list[NotificationOut], 401: Message})
def list_notifications(request: ApiRequest):
    return [out(n) for n in notification_list(user=request.auth)]


@router.post("", response={201: NotificationCreated, 401: Message, 422: dict})
def create_notification(request: ApiRequest, body: NotificationIn):
    """A webhook URL whose host is an internal address (unless PROMPTLOOPER_WEBHOOK_ALLOW lists
    it) is refused with a 422 naming `webhook_url`."""
    try:
        notification, secret = notification_create(owner=request.auth, data=body.model_dump())
    except ValidationError as e:
        raise as_422(e) from e
    return Status(201, {**out(notification), "secret": secret})


@router.delete("/{int:notification_id}", response={204: None, 401: Message, 404: Message})
def delete_notification(request: ApiRequest, notification_id: int):
    notification_delete(notification=notification_get(user=request.auth, notification_id=notification_id))
    return Status(204, None)


@router.patch("/{int:notification_id}", response={200: NotificationOut, 401: Message, 404: Message, 422: dict})
def update_notification(request: ApiRequest, notification_id: int, body: NotificationPatch):
    """Pause (`{"active": false}`) or resume (`{"active": true}`) a notification; its URL, e-mail,
    events and signing secret are kept. Any other field is a 422 naming it."""
    notification = notification_get(user=request.auth, notification_id=notification_id)
    return out(notification_set_active(notification=notification, active=body.active))


@router.post("/{int:notification_id}/test", response={202: Message, 401: Message, 404: Message, 429: Message})
def test_notification(request: ApiRequest, notification_id: int):
    """Sent even while the notification is paused (the answer says so); 429 within
    TEST_INTERVAL_S of the last test."""
    notification = notification_get(user=request.auth, notification_id=notification_id)
    try:
        notification_send_test(notification=notification)
    except TooSoon as e:
        return Status(429, {"detail": str(e)})
    paused = "" if notification.active else " " + PAUSED_TEST_NOTE
    return Status(
        202, {"detail": f"A test delivery is on its way; this notification's last_result says how it went.{paused}"}
    )

"""Reads of notifications, always scoped to the user asking (another's id is a 404)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from sweeps.models import Notification


def notification_list(*, user: Any) -> QuerySet[Notification]:
    return Notification.objects.filter(owner=user).select_related("experiment")


def notification_get(*, user: Any, notification_id: int) -> Notification:
    return get_object_or_404(Notification, pk=notification_id, owner=user)

"""The user's notifications page: list, add (a webhook's secret is shown in the answer to the
POST that made it, and nowhere else), pause or resume, delete, send a test."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from sweeps.models import Notification
from sweeps.selectors.experiments import experiment_list
from sweeps.selectors.notifications import notification_get, notification_list
from sweeps.services.notifications import (
    PAUSED_TEST_NOTE,
    TooSoon,
    notification_create,
    notification_delete,
    notification_send_test,
    notification_set_active,
)


def form_data(request: HttpRequest) -> dict:
    return {
        "webhook_url": request.POST.get("webhook_url", ""),
        "email": request.POST.get("email", ""),
        "events": request.POST.getlist("events"),
        "experiment_id": request.POST.get("experiment_id", "").strip() or None,
    }


@login_required
@require_http_methods(["GET", "POST"])
def notifications_page(request: HttpRequest) -> HttpResponse:
    created, secret, errors = None, None, {}
    chosen = request.GET.get("experiment", "")
    data: dict = {"events": list(Notification.EVENTS)}
    if request.method == "POST":
        data = form_data(request)
        try:
            created, secret = notification_create(owner=request.user, data=data)
        except ValidationError as e:
            errors = {field: " ".join(msgs) for field, msgs in e.message_dict.items()}
        else:
            messages.success(request, "Notification added: you will hear when a sweep ends.")
            data = {"events": list(Notification.EVENTS)}
        chosen = str(data.get("experiment_id") or "")
    context = {
        "notifications": notification_list(user=request.user),
        "experiments": experiment_list(user=request.user).only("pk", "name").order_by("name"),
        "events": Notification.EVENTS,
        "created": created,
        "secret": secret,
        "errors": errors,
        "data": data,
        "chosen": chosen,
    }
    return render(request, "sweeps/notifications.html", context, status=422 if errors else 200)


@login_required
@require_POST
def notification_delete_view(request: HttpRequest, notification_id: int) -> HttpResponse:
    notification_delete(notification=notification_get(user=request.user, notification_id=notification_id))
    messages.success(request, "Notification deleted.")
    return redirect("notifications")


@login_required
@require_POST
def notification_active_view(request: HttpRequest, notification_id: int) -> HttpResponse:
    """The form says which state it wants ("true" or "false"), not "flip", so that a form sent
    twice (or from a stale page) leaves the notification as its button said."""
    notification = notification_get(user=request.user, notification_id=notification_id)
    wanted = {"true": True, "false": False}.get(request.POST.get("active", ""))
    if wanted is None:
        return HttpResponseBadRequest('"active" must be "true" or "false".')
    notification_set_active(notification=notification, active=wanted)
    if wanted:
        messages.success(request, "Notification resumed: it will hear when a sweep ends.")
    else:
        messages.success(request, "Notification paused: sweeps will not tell it until you resume it.")
    return redirect("notifications")


def paused_note(notification: Notification) -> str:
    return "" if notification.active else " " + PAUSED_TEST_NOTE


@login_required
@require_POST
def notification_test_view(request: HttpRequest, notification_id: int) -> HttpResponse:
    notification = notification_get(user=request.user, notification_id=notification_id)
    try:
        notification_send_test(notification=notification)
    except TooSoon as e:
        messages.error(request, str(e))
    else:
        messages.success(
            request, f"A test is on its way; reload to see how it went (Last delivery).{paused_note(notification)}"
        )
    return redirect("notifications")

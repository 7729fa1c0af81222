"""The user's notifications page: list, add (a webhook's secret is shown in the answer to the
POST that made it, and nowhere else), delete, send a test."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from sweeps.models import Notification
from sweeps.selectors.experiments import experiment_list
from sweeps.selectors.notifications import notification_get, notification_list
from sweeps.services.notifications import notification_create, notification_delete, notification_send_test


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
def notification_test_view(request: HttpRequest, notification_id: int) -> HttpResponse:
    notification_send_test(notification=notification_get(user=request.user, notification_id=notification_id))
    messages.success(request, "A test is on its way; the worker's log tells how it went.")
    return redirect("notifications")

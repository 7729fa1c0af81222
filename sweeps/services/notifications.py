"""Notifications: telling a user that a sweep completed, failed or paused (for its budget or its
provider), by a signed webhook and/or an e-mail. The page and the API create, pause, resume and
delete them here (the admin only lists and deletes); sweep transitions call notify_on_commit; the
worker (RQ job or thread) calls notifications_deliver.

A webhook's signing secret is HMAC(SECRET_KEY, salt): shown once, when the notification is made,
and never stored, so the database alone cannot sign. Rotating SECRET_KEY changes every secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import EmailValidator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from sweeps.engine.webhooks import AllowList, Delivery, WebhookRefused, check_url, deliver
from sweeps.models import Experiment, Notification, Sweep
from sweeps.runner.notify import enqueue_notifications
from sweeps.services import ServiceError

log = logging.getLogger(__name__)

EVENT_OF_REASON = {
    "completed": "completed", "failed": "failed", "token_budget": "budget", "cost_budget": "budget",
    "provider_error": "provider", "rate_limited": "provider",
}  # fmt: skip
URL_MAX_LENGTH = 2000
EMAIL_MAX_LENGTH = 254
PER_USER = 20  # notifications a user may have: each may cost a worker its timeouts and retries
TEST_INTERVAL_S = 10  # between two tests of one notification
PAUSED_TEST_NOTE = "This notification is paused: a test is still sent, but sweeps tell it nothing until you resume it."


class TooSoon(ServiceError):
    """A test of the notification was sent a moment ago."""


def allow_list() -> AllowList:
    return AllowList.parse(settings.PROMPTLOOPER_WEBHOOK_ALLOW)


def notification_secret(notification: Notification) -> str:
    key = f"promptlooper.webhook:{settings.SECRET_KEY}".encode()
    return "whsec_" + hmac.new(key, notification.salt.encode(), hashlib.sha256).hexdigest()


def validate(*, owner: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The fields of a new notification, or ValidationError naming each field that is wrong."""
    errors: dict[str, str] = {}
    url = (data.get("webhook_url") or "").strip()
    email = (data.get("email") or "").strip()
    events = list(dict.fromkeys(Notification.EVENTS if data.get("events") is None else data["events"]))
    experiment = None
    if url:
        if len(url) > URL_MAX_LENGTH:
            errors["webhook_url"] = f"A webhook URL has at most {URL_MAX_LENGTH} characters."
        else:
            try:
                check_url(url, allow_list())
            except WebhookRefused as e:
                errors["webhook_url"] = f"This webhook URL is not allowed: {e}."
    if email:
        try:
            EmailValidator()(email)
        except ValidationError:
            errors["email"] = f"{email[:80]!r} is not an e-mail address."
        if len(email) > EMAIL_MAX_LENGTH:  # the validator allows 320, the column holds 254
            errors["email"] = f"An e-mail address has at most {EMAIL_MAX_LENGTH} characters."
    if not url and not email:
        errors["webhook_url"] = "Give a webhook URL, an e-mail address, or both."
    if not events:
        errors["events"] = f"Choose at least one event among {', '.join(Notification.EVENTS)}."
    elif unknown := [e for e in events if e not in Notification.EVENTS]:
        errors["events"] = f"Unknown events {unknown}: choose among {', '.join(Notification.EVENTS)}."
    if (chosen := data.get("experiment_id")) is not None:
        raw = str(chosen)
        experiment_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None
        experiment = Experiment.objects.filter(pk=experiment_id, owner=owner).first() if experiment_id else None
        if experiment is None:
            errors["experiment_id"] = f"You have no experiment {raw[:40]}."
    if errors:
        raise ValidationError(errors)
    return {"webhook_url": url, "email": email, "events": events, "experiment": experiment}


def notification_create(*, owner: Any, data: dict[str, Any]) -> tuple[Notification, str | None]:
    """Returns the notification and, when it has a webhook, its signing secret (to show once)."""
    fields = validate(owner=owner, data=data)
    if Notification.objects.filter(owner=owner).count() >= PER_USER:
        raise ValidationError(
            {"webhook_url": f"You have {PER_USER} notifications, the most one may have: delete one first."}
        )
    notification = Notification.objects.create(owner=owner, salt=secrets.token_hex(16), **fields)
    return notification, notification_secret(notification) if notification.webhook_url else None


def notification_delete(*, notification: Notification) -> None:
    notification.delete()


def notification_set_active(*, notification: Notification, active: bool) -> Notification:
    """Pauses (False) or resumes (True) a notification, keeping its URL, e-mail, events and salt,
    so its signing secret is the same when it resumes. A paused one is left out when a sweep ends
    (scoped() reads `active` when the sweep ends and again when the worker delivers)."""
    if notification.active != active:
        notification.active = active
        notification.save(update_fields=["active"])
    return notification


def notification_send_test(*, notification: Notification) -> None:
    """Sends a test delivery (event "test") through the same worker path as a real one, paused
    or not: a test is asked for by hand, e.g. to check the endpoint before resuming. One per
    TEST_INTERVAL_S at most: each may hold a worker for its timeouts and retries."""
    key = f"notification-test:{notification.pk}:{notification.created_at.timestamp()}"
    if not caches["throttle"].add(key, 1, timeout=TEST_INTERVAL_S):
        raise TooSoon(
            f"A test of this notification was sent less than {TEST_INTERVAL_S} s ago: wait before sending another."
        )
    enqueue_notifications(sweep_id=None, event="test", notification_id=notification.pk)


def notify_on_commit(sweep: Sweep, reason: str) -> None:
    """Called inside the transition's transaction: nothing is sent unless it commits."""
    if event := EVENT_OF_REASON.get(reason):
        # robust: a failure to enqueue is logged, never raised into the executor (which would fail the sweep)
        transaction.on_commit(lambda: enqueue_if_wanted(sweep.pk, sweep.experiment_id, event), robust=True)


def enqueue_if_wanted(sweep_id: int, experiment_id: int, event: str) -> None:
    # One query at the end of a sweep, so that users without notifications cost no job or thread.
    if count := sum(event in events for events in scoped(experiment_id).values_list("events", flat=True)):
        enqueue_notifications(sweep_id=sweep_id, event=event, count=count)


def scoped(experiment_id: int) -> QuerySet[Notification]:
    """The experiment owner's active notifications for it or for all their experiments. (events is
    a JSON list, which SQLite cannot search: the few rows of a user are filtered in Python.)"""
    return Notification.objects.filter(
        Q(experiment__isnull=True) | Q(experiment_id=experiment_id),
        owner__experiments__id=experiment_id,
        active=True,
    )


def notifications_for(sweep: Sweep, event: str) -> list[Notification]:
    return [n for n in scoped(sweep.experiment_id) if event in n.events]


def link(path: str) -> str:
    return settings.PROMPTLOOPER_SITE_URL + path


def sweep_payload(sweep: Sweep, event: str) -> dict[str, Any]:
    experiment = sweep.experiment
    return {
        "event": f"sweep.{event}",
        "sent_at": timezone.now().isoformat(),
        "experiment": {
            "id": experiment.pk,
            "name": experiment.name,
            "url": link(reverse("experiment_detail", args=[experiment.pk])),
        },
        "sweep": {
            "id": sweep.pk,
            "status": sweep.status,
            "stopped_reason": sweep.stopped_reason,
            "error": sweep.error,
            "total": sweep.total,
            "completed": sweep.completed,
            "failed": sweep.failed,
            "cancelled": sweep.cancelled,
            "progress": round(sweep.progress, 4),
            "tokens_in": sweep.tokens_in,
            "tokens_out": sweep.tokens_out,
            "cost_usd": sweep.cost_usd,
            "best_score": sweep.best_score,
            "started_at": sweep.started_at.isoformat() if sweep.started_at else None,
            "finished_at": sweep.finished_at.isoformat() if sweep.finished_at else None,
        },
    }


def test_payload(notification: Notification) -> dict[str, Any]:
    return {
        "event": "test",
        "sent_at": timezone.now().isoformat(),
        "notification_id": notification.pk,
        "message": "A test from PromptLooper: this endpoint will be told when sweeps end.",
    }


def email_text(payload: dict[str, Any]) -> tuple[str, str]:
    if payload["event"] == "test":
        return "PromptLooper: test notification", payload["message"] + "\n"
    sweep, experiment = payload["sweep"], payload["experiment"]
    what = {"sweep.completed": "completed", "sweep.failed": "failed", "sweep.budget": "paused by its budget",
            "sweep.provider": "paused by its provider"}  # fmt: skip
    subject = f"PromptLooper: sweep {sweep['id']} of “{experiment['name']}” {what[payload['event']]}"
    lines = [
        f"Samples: {sweep['completed']} completed, {sweep['failed']} failed of {sweep['total']}",
        f"Tokens: {sweep['tokens_in']} in, {sweep['tokens_out']} out; cost ${sweep['cost_usd']:.4f}",
        f"Best score: {sweep['best_score'] if sweep['best_score'] is not None else '–'}",
        *([f"Error: {sweep['error']}"] if sweep["error"] else []),
        "",
        experiment["url"],
    ]
    return subject, "\n".join(lines) + "\n"


def deliver_one(notification: Notification, payload: dict[str, Any]) -> None:
    """One notification's webhook and e-mail; failures are logged (without the secret), not raised,
    so one broken endpoint never keeps the others from hearing."""
    context = {"notification": notification.pk, "event": payload["event"]}
    results: list[tuple[bool, str]] = []
    if notification.webhook_url:
        outcome = deliver(
            notification.webhook_url,
            payload,
            secret=notification_secret(notification),
            event=payload["event"],
            allow=allow_list(),
            attempts=settings.PROMPTLOOPER_WEBHOOK_ATTEMPTS,
            timeout=settings.PROMPTLOOPER_WEBHOOK_TIMEOUT_SECONDS,
        )
        level = logging.INFO if outcome.delivered else logging.WARNING
        log.log(level, "webhook notification=%(notification)s event=%(event)s delivered=%(delivered)s "
                       "attempts=%(attempts)s status=%(status)s error=%(error)s",
                {**context, "delivered": outcome.delivered, "attempts": outcome.attempts,
                 "status": outcome.status, "error": outcome.error or "-"})  # fmt: skip
        results.append((outcome.delivered, webhook_result(outcome)))
    if notification.email:
        subject, body = email_text(payload)
        try:
            send_mail(subject, body, None, [notification.email])
        except Exception as e:  # an SMTP server down must not fail the job that delivers the others
            log.warning("email notification=%s event=%s failed: %s", notification.pk, payload["event"], e)
            results.append((False, f"e-mail failed: {type(e).__name__}: {e}"))
        else:
            log.info("email notification=%s event=%s sent", notification.pk, payload["event"])
            results.append((True, "e-mail sent"))
    Notification.objects.filter(pk=notification.pk).update(
        last_event=payload["event"][:32], last_sent_at=timezone.now(), last_ok=all(ok for ok, _ in results),
        last_result="; ".join(text for _, text in results)[:500],
    )  # fmt: skip


def webhook_result(outcome: Delivery) -> str:
    """One line for the notification's owner: "webhook: HTTP 200", or what went wrong and how often."""
    tries = f" after {outcome.attempts} attempts" if outcome.attempts > 1 else ""
    if outcome.delivered:
        return f"webhook: HTTP {outcome.status}{tries}"
    return f"webhook failed{tries}: {outcome.error}"


def notifications_deliver(*, sweep_id: int | None, event: str, notification_id: int | None = None) -> int:
    """What the worker runs: every notification matching the sweep's event (or the one named, for
    a test). Returns how many were attempted."""
    if sweep_id is None:  # a test: the one notification named
        targets = list(Notification.objects.filter(pk=notification_id or 0))
        for notification in targets:
            deliver_one(notification, test_payload(notification))
        return len(targets)
    sweep = Sweep.objects.select_related("experiment").get(pk=sweep_id)
    targets = notifications_for(sweep, event)
    payload = sweep_payload(sweep, event)
    for notification in targets:
        deliver_one(notification, payload)
    return len(targets)

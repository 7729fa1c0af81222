"""Handing notifications to something that delivers them: an RQ job when workers are in use,
else a thread of this process. Either way the HTTP calls (with their timeouts and retries) never
hold up a sweep's worker or a web request."""

from __future__ import annotations

import logging
import threading
from typing import Any

import django_rq
from django.conf import settings
from django.db import close_old_connections, connections
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def deliver_notifications(sweep_id: int | None, event: str, notification_id: int | None = None) -> int:
    # Imported here: the services enqueue this job, so a module-level import would be a cycle.
    from sweeps.services.notifications import notifications_deliver

    close_old_connections()
    try:
        return notifications_deliver(sweep_id=sweep_id, event=event, notification_id=notification_id)
    finally:
        close_old_connections()


def deliver_in_thread(*args: Any) -> None:
    try:
        deliver_notifications(*args)
    finally:
        connections.close_all()  # this thread's own connection: left open, it would outlive the thread


def job_timeout(count: int) -> int:
    """Seconds for `count` notifications' every attempt (connect, send, wait for the status: each
    up to the timeout) and the waits between them, with room for an e-mail each. httpx's timeout
    bounds each read, not a whole call, so a receiver trickling its answer a byte at a time would
    hold the worker for ever: past this, RQ ends the job and the worker serves sweeps again."""
    attempts = settings.PROMPTLOOPER_WEBHOOK_ATTEMPTS
    one = attempts * 3 * settings.PROMPTLOOPER_WEBHOOK_TIMEOUT_SECONDS + 2**attempts + 10
    return int(count * one)


def enqueue_notifications(
    *, sweep_id: int | None, event: str, notification_id: int | None = None, count: int = 1
) -> None:
    """`count`: how many notifications the job delivers, which its time limit allows for."""
    args = (sweep_id, event, notification_id)
    if settings.EMBEDDED_WORKER:
        # Not a daemon: a process exiting right after a sweep still delivers what it owes.
        name = f"sweep-notify-{sweep_id or 'test'}-{event}"
        threading.Thread(target=deliver_in_thread, args=args, name=name).start()
        return
    try:
        queue = django_rq.get_queue("sweeps", commit_mode="auto")
        queue.enqueue(deliver_notifications, *args, job_timeout=job_timeout(count))
    except RedisError as e:
        log.error("could not enqueue notifications for sweep %s (%s): %s", sweep_id, event, e)

"""Handing a sweep to something that executes it: an RQ worker, or a thread in this process."""

from __future__ import annotations

import logging
import threading

import django_rq
from django.conf import settings
from redis.exceptions import RedisError
from rq import Worker

from sweeps.runner.jobs import run_sweep

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    pass


def dispatch_sweep(sweep, jobs: int | None = None) -> list[str]:
    """jobs: how many RQ jobs to enqueue; by default one per worker listening. Returns the
    ids of the jobs enqueued (none in embedded mode, where a thread runs the sweep)."""
    if settings.EMBEDDED_WORKER:
        threading.Thread(target=run_sweep, args=(sweep.pk,), name=f"sweep-{sweep.pk}", daemon=True).start()
        return []
    queue = django_rq.get_queue("sweeps", commit_mode="auto")
    try:
        # One job per worker listening: they all claim samples of this sweep, so a sweep started
        # with N workers available is served by all of them.
        n = jobs or max(1, Worker.count(queue=queue))
        job_ids = [queue.enqueue(run_sweep, sweep.pk).id for _ in range(n)]
    except RedisError as e:
        log.error("could not enqueue sweep %s: %s", sweep.pk, e)
        raise QueueUnavailable("the job queue at REDIS_URL is unreachable; the sweep stays queued") from e
    return job_ids

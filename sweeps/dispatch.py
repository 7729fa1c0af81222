"""Handing a sweep to something that executes it: an RQ worker, or a thread in this process."""

from __future__ import annotations

import logging
import threading

from django.conf import settings

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    pass


def dispatch_sweep(sweep) -> None:
    from sweeps import jobs

    if settings.EMBEDDED_WORKER:
        threading.Thread(target=jobs.run_sweep, args=(sweep.pk,), name=f"sweep-{sweep.pk}", daemon=True).start()
        return
    import django_rq
    from redis.exceptions import RedisError

    try:
        job = django_rq.get_queue("sweeps", commit_mode="auto").enqueue(jobs.run_sweep, sweep.pk)
    except RedisError as e:
        log.error("could not enqueue sweep %s: %s", sweep.pk, e)
        raise QueueUnavailable("the job queue at REDIS_URL is unreachable; the sweep stays queued") from e
    type(sweep).objects.filter(pk=sweep.pk).update(job_id=job.id)

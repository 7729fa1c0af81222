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

    from rq import Worker

    queue = django_rq.get_queue("sweeps", commit_mode="auto")
    try:
        # One job per worker listening: they all claim samples of this sweep, so a sweep started
        # with N workers available is served by all of them.
        n = max(1, Worker.count(queue=queue))
        job_ids = [queue.enqueue(jobs.run_sweep, sweep.pk).id for _ in range(n)]
    except RedisError as e:
        log.error("could not enqueue sweep %s: %s", sweep.pk, e)
        raise QueueUnavailable("the job queue at REDIS_URL is unreachable; the sweep stays queued") from e
    type(sweep).objects.filter(pk=sweep.pk).update(job_id=",".join(job_ids))

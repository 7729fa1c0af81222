"""Taking over what dead workers left (issue 12, item 4). Every RQ worker runs `recover` at
start and every CHECK_S while it waits for jobs, so within about a lease of a crash:

- a running sweep that nobody executes any more (no executor renewed its heartbeat for a lease,
  and RQ shows none of its jobs queued or held by a worker with a fresh heartbeat) gets its
  expired leases taken back and is enqueued again, for the live workers to continue;
- a stopped sweep whose dead worker left samples `running` gets them cancelled and its runs
  closed (a paused one gets them back to pending);
- a queued sweep whose jobs are gone from Redis (a restart without persistence, or Redis down
  when it was started) is enqueued again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connections
from django.db.models import Q
from django.utils import timezone
from redis import Redis
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from sweeps.models import RunSample, Sweep
from sweeps.runner.dispatch import QueueUnavailable, dispatch_sweep
from sweeps.runner.execution import reclaim_expired
from sweeps.services.sweeps import lease_expired, sweep_close_abandoned

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=settings.PROMPTLOOPER_LEASE_SECONDS)
CHECK_S = LEASE.total_seconds() / 4  # how often an idle worker looks for orphans


def recover(redis: Redis) -> None:
    close_old_connections()
    try:
        take_over_orphans(redis)
    except Exception:  # the database or Redis blinked: the worker lives on, the next check retries
        log.exception("recovery check failed")
    finally:
        connections.close_all()  # before the next fork


def take_over_orphans(redis: Redis) -> None:
    for sweep_id in orphaned_sweeps(redis):
        if sweep := take_over(sweep_id):
            log.warning("sweep %s had no live worker: enqueued again for the live ones", sweep_id)
            try:
                dispatch_sweep(sweep)
            except QueueUnavailable:
                pass  # logged by dispatch; the next check, a lease later, tries again
    abandoned = Sweep.objects.filter(pk__in=abandoned_samples().values("sweep_id"))
    for sweep in abandoned.filter(status=Sweep.Status.STOPPED):
        sweep_close_abandoned(sweep=sweep)
        log.warning("sweep %s was stopped while its worker was dead: its samples are closed", sweep.pk)
    for sweep in abandoned.filter(status=Sweep.Status.PAUSED):
        reclaim_expired(sweep.pk)  # pending again: a resume continues them at once
    for sweep in Sweep.objects.filter(status=Sweep.Status.QUEUED, updated_at__lt=timezone.now() - LEASE):
        if not any(Job.exists(job_id, connection=redis) for job_id in job_ids(sweep)):
            log.warning("sweep %s was queued but its jobs are gone: enqueued again", sweep.pk)
            dispatch_sweep(sweep)


def job_ids(sweep: Sweep) -> list[str]:
    return [j for j in sweep.job_id.split(",") if j]


def stale() -> Q:
    cutoff = timezone.now() - LEASE
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff)


def abandoned_samples():
    return RunSample.objects.filter(lease_expired(), status=RunSample.Status.RUNNING)


def orphaned_sweeps(redis: Redis) -> list[int]:
    return [
        sweep.pk
        for sweep in Sweep.objects.filter(stale(), status=Sweep.Status.RUNNING)
        if not any(job_alive(job_id, redis) for job_id in job_ids(sweep))
    ]


def job_alive(job_id: str, redis: Redis) -> bool:
    """The job waits for a worker, or a worker whose RQ heartbeat is fresh executes it."""
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
        return True
    if status != JobStatus.STARTED or not job.worker_name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + job.worker_name, connection=redis)
    return bool(worker and worker.last_heartbeat and timezone.now() - worker.last_heartbeat < LEASE)


def take_over(sweep_id: int) -> Sweep | None:
    """One worker wins (a conditional update): the sweep's heartbeat is renewed, which gives the
    jobs about to be enqueued a lease to start, and its expired leases go back to pending."""
    if not Sweep.objects.filter(stale(), pk=sweep_id, status=Sweep.Status.RUNNING).update(heartbeat_at=timezone.now()):
        return None
    reclaim_expired(sweep_id)
    return Sweep.objects.get(pk=sweep_id)

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

from django.db import close_old_connections, connections
from django.utils import timezone
from redis import Redis
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from sweeps.models import Sweep
from sweeps.runner.dispatch import QueueUnavailable
from sweeps.selectors.sweeps import sweeps_queued_for_a_lease, sweeps_running_stale, sweeps_with_abandoned_samples
from sweeps.services.leases import LEASE, reclaim_expired
from sweeps.services.sweeps import sweep_close_abandoned, sweep_dispatch, sweep_take_over

log = logging.getLogger(__name__)

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
        if sweep := sweep_take_over(sweep_id):
            log.warning("sweep %s had no live worker: enqueued again for the live ones", sweep_id)
            try:
                sweep_dispatch(sweep)
            except QueueUnavailable:
                pass  # logged by dispatch; the next check, a lease later, tries again
    for sweep in sweeps_with_abandoned_samples(Sweep.Status.STOPPED):
        sweep_close_abandoned(sweep=sweep)
        log.warning("sweep %s was stopped while its worker was dead: its samples are closed", sweep.pk)
    for sweep in sweeps_with_abandoned_samples(Sweep.Status.PAUSED):
        reclaim_expired(sweep.pk)  # pending again: a resume continues them at once
    for sweep in sweeps_queued_for_a_lease():
        if not any(Job.exists(job_id, connection=redis) for job_id in job_ids(sweep)):
            log.warning("sweep %s was queued but its jobs are gone: enqueued again", sweep.pk)
            sweep_dispatch(sweep)


def job_ids(sweep: Sweep) -> list[str]:
    return [j for j in sweep.job_id.split(",") if j]


def orphaned_sweeps(redis: Redis) -> list[int]:
    return [
        sweep.pk for sweep in sweeps_running_stale() if not any(job_alive(job_id, redis) for job_id in job_ids(sweep))
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

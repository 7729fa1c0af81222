"""The RQ worker class for `python manage.py rqworker sweeps`."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone
from redis import Redis
from rq import Worker
from rq.job import Job

from sweeps.dispatch import dispatch_sweep
from sweeps.models import Sweep
from sweeps.services import sweeps_recover_interrupted

log = logging.getLogger(__name__)


class SweepWorker(Worker):
    def execute_job(self, job, queue):
        # A connection the parent opened (in a maintenance pass, a callback) must never be
        # shared with the forked child, or both corrupt its protocol state ("SSL error:
        # decryption failed", "consuming input failed").
        connections.close_all()
        return super().execute_job(job, queue)

    def bootstrap(self, *args, **kwargs):
        super().bootstrap(*args, **kwargs)
        reconcile(self.connection)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        reconcile(self.connection)


def reconcile(redis: Redis) -> None:
    """Running sweeps whose every worker died (their heartbeat is older than a lease) become
    paused, reason `interrupted`, instead of staying `running` forever; resume continues them.
    Queued sweeps whose jobs vanished from Redis (a restart without persistence) are enqueued
    again."""
    close_old_connections()
    try:
        lease = timedelta(seconds=settings.PROMPTLOOPER_LEASE_SECONDS)
        for sweep in sweeps_recover_interrupted(stale_after=lease, queued=False):
            log.warning("sweep %s had no live worker: paused as interrupted", sweep.pk)
        for sweep in Sweep.objects.filter(status=Sweep.Status.QUEUED, updated_at__lt=timezone.now() - lease):
            job_ids = [j for j in sweep.job_id.split(",") if j]
            if not any(Job.exists(job_id, connection=redis) for job_id in job_ids):
                log.warning("sweep %s was queued but its jobs are gone: enqueued again", sweep.pk)
                dispatch_sweep(sweep)
    finally:
        connections.close_all()  # before the next fork


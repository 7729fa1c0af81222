"""The RQ worker class for `python manage.py rqworker sweeps`."""

from __future__ import annotations

import time

from django.db import connections
from rq import Worker

from sweeps.runner.recovery import CHECK_S, recover


class SweepWorker(Worker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # RQ's heartbeat while a job runs comes this often: recovery tells live workers from dead
        # ones by it, within a lease.
        self.job_monitoring_interval = min(self.job_monitoring_interval, max(1, int(CHECK_S)))
        self._next_recovery = 0.0

    def execute_job(self, job, queue):
        # A connection the parent opened (in a maintenance pass, a callback) must never be
        # shared with the forked child, or both corrupt its protocol state ("SSL error:
        # decryption failed", "consuming input failed").
        connections.close_all()
        return super().execute_job(job, queue)

    # An idle worker wakes every CHECK_S (not RQ's 405 s) to take over what dead workers left:
    # see sweeps.runner.recovery. RQ's own maintenance keeps its 10-minute interval.

    @property
    def dequeue_timeout(self) -> int:
        return max(1, min(super().dequeue_timeout, int(CHECK_S)))

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return super().should_run_maintenance_tasks or time.monotonic() >= self._next_recovery

    def run_maintenance_tasks(self) -> None:
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
        self._next_recovery = time.monotonic() + CHECK_S
        recover(self.connection)

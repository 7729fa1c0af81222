"""The RQ worker class for `python manage.py rqworker sweeps`."""

from __future__ import annotations

from django.db import connections
from rq import Worker


class SweepWorker(Worker):
    """Closes database connections before each job's fork: a connection the parent opened
    (in a maintenance pass, a callback) must never be shared with the child, or both corrupt
    its protocol state ("SSL error: decryption failed", "consuming input failed")."""

    def execute_job(self, job, queue):
        connections.close_all()
        return super().execute_job(job, queue)

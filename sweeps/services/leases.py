"""Samples under lease: a worker claims pending samples for itself, renews the lease while its
calls are in flight, and gives back what it did not start. A lease nobody renews expires, and
its samples are claimed again, so a dead worker's samples are taken over.

These run on the executor's database thread, in batches (sweeps.runner.execution).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from sweeps.models import Run, RunSample, Sweep

# A claimed sample whose worker is silent this long is claimed again; workers renew their
# leases every HEARTBEAT_S (sweeps.runner.execution), so this is several heartbeats long.
LEASE = timedelta(seconds=settings.PROMPTLOOPER_LEASE_SECONDS)
# What a sample given back looks like: no one holds it.
RELEASED = {"status": RunSample.Status.PENDING, "lease_owner": "", "lease_until": None}


def lease_expired() -> Q:
    """Samples (or sweeps) whose lease ran out, or that never had one."""
    return Q(lease_until__lt=timezone.now()) | Q(lease_until__isnull=True)


def stale() -> Q:
    """Sweeps whose executors have been silent for a lease."""
    cutoff = timezone.now() - LEASE
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff)


def claim_samples(sweep_id: int, owner: str, limit: int) -> list[tuple[int, int, int, int, Any]]:
    """Take up to `limit` pending samples for `owner`, atomically: several workers may claim
    from one sweep at once and no sample goes to two of them."""
    now = timezone.now()
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    table = RunSample._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} SET status = 'running', lease_owner = %s, lease_until = %s, attempts = attempts + 1
            WHERE id IN (SELECT id FROM {table} WHERE sweep_id = %s AND status = 'pending'
                         ORDER BY id LIMIT %s{skip_locked})
            RETURNING id, run_id, row_index, replicate, inputs""",
            [owner, now + LEASE, sweep_id, limit],
        )
        return sorted(cursor.fetchall())


def reclaim_expired(sweep_id: int) -> int:
    """Samples whose worker stopped renewing its lease (it died) become pending again."""
    return RunSample.objects.filter(
        sweep_id=sweep_id, status=RunSample.Status.RUNNING, lease_until__lt=timezone.now()
    ).update(**RELEASED)


def start_runs(run_ids: Sequence[int]) -> list[Run]:
    started = Run.objects.filter(id__in=run_ids, status=Run.Status.PENDING)
    ids = list(started.values_list("id", flat=True))
    started.update(status=Run.Status.RUNNING, started_at=timezone.now())
    return list(Run.objects.filter(id__in=ids))


def release_samples(sample_ids: Sequence[int], owner: str) -> None:
    RunSample.objects.filter(id__in=sample_ids, lease_owner=owner, status=RunSample.Status.RUNNING).update(
        **RELEASED, attempts=F("attempts") - 1
    )


def keep_alive(sweep_id: int, owner: str) -> None:
    now = timezone.now()
    RunSample.objects.filter(sweep_id=sweep_id, lease_owner=owner, status=RunSample.Status.RUNNING).update(
        lease_until=now + LEASE
    )
    Sweep.objects.filter(id=sweep_id).update(heartbeat_at=now)
    reclaim_expired(sweep_id)

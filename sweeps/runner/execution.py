"""Executing one sweep: the engine's executor wired to the database, the cache and the events.

All ORM work runs on one dedicated thread per execution (one connection, writes serialised,
which SQLite needs), and is batched: samples are claimed, cached responses read and written,
and results recorded many at a time, so the database cost per sample stays small.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence

from django.conf import settings

from sweeps.engine.batching import Batcher
from sweeps.engine.budget import BudgetLedger
from sweeps.engine.executor import CachedResponse, Executor, SampleOutcome, WorkItem
from sweeps.engine.limits import LocalRateLimiter, RateLimiter
from sweeps.engine.pipeline import ResolvedStage, resolve_pipeline
from sweeps.engine.scorers import build_scorer
from sweeps.engine.spec import ExperimentSpec, parse_spec
from sweeps.events import publishing
from sweeps.events.messages import run_event, sweep_event
from sweeps.models import Run, Sweep
from sweeps.providers.registry import ProviderSet
from sweeps.runner.budget import sweep_budget
from sweeps.runner.dbthread import DbThread
from sweeps.runner.ratelimit import RedisRateLimiter
from sweeps.selectors.cache import cache_lookup
from sweeps.selectors.providers import provider_set
from sweeps.selectors.runs import run_configs
from sweeps.selectors.sweeps import sweep_status, sweeps_with_owner, work_left
from sweeps.services.cache import cache_store
from sweeps.services.leases import LEASE, claim_samples, keep_alive, release_samples, start_runs
from sweeps.services.planning import Plan, plan_next_round
from sweeps.services.recording import record_outcomes
from sweeps.services.sweeps import (
    sweep_begin_execution,
    sweep_end_execution,
    sweep_fail,
    sweep_hand_over,
)

log = logging.getLogger(__name__)

CONTROL_POLL_S = 0.2  # pause and stop take effect within this, plus the calls in flight
HEARTBEAT_S = LEASE.total_seconds() / 6  # leases are renewed by a task of its own, whatever the calls in flight
OTHERS_POLL_S = 1.0  # how often a drained worker looks whether others' samples need taking over
PROGRESS_EVERY_S = 0.5  # progress events are coalesced to this rate per sweep
RECORD_EVERY_S = 0.1  # results are written in at most 10 transactions a second, leaving the
# write connection free for the cache writes that samples in flight wait on


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Db:
    """Two database threads: writes (claims, cache entries, results) go through one, so SQLite
    never sees two writers; reads (cache lookups, control) through the other, so a sample's
    cache lookup never queues behind a batch of result writes."""

    def __init__(self) -> None:
        self.write = DbThread("sweep-db-write")
        self.read = DbThread("sweep-db-read")

    async def close(self) -> None:
        await self.write.close()
        await self.read.close()


class DbResponseStore:
    def __init__(self, db: Db) -> None:
        self._reads: Batcher[str, CachedResponse | None] = Batcher(lambda keys: db.read(cache_lookup, keys))
        self._writes: Batcher[tuple, None] = Batcher(lambda entries: db.write.urgent(cache_store, entries))

    async def get(self, key: str) -> CachedResponse | None:
        return await self._reads.submit(key)

    async def put(self, key: str, provider: str, model: str, response: CachedResponse) -> None:
        await self._writes.submit((key, provider, model, response))


class DbWorkload:
    """Claims this sweep's samples, records their results and publishes what changed."""

    def __init__(self, db: Db, sweep: Sweep, spec: ExperimentSpec, owner: str) -> None:
        self.db, self.sweep_id, self.spec, self.owner = db, sweep.id, spec, owner
        self._stages: dict[int, tuple[ResolvedStage, ...]] = {}  # resolved once per run
        self._status = sweep.status
        self.ends_at: float | None = None  # monotonic time at which this job hands the sweep over
        self._status_read_at = 0.0
        self._results: Batcher[SampleOutcome, None] = Batcher(self._write, min_interval=RECORD_EVERY_S)
        self._writing: set[asyncio.Task[None]] = set()
        self._progress_at = 0.0

    async def claim(self, limit: int) -> list[WorkItem]:
        rows = await self.db.write.urgent(claim_samples, self.sweep_id, self.owner, limit)
        run_ids = {run_id for _, run_id, *_ in rows}
        if missing := run_ids - self._stages.keys():
            configs = await self.db.read(run_configs, missing)
            for run_id, config in configs.items():
                self._stages[run_id] = tuple(resolve_pipeline(self.spec.pipeline, config))
        if started := await self.db.write(start_runs, list(run_ids)):
            sweep = await self.db.read(sweeps_with_owner().get, id=self.sweep_id)
            await publishing.apublish([run_event("started", run, sweep) for run in started])
        return [
            WorkItem(
                sid, run_id, row, rep, inputs if isinstance(inputs, dict) else json.loads(inputs), self._stages[run_id]
            )
            for sid, run_id, row, rep, inputs in rows
        ]

    async def release(self, items: Sequence[WorkItem]) -> None:
        await self.db.write(release_samples, [i.sample_id for i in items], self.owner)

    async def control(self) -> str:
        now = time.monotonic()
        if now - self._status_read_at >= CONTROL_POLL_S:
            self._status_read_at = now
            self._status = await self.db.read(sweep_status, self.sweep_id)
        state = {"queued": "running", "running": "running", "paused": "paused"}.get(self._status, "stopped")
        if state == "running" and self.ends_at is not None and now >= self.ends_at:
            return "handover"  # this job's time slice is over: a fresh job continues the sweep
        return state

    async def record(self, outcome: SampleOutcome) -> None:
        # Not awaited by the executor's loop: dispatching goes on while the batch is written.
        task = asyncio.create_task(self._results.submit(outcome))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def flush(self) -> None:
        if self._writing:
            await asyncio.gather(*list(self._writing))
        await self.publish_progress(force=True)

    async def _write(self, outcomes: list[SampleOutcome]) -> list[None]:
        sweep, closed = await self.db.write(record_outcomes, self.sweep_id, outcomes, self.owner)
        kinds: dict[str, str] = {Run.Status.COMPLETED: "completed", Run.Status.FAILED: "failed"}
        await publishing.apublish([run_event(kinds.get(r.status, "completed"), r, sweep) for r in closed])
        await self.publish_progress(sweep=sweep)
        return [None] * len(outcomes)

    async def publish_progress(self, *, force: bool = False, sweep: Sweep | None = None) -> None:
        now = time.monotonic()
        if force or now - self._progress_at >= PROGRESS_EVERY_S:
            self._progress_at = now
            if sweep is None:
                sweep = await self.db.read(sweeps_with_owner().get, id=self.sweep_id)
            await publishing.apublish([sweep_event("progress", sweep)])


# --- leases: renewed by a task of their own (issue 12, item 2) ---


async def renew_leases(db: Db, sweep_id: int, owner: str) -> None:
    """Every HEARTBEAT_S, renew the lease of every sample this worker holds (in flight, waiting
    for a retry, or claimed ahead) and the sweep's heartbeat, and take back expired leases.
    A task of its own: calls longer than the lease, with every slot busy, keep their samples."""
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await db.write.urgent(keep_alive, sweep_id, owner)
        except Exception:  # the database blinked: the next beat tries again, well within the lease
            log.exception("sweep %s: could not renew the leases of %s", sweep_id, owner)


def rate_limiter(limits: dict[str, tuple[int | None, int | None]]) -> RateLimiter | None:
    """Shared by every worker through Redis when there is one; else by the sweeps of this process."""
    if not limits:
        return None
    burst = settings.PROMPTLOOPER_RATE_BURST_SECONDS
    if settings.REDIS_URL:
        return RedisRateLimiter(settings.REDIS_URL, limits, burst_seconds=burst)
    return local_rate_limiter(tuple(sorted(limits.items())), burst)


@functools.cache
def local_rate_limiter(limits: tuple, burst_seconds: float) -> LocalRateLimiter:
    return LocalRateLimiter(dict(limits), burst_seconds=burst_seconds)


async def execute_sweep(sweep_id: int, *, owner: str | None = None) -> str | None:
    """Run a sweep until it is done, paused, stopped or out of budget. Returns why it ended,
    or None when the sweep was not in a state to run (e.g. paused before its job started)."""
    owner = owner or worker_id()
    db = Db()
    providers: ProviderSet | None = None
    limiter: RateLimiter | None = None
    budget: BudgetLedger | None = None
    heartbeat: asyncio.Task[None] | None = None
    try:
        sweep, published = await db.write(sweep_begin_execution, sweep_id)
        if sweep is None:
            return None
        await publishing.apublish(published)
        spec = parse_spec(sweep.spec)
        providers = await db.write(provider_set)
        workload = DbWorkload(db, sweep, spec, owner)
        heartbeat = asyncio.create_task(renew_leases(db, sweep_id, owner))
        if not settings.EMBEDDED_WORKER:  # RQ jobs stay short: no job must live for hours
            workload.ends_at = time.monotonic() + settings.PROMPTLOOPER_JOB_SLICE_SECONDS
        executor = Executor(
            workload=workload,
            store=DbResponseStore(db),
            providers=providers,
            scorers=[build_scorer(s, f"scorers[{i}]") for i, s in enumerate(spec.scorers)],
            budget=(budget := sweep_budget(sweep, owner)),  # shared by every worker of the sweep
            max_concurrency=spec.max_concurrency,
            claim_ahead=spec.max_concurrency,
            provider_retry=providers.retry_policies(),
            limiter=(limiter := rate_limiter(providers.limits())),
            fail_fast=spec.fail_fast,
        )
        log.info("sweep %s executing as %s (concurrency %s)", sweep_id, owner, spec.max_concurrency)
        reason = "drained"
        while reason == "drained":
            plan = await db.write(plan_next_round, sweep_id, spec)
            if plan in (Plan.COMPLETE, Plan.STOPPED):
                break
            reason = await executor.run()
            if reason == "drained" and plan == Plan.IN_PROGRESS:  # noqa: SIM102 (the comment explains the inner test)
                # Nothing left to claim just now, yet the round is not over: other workers hold
                # its last samples. They finish them (then the next plan goes on), or their
                # worker died and the leases expire: then this one takes them over.
                if await db.read(work_left, sweep_id, owner) != "pending":
                    await asyncio.sleep(OTHERS_POLL_S)
        if reason == "handover":
            await db.write(sweep_hand_over, sweep_id)
            log.info(
                "sweep %s handed over to a fresh job after %s s", sweep_id, settings.PROMPTLOOPER_JOB_SLICE_SECONDS
            )
            return reason
        quota = executor.quota_error.message if executor.quota_error else ""
        published = await db.write(sweep_end_execution, sweep_id, reason, quota)
        await publishing.apublish(published)
        log.info("sweep %s ended: %s", sweep_id, reason)
        return reason
    except Exception as e:
        log.exception("sweep %s failed", sweep_id)
        await publishing.apublish(await db.write(sweep_fail, sweep_id, f"{type(e).__name__}: {e}"))
        return "failed"
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        if providers is not None:
            await providers.aclose()
        if isinstance(limiter, RedisRateLimiter):
            await limiter.aclose()
        if budget is not None:
            await budget.aclose()
        await db.close()

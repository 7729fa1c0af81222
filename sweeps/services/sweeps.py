"""A sweep's life. Views, the API, admin actions, the CLI and the runner call these.

Sweep states: queued -> running -> completed | paused | stopped | failed; paused -> queued
(resume); queued/running/paused -> stopped. Pause and stop are cooperative: the executor reads
the sweep's status before every dispatch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from sweeps.engine import formatting
from sweeps.engine.errors import SpecError
from sweeps.events.messages import sweep_event
from sweeps.events.publishing import publish_on_commit
from sweeps.models import Experiment, Run, RunSample, Sweep
from sweeps.runner.dispatch import QueueUnavailable, dispatch_sweep
from sweeps.selectors.sweeps import sweeps_with_owner
from sweeps.selectors.versions import version_latest_id
from sweeps.services import ServiceError
from sweeps.services.experiments import EDITABLE_WHILE_PAUSED, validate_spec
from sweeps.services.leases import RELEASED, lease_expired, reclaim_expired, stale
from sweeps.services.notifications import notify_on_commit
from sweeps.services.recording import close_finished_runs

S = Sweep.Status


ALLOWED = {  # action -> states it may start from
    "pause": (S.QUEUED, S.RUNNING),
    "resume": (S.PAUSED, S.FAILED),  # a failed sweep (worker crash, queue down) goes on where it was
    "stop": (S.QUEUED, S.RUNNING, S.PAUSED),
}


class TransitionError(ServiceError):
    def __init__(self, sweep: Sweep, action: str) -> None:
        allowed = [a for a, states in ALLOWED.items() if sweep.status in states]
        can = f"it can be {' or '.join(past(a) for a in allowed)}" if allowed else "it is finished"
        super().__init__(f"Cannot {action} sweep {sweep.pk}: it is {sweep.status}; {can}.")
        self.allowed = allowed


def past(action: str) -> str:
    return {"pause": "paused", "resume": "resumed", "stop": "stopped"}[action]


def set_status(sweep: Sweep, status: str, reason: str = "", **fields: Any) -> None:
    sweep.status, sweep.stopped_reason = status, reason
    for name, value in fields.items():
        setattr(sweep, name, value)
    sweep.save(update_fields=["status", "stopped_reason", "updated_at", *fields])
    Experiment.objects.filter(pk=sweep.experiment_id).update(status=status, updated_at=timezone.now())


def raised(old: float | None, new: float | None) -> bool:
    return new is None or (old is not None and new > old)


def locked(sweep: Sweep | int) -> Sweep:
    # Only the sweep's row is locked (of=self): the owner's id comes along for the events.
    # With its spec: starting an execution parses it, and a transition is one read, not a thousand.
    return sweeps_with_owner().defer(None).select_for_update(of=("self",)).get(pk=getattr(sweep, "pk", sweep))


@transaction.atomic
def sweep_start(*, experiment: Experiment, started_by: Any = None, via: str = "", token: Any = None) -> Sweep:
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if active := experiment.sweeps.filter(status__in=(*Sweep.ACTIVE, S.PAUSED)).first():
        raise ServiceError(
            f"Experiment {experiment.pk} already has a {active.status} sweep ({active.pk}): "
            "resume or stop it before starting another."
        )
    try:  # re-validated: the providers it names may have been disabled since
        spec = validate_spec(experiment.spec)
    except SpecError as e:
        raise ServiceError(f"Experiment {experiment.pk} is not a valid spec: {'; '.join(map(str, e.errors))}") from e
    sweep = Sweep.objects.create(
        experiment=experiment, spec=spec.to_dict(), max_tokens=spec.budget.max_tokens,
        max_cost_usd=spec.budget.max_cost_usd, started_by=started_by, started_via=via, started_token=token,
        spec_version_id=version_latest_id(experiment),
    )  # fmt: skip
    set_status(sweep, S.QUEUED)
    publish_on_commit([sweep_event("queued", sweep)])
    transaction.on_commit(lambda: dispatch_or_fail(sweep))
    return sweep


def sweep_dispatch(sweep: Sweep, jobs: int | None = None) -> None:
    """Hand the sweep to workers (QueueUnavailable when Redis is down) and remember the jobs
    given it, by which recovery tells whether a live worker still has it."""
    if job_ids := dispatch_sweep(sweep, jobs=jobs):
        Sweep.objects.filter(pk=sweep.pk).update(job_id=",".join(job_ids))


def sweep_take_over(sweep_id: int) -> Sweep | None:
    """An orphaned running sweep (no live worker): one worker wins it, by a conditional update
    that renews its heartbeat (the jobs about to be enqueued get a lease to start), and its
    expired leases go back to pending. None when another worker was faster."""
    if not Sweep.objects.filter(stale(), pk=sweep_id, status=S.RUNNING).update(heartbeat_at=timezone.now()):
        return None
    reclaim_expired(sweep_id)
    return Sweep.objects.get(pk=sweep_id)


def dispatch_or_fail(sweep: Sweep) -> None:
    """Hand the sweep to a worker; when the queue is unreachable the sweep stays queued, with
    that reason as its error (the first worker to see Redis again enqueues it: sweeps.runner.recovery),
    and the caller is told."""
    try:
        sweep_dispatch(sweep)
    except QueueUnavailable as e:
        Sweep.objects.filter(pk=sweep.pk, status=S.QUEUED).update(error=str(e))
        raise ServiceError(f"Sweep {sweep.pk} could not start: {e}.") from e


@transaction.atomic
def sweep_pause(*, sweep: Sweep) -> Sweep:
    sweep = locked(sweep)
    if sweep.status not in ALLOWED["pause"]:
        raise TransitionError(sweep, "pause")
    set_status(sweep, S.PAUSED, Sweep.Reason.PAUSED)
    publish_on_commit([sweep_event("paused", sweep)])
    return sweep


@transaction.atomic
def sweep_resume(*, sweep: Sweep) -> Sweep:
    sweep = locked(sweep)
    if sweep.status not in ALLOWED["resume"]:
        raise TransitionError(sweep, "resume")
    edited = sweep.experiment.spec
    budget = edited["budget"]
    # A sweep paused by its budget goes on only when that budget was raised.
    if sweep.stopped_reason == Sweep.Reason.TOKEN_BUDGET and not raised(sweep.max_tokens, budget["max_tokens"]):
        raise ServiceError(
            f"{budget_message(sweep, sweep.stopped_reason)}: raise the experiment's budget, then resume."
        )
    if sweep.stopped_reason == Sweep.Reason.COST_BUDGET and not raised(sweep.max_cost_usd, budget["max_cost_usd"]):
        raise ServiceError(
            f"{budget_message(sweep, sweep.stopped_reason)}: raise the experiment's budget, then resume."
        )
    # What may change while paused (budget, max_concurrency, fail_fast...) reaches the snapshot
    # the workers execute; the rest of the spec stays as the sweep started.
    spec = {**sweep.spec, **{key: edited[key] for key in EDITABLE_WHILE_PAUSED}}
    sweep.max_tokens, sweep.max_cost_usd = budget["max_tokens"], budget["max_cost_usd"]
    set_status(sweep, S.QUEUED, "", max_tokens=sweep.max_tokens, max_cost_usd=sweep.max_cost_usd, error="", spec=spec)
    publish_on_commit([sweep_event("resumed", sweep)])
    transaction.on_commit(lambda: dispatch_or_fail(sweep))
    return sweep


def budget_message(sweep: Sweep, reason: str) -> str:
    """Why a budget paused the sweep. Reservations count: every call reserves its estimate (its
    max_tokens or expected output, and its prompt) before it starts, so a sweep pauses once what
    was spent plus what the calls in flight and the next call reserve would pass the budget,
    which can be well before the spent figure itself reaches it."""
    why = "reservations count: each call reserves its prompt and max_tokens (or expected output) before it starts"
    if reason == Sweep.Reason.COST_BUDGET:
        return (f"Sweep {sweep.pk} paused by its cost budget: ${sweep.cost_usd:.4f} spent + what the calls in flight "
                f"and the next call reserve would pass max_cost_usd ${sweep.max_cost_usd:,.4f} ({why})")  # fmt: skip
    return (f"Sweep {sweep.pk} paused by its token budget: {formatting.count(sweep.tokens_in + sweep.tokens_out)} "
            f"spent + what the calls in flight and the next call reserve would pass max_tokens "
            f"{formatting.count(sweep.max_tokens)} ({why})")  # fmt: skip


def runs_back_to_pending(sweep_id: int) -> None:
    """A sweep that no one executes has no running run: runs none of whose samples is in flight
    go back to pending (they restart when the sweep does)."""
    in_flight = RunSample.objects.filter(run=OuterRef("pk"), status=RunSample.Status.RUNNING)
    Run.objects.filter(sweep_id=sweep_id, status=Run.Status.RUNNING).exclude(Exists(in_flight)).update(
        status=Run.Status.PENDING
    )


@transaction.atomic
def sweep_stop(*, sweep: Sweep) -> Sweep:
    sweep = locked(sweep)
    if sweep.status not in ALLOWED["stop"]:
        raise TransitionError(sweep, "stop")
    set_status(sweep, S.STOPPED, Sweep.Reason.STOPPED, finished_at=timezone.now())
    cancel_pending(sweep)
    publish_on_commit([sweep_event("stopped", sweep)])
    return sweep


def cancel_pending(sweep: Sweep) -> None:
    """Pending (and waiting) samples become cancelled; samples in flight finish and are recorded
    as usual, but those whose worker died (lease expired) are cancelled too, so that a stopped
    sweep closes every run and sample."""
    pending = RunSample.objects.filter(
        Q(status__in=(RunSample.Status.PENDING, RunSample.Status.WAITING))
        | Q(lease_expired(), status=RunSample.Status.RUNNING),
        sweep=sweep,
    )
    run_ids = set(pending.values_list("run_id", flat=True))
    n = pending.update(status=RunSample.Status.CANCELLED, finished_at=timezone.now())
    if n:
        Sweep.objects.filter(pk=sweep.pk).update(cancelled=F("cancelled") + n)
        sweep.refresh_from_db()
    close_finished_runs(run_ids)
    Run.objects.filter(sweep=sweep, status=Run.Status.PENDING).update(status=Run.Status.CANCELLED)


@transaction.atomic
def sweep_close_abandoned(*, sweep: Sweep) -> None:
    """A stopped sweep whose worker died with samples in flight: once their leases expired,
    they are cancelled and their runs closed (sweeps.runner.recovery calls this)."""
    sweep = locked(sweep)
    if sweep.status == S.STOPPED:
        cancel_pending(sweep)


@transaction.atomic
def sweep_begin_execution(sweep_id: int) -> tuple[Sweep | None, list[dict]]:
    sweep = locked(sweep_id)
    if sweep.status not in Sweep.ACTIVE:
        return None, []  # paused or stopped before this job got to run
    first = sweep.status == S.QUEUED and sweep.started_at is None
    set_status(sweep, S.RUNNING, "", started_at=sweep.started_at or timezone.now(), heartbeat_at=timezone.now())
    # "resumed" was said once, by sweep_resume; a job taking the sweep on (after a resume, a
    # hand-over, or as a second worker) only tells the page that it runs.
    return sweep, [sweep_event("started" if first else "progress", sweep)]


def sweep_hand_over(sweep_id: int) -> None:
    """A job ends its time slice with the sweep still running: another job takes it on."""
    sweep = Sweep.objects.get(pk=sweep_id)
    if sweep.status == S.RUNNING:
        sweep_dispatch(sweep, jobs=1)


@transaction.atomic
def sweep_end_execution(sweep_id: int, reason: str, error: str = "") -> list[dict]:
    sweep = locked(sweep_id)
    if reason in ("token_budget", "cost_budget", "provider_error", "rate_limited") and sweep.status == S.RUNNING:
        set_status(sweep, S.PAUSED, reason, error=error or budget_message(sweep, reason) + ".")
        runs_back_to_pending(sweep_id)
        notify_on_commit(sweep, reason)
        return [sweep_event("paused", sweep)]
    if sweep.status == S.PAUSED:
        runs_back_to_pending(sweep_id)  # paused meanwhile: this job's samples were released
    if sweep.status == S.STOPPED:
        cancel_pending(sweep)  # samples released by the executor as it stopped
        return [sweep_event("progress", sweep)]
    if reason == "drained" and sweep.status == S.RUNNING:
        unfinished = RunSample.objects.filter(sweep_id=sweep_id, status__in=RunSample.IN_ROUND)
        if unfinished.exists():
            return []  # another worker still holds samples; whoever finishes last completes it
        set_status(sweep, S.COMPLETED, Sweep.Reason.COMPLETED, finished_at=timezone.now())
        notify_on_commit(sweep, Sweep.Reason.COMPLETED)
        return [sweep_event("completed", sweep)]
    return []


@transaction.atomic
def sweep_fail(sweep_id: int, error: str) -> list[dict]:
    sweep = locked(sweep_id)
    if sweep.status in (S.COMPLETED, S.STOPPED, S.FAILED):
        return []  # finished meanwhile (by another worker, or failed by one): said once, notified once
    set_status(sweep, S.FAILED, Sweep.Reason.FAILED, error=error[:2000], finished_at=timezone.now())
    RunSample.objects.filter(sweep=sweep, status=RunSample.Status.RUNNING).update(**RELEASED)
    runs_back_to_pending(sweep.pk)
    notify_on_commit(sweep, Sweep.Reason.FAILED)
    return [sweep_event("failed", sweep)]


@transaction.atomic
def sweeps_recover_interrupted(*, stale_after: timedelta = timedelta(seconds=60), queued: bool = True) -> list[Sweep]:
    """Sweeps whose executors all died (no heartbeat) become paused with reason `interrupted`,
    and the samples they held go back to pending, so resume continues exactly where it was.
    `queued`: also sweeps never started (right in embedded mode, where nothing outlives the
    process; with RQ a queued sweep may just be waiting for a free worker)."""
    cutoff = timezone.now() - stale_after
    dead = Sweep.objects.select_for_update().filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff),
        status__in=Sweep.ACTIVE if queued else [S.RUNNING],
    )
    recovered = []
    for sweep in dead:
        RunSample.objects.filter(sweep=sweep, status=RunSample.Status.RUNNING).update(**RELEASED)
        set_status(sweep, S.PAUSED, Sweep.Reason.INTERRUPTED)
        runs_back_to_pending(sweep.pk)
        recovered.append(sweep)
    return recovered


def sweep_transition(*, sweep: Sweep, action: str) -> Sweep:
    """Pause, resume or stop, by name: views, the API and the CLI take the action from the user."""
    return {"pause": sweep_pause, "resume": sweep_resume, "stop": sweep_stop}[action](sweep=sweep)

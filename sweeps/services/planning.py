"""Turning the strategy's proposals into Run and RunSample rows, round by round.

Grid and random propose everything in round 0. Guided and tpe propose in rounds, each from
every score observed so far, until n_trials configurations exist or the space is exhausted.

With early stopping, a round's samples beyond the first rung are created `waiting`; each time
the round's open samples are done, the configurations shown worse than the best are pruned and
the next rung's rows open for the rest (engine/early_stopping.py decides; this file applies it).
"""

from __future__ import annotations

import random
from enum import StrEnum

from django.db import connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from sweeps.engine import early_stopping
from sweeps.engine.space import config_hash
from sweeps.engine.spec import ExperimentSpec
from sweeps.engine.stats import row_means
from sweeps.events import publishing
from sweeps.events.messages import run_event, sweep_event
from sweeps.models import Run, RunSample, Sweep
from sweeps.runner.bulk import insert_rows
from sweeps.selectors.runs import row_scores
from sweeps.selectors.sweeps import sweeps_with_owner
from sweeps.services.recording import close_finished_runs

INSERT_BATCH = 2000
SAMPLE_FIELDS = ["run", "sweep", "row_index", "replicate", "inputs", "status"]
# The other NOT NULL columns of a new sample: insert_rows applies no model defaults, so these
# are taken from the model, the same for every sample.
DEFAULTED_FIELDS = ["stages", "output", "tokens_in", "tokens_out", "cost_usd", "cache_hit", "error",
                    "attempts", "lease_owner", "truncated"]  # fmt: skip


# PostgreSQL advisory locks are keyed by two integers: this one ("PLAN") and the sweep's id.
PLANNING_LOCK = 0x504C414E


class PlanningAborted(Exception):
    """The sweep was stopped or paused while its next round was being planned."""


def round_rng(seed: int | None, round_no: int) -> random.Random:
    # Each round has its own stream, so a resumed sweep proposes what an uninterrupted one would.
    return random.Random(f"{seed}:{round_no}") if seed is not None else random.Random()


class Plan(StrEnum):
    PLANNED = "planned"  # a new round's samples wait to be claimed
    IN_PROGRESS = "in_progress"  # the current round still has samples pending or running
    COMPLETE = "complete"  # every round is done and there is nothing more to propose
    STOPPED = "stopped"  # the sweep was stopped or paused while planning: nothing was created


def plan_next_round(sweep_id: int, spec: ExperimentSpec) -> Plan:
    """Create the next round's runs and samples when the current round is over.

    Only COMPLETE says the sweep has nothing left: it is decided under the planning lock, so a
    worker that finds nothing to claim cannot end a sweep whose next round nobody planned yet.
    A stop or pause meanwhile wins: the round is rolled back and STOPPED returned.
    """
    try:
        return plan_locked(sweep_id, spec)
    except PlanningAborted:
        return Plan.STOPPED


def lock_planning(sweep_id: int) -> None:
    """One planner at a time per sweep, until the transaction ends. Not the sweep's row lock:
    stop and pause update that row, and must never wait behind a long planning. (SQLite has one
    writer at a time anyway.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [PLANNING_LOCK, sweep_id % 2**31])


def ensure_active(sweep_id: int) -> None:
    if not Sweep.objects.filter(pk=sweep_id, status__in=Sweep.ACTIVE).exists():
        raise PlanningAborted(sweep_id)


@transaction.atomic
def plan_locked(sweep_id: int, spec: ExperimentSpec) -> Plan:
    lock_planning(sweep_id)
    sweep = Sweep.objects.get(id=sweep_id)
    if RunSample.objects.filter(sweep=sweep, status__in=RunSample.IN_ROUND).exists():
        return Plan.IN_PROGRESS  # the next round needs every score of this one
    if spec.sweep.early_stopping and open_next_rung(sweep, spec):
        return Plan.PLANNED
    strategy = spec.sweep.strategy
    existing = list(Run.objects.filter(sweep=sweep).values_list("config", "config_hash", "score"))
    n = strategy.round_size(spec.sweep, rounds_done=sweep.rounds, planned=len(existing))
    if n <= 0:
        return Plan.COMPLETE
    configs = strategy.propose(
        spec.sweep.space,
        n=n,
        history=[(config, score) for config, _, score in existing if score is not None],
        rng=round_rng(spec.sweep.seed, sweep.rounds),
        top_k=spec.sweep.top_k,
        explore_ratio=spec.sweep.explore_ratio,
        seen={h for _, h, _ in existing},
        pending=[config for config, _, score in existing if score is None],
    )
    if not configs:
        return Plan.COMPLETE
    create_runs(sweep, spec, configs)
    return Plan.PLANNED


def create_runs(sweep: Sweep, spec: ExperimentSpec, configs: list[dict]) -> None:
    per_run = len(spec.dataset) * spec.repeats
    runs = Run.objects.bulk_create(
        Run(experiment_id=sweep.experiment_id, sweep=sweep, round=sweep.rounds, config=c,
            config_hash=config_hash(c), samples_total=per_run)
        for c in configs
    )  # fmt: skip
    if any(r.pk is None for r in runs):  # backends without RETURNING from bulk inserts
        runs = list(Run.objects.filter(sweep=sweep, round=sweep.rounds).order_by("id"))
    defaults = {f: RunSample._meta.get_field(f).get_default() for f in DEFAULTED_FIELDS}  # type: ignore[union-attr]  # columns, not relations
    opened = first_rung_rows(sweep, spec)
    samples = [
        (run.pk, sweep.pk, i, rep, row, RunSample.Status.PENDING if i in opened else RunSample.Status.WAITING)
        for run in runs
        for i, row in enumerate(spec.dataset)
        for rep in range(spec.repeats)
    ]
    for start in range(0, len(samples), INSERT_BATCH):
        ensure_active(sweep.pk)  # a stop meanwhile ends a long planning early
        insert_rows(RunSample, SAMPLE_FIELDS, samples[start : start + INSERT_BATCH], common=defaults)
    # The sweep's row last, and only while it is active: a stop that came first makes this match
    # nothing (the round rolls back); one that comes after waits only for this commit, then
    # cancels the samples it sees.
    added = len(runs) * per_run
    if not Sweep.objects.filter(pk=sweep.pk, status__in=Sweep.ACTIVE).update(
        rounds=F("rounds") + 1, total=F("total") + added, updated_at=timezone.now()
    ):
        raise PlanningAborted(sweep.pk)
    sweep.rounds += 1
    sweep.total += added


# --- early stopping ---


def shared_row_order(sweep: Sweep, spec: ExperimentSpec) -> list[int]:
    return early_stopping.row_order(len(spec.dataset), spec.sweep.seed if spec.sweep.seed is not None else sweep.pk)


def first_rung_rows(sweep: Sweep, spec: ExperimentSpec) -> set[int]:
    """The rows a new configuration starts with: all of them, or the first rung's."""
    if not spec.sweep.early_stopping:
        return set(range(len(spec.dataset)))
    sizes = early_stopping.rung_sizes(len(spec.dataset), spec.sweep.early_stopping.rungs)
    return set(shared_row_order(sweep, spec)[: sizes[0]])


def open_next_rung(sweep: Sweep, spec: ExperimentSpec) -> bool:
    """When configurations wait for their next rung: prune those shown worse than the best, open
    the next rung's rows for the others. False when nothing waits (or everything was pruned)."""
    waiting = RunSample.objects.filter(sweep=sweep, status=RunSample.Status.WAITING)
    run_ids = set(waiting.values_list("run_id", flat=True).distinct())
    if not run_ids:
        return False
    candidates = {run_id: row_means(scores) for run_id, scores in row_scores(run_ids).items()}
    seen = min(len(scores) for scores in candidates.values())  # rows of the shared order done by all
    order, es = shared_row_order(sweep, spec), spec.sweep.early_stopping
    assert es is not None  # only a sweep with early stopping has waiting samples
    pruned = early_stopping.to_prune(candidates, leader_scores(sweep, run_ids, set(order[:seen])), alpha=es.alpha)
    if pruned:
        prune_runs(sweep, pruned)
    survivors = run_ids - pruned
    rows = order[seen : early_stopping.next_size(seen, early_stopping.rung_sizes(len(order), es.rungs))]
    opened = waiting.filter(run_id__in=survivors, row_index__in=rows).update(status=RunSample.Status.PENDING)
    return opened > 0


def leader_scores(sweep: Sweep, running: set[int], rows: set[int]) -> dict[int, float] | None:
    """Per-row scores, on these rows, of the best run that finished in an earlier round."""
    leader = (
        Run.objects.filter(sweep=sweep, status=Run.Status.COMPLETED, score__isnull=False)
        .exclude(id__in=running).order_by("-score", "id").first()
    )  # fmt: skip
    if leader is None:
        return None
    return row_means(row_scores([leader.pk], rows=rows)[leader.pk])


def prune_runs(sweep: Sweep, run_ids: set[int]) -> None:
    """Stop these runs: their waiting samples become `pruned`, the run closes on the rows it saw,
    and the sweep counts what they would have cost at the run's own rate per sample so far."""
    samples = RunSample.objects.filter(run_id__in=run_ids).values("run_id")
    rates = samples.filter(status__in=RunSample.SCORED).annotate(
        n=Count("id"), tokens=Sum(F("tokens_in") + F("tokens_out")), cost=Sum("cost_usd")
    )
    waiting = dict(samples.filter(status=RunSample.Status.WAITING).annotate(n=Count("id")).values_list("run_id", "n"))
    tokens = cost = 0.0
    for rate in rates:
        tokens += (rate["tokens"] or 0) / rate["n"] * waiting.get(rate["run_id"], 0)
        cost += (rate["cost"] or 0) / rate["n"] * waiting.get(rate["run_id"], 0)
    n = RunSample.objects.filter(run_id__in=run_ids, status=RunSample.Status.WAITING).update(
        status=RunSample.Status.PRUNED, finished_at=timezone.now()
    )
    Sweep.objects.filter(pk=sweep.pk).update(
        pruned=F("pruned") + n,
        pruned_tokens=F("pruned_tokens") + round(tokens),
        pruned_cost_usd=F("pruned_cost_usd") + cost,
    )
    closed = close_finished_runs(run_ids)
    sweep = sweeps_with_owner().get(pk=sweep.pk)
    publishing.publish_on_commit([*(run_event("pruned", run, sweep) for run in closed),
                                  sweep_event("progress", sweep)])  # fmt: skip

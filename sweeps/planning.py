"""Turning the strategy's proposals into Run and RunSample rows, round by round.

Grid and random propose everything in round 0. Guided and tpe propose in rounds, each from
every score observed so far, until n_trials configurations exist or the space is exhausted.
"""

from __future__ import annotations

import math
import random
from enum import StrEnum

from django.db import transaction

from sweeps.bulk import insert_rows
from sweeps.engine.space import config_hash
from sweeps.engine.spec import ExperimentSpec
from sweeps.engine.strategies import propose
from sweeps.models import Run, RunSample, Sweep

ROUNDS_FOR_GUIDED = 5  # guided and tpe search spread n_trials over about this many rounds
INSERT_BATCH = 2000
SAMPLE_FIELDS = ["run", "sweep", "row_index", "replicate", "inputs"]
# The other NOT NULL columns of a new sample: insert_rows applies no model defaults, so these
# are taken from the model, the same for every sample.
DEFAULTED_FIELDS = ["stages", "output", "status", "tokens_in", "tokens_out", "cost_usd", "cache_hit", "error",
                    "attempts", "lease_owner"]  # fmt: skip


def round_rng(seed: int | None, round_no: int) -> random.Random:
    # Each round has its own stream, so a resumed sweep proposes what an uninterrupted one would.
    return random.Random(f"{seed}:{round_no}") if seed is not None else random.Random()


class Plan(StrEnum):
    PLANNED = "planned"  # a new round's samples wait to be claimed
    IN_PROGRESS = "in_progress"  # the current round still has samples pending or running
    COMPLETE = "complete"  # every round is done and there is nothing more to propose


@transaction.atomic
def plan_next_round(sweep_id: int, spec: ExperimentSpec) -> Plan:
    """Create the next round's runs and samples when the current round is over.

    Only COMPLETE says the sweep has nothing left: it is decided under the sweep's lock, so a
    worker that finds nothing to claim cannot end a sweep whose next round nobody planned yet.
    """
    sweep = Sweep.objects.select_for_update().get(id=sweep_id)  # one planner at a time per sweep
    if RunSample.objects.filter(sweep=sweep, status__in=(RunSample.Status.PENDING, RunSample.Status.RUNNING)).exists():
        return Plan.IN_PROGRESS  # the next round needs every score of this one
    kind, n_trials = spec.sweep.type, spec.sweep.n_trials or 0
    existing = list(Run.objects.filter(sweep=sweep).values_list("config", "config_hash", "score"))
    if kind in ("grid", "random") and sweep.rounds > 0:
        return Plan.COMPLETE
    remaining = n_trials - len(existing)
    if kind in ("guided", "tpe") and remaining <= 0:
        return Plan.COMPLETE
    n = remaining if kind == "random" else min(remaining, max(spec.sweep.top_k, math.ceil(n_trials / ROUNDS_FOR_GUIDED)))
    configs = propose(
        kind,
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
    defaults = {f: RunSample._meta.get_field(f).get_default() for f in DEFAULTED_FIELDS}
    samples = [
        (run.pk, sweep.pk, i, rep, row)
        for run in runs
        for i, row in enumerate(spec.dataset)
        for rep in range(spec.repeats)
    ]
    for start in range(0, len(samples), INSERT_BATCH):
        insert_rows(RunSample, SAMPLE_FIELDS, samples[start : start + INSERT_BATCH], common=defaults)
    sweep.rounds += 1
    sweep.total += len(runs) * per_run
    sweep.save(update_fields=["rounds", "total", "updated_at"])

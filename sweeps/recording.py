"""Persisting sample results in batches, and closing runs whose samples are all done.

Synchronous ORM code: the executor calls it from its database thread, one transaction a batch,
so the cost of a write is shared by every sample that finished meanwhile.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.db.models import Avg, Count, F, Max, Q, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from sweeps.bulk import update_rows
from sweeps.engine.executor import SampleOutcome
from sweeps.models import ResponseCache, Run, RunSample, Score, Sweep

SAMPLE_FIELDS = [
    "status", "stages", "output", "score", "tokens_in", "tokens_out", "cost_usd",
    "latency_ms", "cache_hit", "error", "finished_at", "lease_owner", "lease_until",
]  # fmt: skip
UNFINISHED = (RunSample.Status.PENDING, RunSample.Status.RUNNING)


def sample_row(outcome: SampleOutcome, now) -> RunSample:
    ok = outcome.ok
    return RunSample(
        id=outcome.item.sample_id,
        status=RunSample.Status.COMPLETED if ok else RunSample.Status.FAILED,
        stages=[s.to_dict() for s in outcome.stages],
        output=outcome.output,
        score=outcome.score,
        tokens_in=int(outcome.total("tokens_in")),
        tokens_out=int(outcome.total("tokens_out")),
        cost_usd=outcome.total("cost_usd"),
        latency_ms=outcome.total("latency_ms") if outcome.stages else None,
        cache_hit=outcome.cache_hit,
        error=outcome.error,
        finished_at=now,
        lease_owner="",
        lease_until=None,
    )


def count_cache_hits(outcomes: Sequence[SampleOutcome]) -> None:
    hits = Counter(stage.key for o in outcomes for stage in o.stages if stage.cached)
    keys_by_count: dict[int, list[str]] = defaultdict(list)
    for key, n in hits.items():
        keys_by_count[n].append(key)
    for n, keys in keys_by_count.items():
        ResponseCache.objects.filter(key__in=keys).update(hits=F("hits") + n)


@transaction.atomic
def record_outcomes(sweep_id: int, outcomes: Sequence[SampleOutcome]) -> tuple[Sweep, list[Run]]:
    """Write a batch of finished samples; returns the sweep's new counters and the runs it closed."""
    now = timezone.now()
    update_rows(RunSample, [sample_row(o, now) for o in outcomes], SAMPLE_FIELDS)
    count_cache_hits(outcomes)
    Score.objects.bulk_create(
        Score(sample_id=o.item.sample_id, scorer_index=i, name=v.name, weight=v.weight,
              value=v.result.value, passed=v.result.passed, reason=v.result.reason)
        for o in outcomes for i, v in enumerate(o.verdicts)
    )  # fmt: skip
    Sweep.objects.filter(id=sweep_id).update(
        completed=F("completed") + sum(o.ok for o in outcomes),
        failed=F("failed") + sum(not o.ok for o in outcomes),
        cached=F("cached") + sum(o.cache_hit for o in outcomes),
        tokens_in=F("tokens_in") + int(sum(o.total("tokens_in", cached=False) for o in outcomes)),
        tokens_out=F("tokens_out") + int(sum(o.total("tokens_out", cached=False) for o in outcomes)),
        cost_usd=F("cost_usd") + sum(o.total("cost_usd", cached=False) for o in outcomes),
        saved_tokens=F("saved_tokens")
        + int(sum(o.total("tokens_in", cached=True) + o.total("tokens_out", cached=True) for o in outcomes)),
        saved_cost_usd=F("saved_cost_usd") + sum(o.total("cost_usd", cached=True) for o in outcomes),
        heartbeat_at=now,
    )
    closed = close_finished_runs({o.item.run_id for o in outcomes})
    return Sweep.objects.get(id=sweep_id), closed


def close_finished_runs(run_ids: Iterable[int]) -> list[Run]:
    """Aggregate every given run that has no pending or running sample left."""
    open_ids = set(
        RunSample.objects.filter(run_id__in=run_ids, status__in=UNFINISHED).values_list("run_id", flat=True).distinct()
    )
    finished = [rid for rid in run_ids if rid not in open_ids]
    if not finished:
        return []
    # A failed sample scores 0: a configuration that errors is worse, not unknown.
    stats = (
        RunSample.objects.filter(run_id__in=finished)
        .values("run_id")
        .annotate(
            score=Avg(Coalesce("score", Value(0.0)), filter=~Q(status=RunSample.Status.CANCELLED)),
            n_done=Count("id", filter=~Q(status=RunSample.Status.CANCELLED)),
            n_failed=Count("id", filter=Q(status=RunSample.Status.FAILED)),
            n_cancelled=Count("id", filter=Q(status=RunSample.Status.CANCELLED)),
            tokens_in=Coalesce(Sum("tokens_in"), 0),
            tokens_out=Coalesce(Sum("tokens_out"), 0),
            cost=Coalesce(Sum("cost_usd"), 0.0),
            latency=Avg("latency_ms"),
            first_error=Max("error"),
        )
    )
    now = timezone.now()
    runs = []
    for s in stats:
        if s["n_cancelled"]:
            status = Run.Status.CANCELLED
        elif s["n_failed"] == s["n_done"]:
            status = Run.Status.FAILED
        else:
            status = Run.Status.COMPLETED
        runs.append(
            Run(
                # Rounded: the database sums in no fixed order, and a re-run must rank identically.
                id=s["run_id"], status=status, score=round(s["score"], 9) if s["n_done"] else None,
                samples_failed=s["n_failed"], tokens_in=s["tokens_in"], tokens_out=s["tokens_out"],
                cost_usd=s["cost"], latency_ms=s["latency"], error=s["first_error"] or "", finished_at=now,
            )
        )  # fmt: skip
    fields = ["status", "score", "samples_failed", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "error"]
    update_rows(Run, runs, [*fields, "finished_at"])
    scored = [r.score for r in runs if r.score is not None]
    if scored:
        sweep_ids = Run.objects.filter(id__in=finished).values_list("sweep_id", flat=True).distinct()
        Sweep.objects.filter(id__in=list(sweep_ids)).update(best_score=Greatest(Coalesce("best_score", -1.0), max(scored)))
    return list(Run.objects.filter(id__in=finished))

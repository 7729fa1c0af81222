"""Persisting sample results in batches, and closing runs whose samples are all done.

Synchronous ORM code: the executor calls it from its database thread, one transaction a batch,
so the cost of a write is shared by every sample that finished meanwhile.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.db.models import Avg, Count, Exists, F, Max, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from sweeps.engine import stats
from sweeps.engine.executor import SampleOutcome
from sweeps.models import ResponseCache, Run, RunSample, Score, Sweep
from sweeps.runner.bulk import insert_rows, update_rows
from sweeps.selectors.runs import compute_scorer_means
from sweeps.selectors.sweeps import sweeps_with_owner
from sweeps.services.text_limits import stored, stored_stage

SAMPLE_FIELDS = [
    "status", "stages", "output", "score", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "cache_hit", "error",
    "truncated",
]  # fmt: skip
SCORE_FIELDS = ["sample", "scorer_index", "name", "weight", "value", "passed", "reason"]
RUN_FIELDS = ["status", "score", "samples_failed", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "error",
              "score_ci_low", "score_ci_high", "score_spread", "consistency", "samples_truncated",
              "scorer_means"]  # fmt: skip


def sample_row(outcome: SampleOutcome) -> tuple:
    """(id, *SAMPLE_FIELDS) of a finished sample."""
    ok = outcome.ok
    return (
        outcome.item.sample_id,
        RunSample.Status.COMPLETED if ok else RunSample.Status.FAILED,
        [stored_stage(s.to_dict()) for s in outcome.stages],
        stored(outcome.output),
        outcome.score,
        int(outcome.total("tokens_in")),
        int(outcome.total("tokens_out")),
        outcome.total("cost_usd"),
        outcome.total("latency_ms") if outcome.stages else None,
        outcome.cache_hit,
        outcome.error,
        outcome.truncated,
    )


def count_cache_hits(outcomes: Sequence[SampleOutcome]) -> None:
    hits = Counter(stage.key for o in outcomes for stage in o.stages if stage.cached)
    keys_by_count: dict[int, list[str]] = defaultdict(list)
    for key, n in hits.items():
        keys_by_count[n].append(key)
    for n, keys in keys_by_count.items():
        ResponseCache.objects.filter(key__in=keys).update(hits=F("hits") + n)


def held_by(owner: str, outcomes: Sequence[SampleOutcome]) -> list[SampleOutcome]:
    """The outcomes whose sample `owner` still holds, their rows locked until the batch commits.

    A worker whose lease expired (its heartbeat stalled) may finish a call after another worker
    took the sample over: that late result is dropped, so a sample is recorded once, by its
    lease holder, and never fails the batch on a duplicate score."""
    ids = [o.item.sample_id for o in outcomes]
    held = set(
        RunSample.objects.select_for_update()
        .filter(id__in=ids, status=RunSample.Status.RUNNING, lease_owner=owner)
        .values_list("id", flat=True)
    )
    return [o for o in outcomes if o.item.sample_id in held]


@transaction.atomic
def record_outcomes(sweep_id: int, outcomes: Sequence[SampleOutcome], owner: str) -> tuple[Sweep, list[Run]]:
    """Write a batch of finished samples that `owner` holds; returns the sweep's new counters
    and the runs it closed."""
    now = timezone.now()
    paid, outcomes = outcomes, held_by(owner, outcomes)  # a dropped late result was paid all the same
    update_rows(
        RunSample,
        SAMPLE_FIELDS,
        [sample_row(o) for o in outcomes],
        common={"finished_at": now, "lease_until": None},  # lease_owner stays: who did it
    )
    count_cache_hits(outcomes)
    insert_rows(
        Score,
        SCORE_FIELDS,
        [(o.item.sample_id, i, v.name, v.weight, v.result.value, v.result.passed, v.result.reason)
         for o in outcomes for i, v in enumerate(o.verdicts)],
    )  # fmt: skip
    Sweep.objects.filter(id=sweep_id).update(
        completed=F("completed") + sum(o.ok for o in outcomes),
        failed=F("failed") + sum(not o.ok for o in outcomes),
        cached=F("cached") + sum(o.cache_hit for o in outcomes),
        cached_calls=F("cached_calls") + sum(stage.cached for o in outcomes for stage in o.stages),
        tokens_in=F("tokens_in") + int(sum(o.total("tokens_in", cached=False) for o in paid)),
        tokens_out=F("tokens_out") + int(sum(o.total("tokens_out", cached=False) for o in paid)),
        cost_usd=F("cost_usd") + sum(o.total("cost_usd", cached=False) for o in paid),
        saved_tokens=F("saved_tokens")
        + int(sum(o.total("tokens_in", cached=True) + o.total("tokens_out", cached=True) for o in outcomes)),
        saved_cost_usd=F("saved_cost_usd") + sum(o.total("cost_usd", cached=True) for o in outcomes),
        heartbeat_at=now,
    )
    closed = close_finished_runs({o.item.run_id for o in outcomes})
    return sweeps_with_owner().get(id=sweep_id), closed  # with the owner: events are built from it


def close_finished_runs(run_ids: Iterable[int]) -> list[Run]:
    """Aggregate every given run that has no pending or running sample left."""
    # One query tells which runs are finished (no open sample: the HAVING) and their figures.
    # A failed sample scores 0: a configuration that errors is worse, not unknown.
    still_open = RunSample.objects.filter(run=OuterRef("pk"), status__in=RunSample.UNFINISHED)
    closing = list(Run.objects.filter(id__in=run_ids).exclude(Exists(still_open)).values_list("id", flat=True))
    if not closing:
        return []
    figures_query = (
        RunSample.objects.filter(run_id__in=closing)
        .values("run_id")
        .annotate(
            n_open=Count("id", filter=Q(status__in=RunSample.UNFINISHED)),
            score=Avg(Coalesce("score", Value(0.0)), filter=~Q(status__in=RunSample.NOT_SCORED)),
            n_done=Count("id", filter=~Q(status__in=RunSample.NOT_SCORED)),
            n_failed=Count("id", filter=Q(status=RunSample.Status.FAILED)),
            n_cancelled=Count("id", filter=Q(status=RunSample.Status.CANCELLED)),
            n_pruned=Count("id", filter=Q(status=RunSample.Status.PRUNED)),
            n_truncated=Count("id", filter=Q(truncated=True)),
            tokens_in=Coalesce(Sum("tokens_in"), 0),
            tokens_out=Coalesce(Sum("tokens_out"), 0),
            cost=Coalesce(Sum("cost_usd"), 0.0),
            latency=Avg("latency_ms"),
            first_error=Max("error"),
        )
        .filter(n_open=0)
    )
    figures = list(figures_query)
    certainty = run_statistics([s["run_id"] for s in figures])
    means = compute_scorer_means([s["run_id"] for s in figures]) if figures else {}
    rows = []
    for s in figures:
        if s["n_pruned"]:
            status = Run.Status.PRUNED
        elif s["n_cancelled"]:
            status = Run.Status.CANCELLED
        elif s["n_failed"] == s["n_done"]:
            status = Run.Status.FAILED
        else:
            status = Run.Status.COMPLETED
        # Rounded: the database sums in no fixed order, and a re-run must rank identically.
        score = round(s["score"], 9) if s["n_done"] else None
        rows.append((s["run_id"], status, score, s["n_failed"], s["tokens_in"], s["tokens_out"], s["cost"],
                     s["latency"], s["first_error"] or "", *certainty[s["run_id"]], s["n_truncated"], means[s["run_id"]]))  # fmt: skip
    if not rows:
        return []
    update_rows(Run, RUN_FIELDS, rows, common={"finished_at": timezone.now()})
    closed = list(Run.objects.filter(id__in=[row[0] for row in rows]))
    best: dict[int, float] = {}  # per sweep, the best full-data score among the runs just closed
    for run in closed:
        if run.score is not None and run.status != Run.Status.PRUNED:
            best[run.sweep_id] = max(run.score, best.get(run.sweep_id, run.score))
    for sweep_id, score in best.items():  # the runs of one sweep, in practice
        Sweep.objects.filter(id=sweep_id).update(best_score=Greatest(Coalesce("best_score", -1.0), score))
    return closed


def run_statistics(run_ids: Sequence[int]) -> dict[int, tuple[float | None, ...]]:
    """Per run: (ci_low, ci_high, spread, consistency) of its score, from its scored samples.

    Read once, as a run closes: the interval resamples the dataset's rows (each row's replicates
    averaged, a failed sample scoring 0 as in the run's score), seeded by the run so that it is
    reproducible. A sample passes when it failed no scorer; replicates agree when all pass or all fail."""
    samples = (
        RunSample.objects.filter(run_id__in=run_ids, status__in=RunSample.SCORED)
        .annotate(failed_scores=Count("scores", filter=Q(scores__passed=False)))
        .values_list("run_id", "row_index", "replicate", "score", "status", "failed_scores")
    )
    scores: dict[int, list[tuple[int, int, float]]] = {run_id: [] for run_id in run_ids}
    verdicts: dict[int, list[tuple[int, int, bool]]] = {run_id: [] for run_id in run_ids}
    for run_id, row, replicate, score, status, failed_scores in samples:
        scores[run_id].append((row, replicate, score or 0.0))
        verdicts[run_id].append((row, replicate, status == RunSample.Status.COMPLETED and not failed_scores))
    result = {}
    for run_id in run_ids:
        ci = stats.bootstrap_ci(list(stats.row_means(scores[run_id]).values()), seed=run_id) or (None, None)
        result[run_id] = (*ci, stats.replicate_spread(scores[run_id]), stats.consistency(verdicts[run_id]))
    return result

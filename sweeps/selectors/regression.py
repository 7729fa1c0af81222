"""Two sweeps side by side for engine/regression.py: each run's per-row scores and verdicts."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, Q

from sweeps.engine import stats
from sweeps.engine.regression import Regression, RunRows, compare_sweeps
from sweeps.models import RunSample, Sweep
from sweeps.selectors.runs import row_scores


def runs_by_config(sweep: Sweep) -> dict[str, RunRows]:
    runs = list(sweep.runs.values_list("id", "config_hash", "score"))
    scores = row_scores([run_id for run_id, _, _ in runs])
    passed: dict[int, dict[int, bool]] = defaultdict(dict)
    verdicts = (
        RunSample.objects.filter(run_id__in=[run_id for run_id, _, _ in runs], status__in=RunSample.SCORED)
        .annotate(failed_scores=Count("scores", filter=Q(scores__passed=False)))
        .values_list("run_id", "row_index", "status", "failed_scores")
    )
    for run_id, row, status, failed_scores in verdicts:  # a row passes when every replicate passed
        ok = status == RunSample.Status.COMPLETED and not failed_scores
        passed[run_id][row] = passed[run_id].get(row, True) and ok
    return {
        config_hash: RunRows(run_id, score, stats.row_means(scores[run_id]), passed[run_id])
        for run_id, config_hash, score in runs
    }


def sweep_regression(before: Sweep, after: Sweep, *, alpha: float = 0.05) -> Regression:
    return compare_sweeps(runs_by_config(before), runs_by_config(after), alpha=alpha)


def regression_out(before: Sweep, after: Sweep, regression: Regression) -> dict:
    configs = sweep_configs(after)
    return {
        "before": before.pk,
        "after": after.pk,
        "summary": {
            "worse": regression.count("worse"),
            "better": regression.count("better"),
            "unchanged": regression.count("unchanged"),
            "text": regression.summary,
        },  # fmt: skip
        "configurations": [
            {
                "config_hash": change.config_hash,
                "config": configs.get(change.config_hash, {}),
                "run_before": change.before.run_id,
                "run_after": change.after.run_id,
                "score_before": change.before.score,
                "score_after": change.after.score,
                "difference": change.difference,
                "p_value": change.p_value,
                "rows": change.rows,
                "verdict": change.verdict,
                "pass_to_fail": change.pass_to_fail,
                "fail_to_pass": change.fail_to_pass,
            }  # fmt: skip
            for change in regression.changes
        ],
        "only_before": len(regression.only_before),
        "only_after": len(regression.only_after),
    }


def flipped_samples(regression: Regression, *, per_config: int) -> dict[tuple[int, int], RunSample]:
    """The first replicate of the first `per_config` flipped rows of each configuration, on both
    sides, by (run id, row index), their scores prefetched: what the regression page shows side
    by side. One query, whatever the number of configurations."""
    wanted = Q(pk__in=[])
    for change in regression.changes:
        rows = (change.pass_to_fail + change.fail_to_pass)[:per_config]
        if rows:
            wanted |= Q(run_id__in=[change.before.run_id, change.after.run_id], row_index__in=rows)
    samples = RunSample.objects.filter(wanted, replicate=0).prefetch_related("scores")
    return {(sample.run_id, sample.row_index): sample for sample in samples}


def sweep_configs(sweep: Sweep) -> dict[str, dict]:
    """The sweep's configurations by config hash."""
    return dict(sweep.runs.values_list("config_hash", "config"))

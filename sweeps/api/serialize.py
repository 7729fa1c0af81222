"""Model rows to the API's output shapes, in one place so every route answers alike."""

from __future__ import annotations

from typing import Any

from sweeps.api.schemas import RunOut
from sweeps.engine.space import get_path
from sweeps.models import Experiment, Run, SpecVersion, Sweep
from sweeps.selectors.leaderboard import pareto_run_ids, top_two_verdict, varying_params
from sweeps.selectors.ratings import human_shares
from sweeps.selectors.runs import scorer_means
from sweeps.selectors.sweeps import sweep_progress
from sweeps.selectors.versions import version_number

SWEEP_FIELDS = ["id", "experiment_id", "status", "stopped_reason", "error", "rounds", "total", "completed", "failed",
                "cancelled", "cached", "cached_calls", "tokens_in", "tokens_out", "cost_usd", "saved_tokens", "saved_cost_usd",
                "pruned", "pruned_tokens", "pruned_cost_usd", "best_score", "max_tokens", "max_cost_usd", "created_at", "started_at", "finished_at", "started_via"]  # fmt: skip


CERTAINTY_FIELDS = ("score_ci_low", "score_ci_high", "score_spread", "consistency")


def sweep_out(sweep: Sweep) -> dict[str, Any]:
    return {
        **{f: getattr(sweep, f) for f in SWEEP_FIELDS},
        **sweep_progress(sweep),
        "spec_version": version_number(sweep),
    }


def version_out(version: SpecVersion) -> dict[str, Any]:
    return {
        "number": version.number,
        "author": version.author.get_username() if version.author else None,
        "via": version.via,
        "created_at": version.created_at,
        "sweep_ids": [sweep.pk for sweep in version.sweeps.all()],
    }


def experiment_out(experiment: Experiment, latest: Sweep | None, *, spec: bool = False) -> dict[str, Any]:
    out = {
        "id": experiment.pk,
        "name": experiment.name,
        "description": experiment.description,
        "status": experiment.status,
        "source": experiment.source,
        "created_at": experiment.created_at,
        "updated_at": experiment.updated_at,
        "latest_sweep": sweep_out(latest) if latest else None,
    }
    if spec:
        out["spec"] = experiment.spec
    return out


def runs_out(runs: list[Run]) -> list[dict[str, Any]]:
    means = scorer_means(runs)
    human = human_shares(run.pk for run in runs)
    return [{**RunOut.from_orm(run).model_dump(), "scores": means[run.pk], "human": human.get(run.pk)} for run in runs]


def leaderboard_out(sweep: Sweep | None, runs: list[Run]) -> dict[str, Any]:
    params = varying_params(runs) if runs else []
    means = scorer_means(runs, live=False)
    human = human_shares(run.pk for run in runs)
    front = pareto_run_ids(sweep) if sweep else []
    entries = [
        {
            "rank": rank,
            "run_id": run.pk,
            "status": run.status,
            "score": run.score,
            "params": {p: get_path(run.config, p, None) for p in params},
            "config": run.config,
            "tokens_in": run.tokens_in,
            "tokens_out": run.tokens_out,
            "cost_usd": run.cost_usd,
            "latency_ms": run.latency_ms,
            "samples_failed": run.samples_failed,
            "samples_truncated": run.samples_truncated,
            "score_per_dollar": run.score_per_dollar,
            **{field: getattr(run, field) for field in CERTAINTY_FIELDS},
            "scores": means[run.pk],
            "human": human.get(run.pk),
            "pareto": run.pk in front,
        }  # fmt: skip
        for rank, run in enumerate(runs, start=1)
    ]
    verdict = top_two_verdict(sweep) if sweep else None
    return {"sweep_id": sweep.pk if sweep else None, "varying_params": params, "entries": entries, "pareto_front": front,
            "verdict": verdict}  # fmt: skip

"""Event payloads, built from model rows so every sender says the same thing."""

from __future__ import annotations

from typing import Any

from sweeps.models import Run, Sweep


def owner_id(sweep: Sweep) -> int | None:
    """Never a query (see selectors.sweeps.sweeps_with_owner); None when the loader did not say."""
    if (owner := getattr(sweep, "owner_id", None)) is not None:
        return owner
    return sweep.experiment.owner_id if Sweep.experiment.is_cached(sweep) else None


def sweep_event(kind: str, sweep: Sweep) -> dict[str, Any]:
    return {
        "type": f"sweep.{kind}",
        "experiment_id": sweep.experiment_id,
        "owner_id": owner_id(sweep),
        "sweep_id": sweep.id,
        "status": sweep.status,
        "stopped_reason": sweep.stopped_reason,
        "completed": sweep.done,
        "failed": sweep.failed,
        "cached": sweep.cached,
        "pruned": sweep.pruned,
        "pruned_tokens": sweep.pruned_tokens,
        "total": sweep.total,
        "tokens_in": sweep.tokens_in,
        "tokens_out": sweep.tokens_out,
        "cost": sweep.cost_usd,
        "best_score": sweep.best_score,
        "error": sweep.error,
    }


def run_event(kind: str, run: Run, sweep: Sweep) -> dict[str, Any]:
    return {
        "type": f"run.{kind}",
        "experiment_id": run.experiment_id,
        "owner_id": owner_id(sweep),
        "sweep_id": run.sweep_id,
        "run_id": run.id,
        "status": run.status,
        "score": run.score,
        "config": run.config,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "cost": run.cost_usd,
        "completed": sweep.done,
        "total": sweep.total,
    }

"""Event payloads, built from model rows so every sender says the same thing."""

from __future__ import annotations

from typing import Any

from sweeps.models import Run, Sweep


def sweep_event(kind: str, sweep: Sweep) -> dict[str, Any]:
    return {
        "type": f"sweep.{kind}",
        "experiment_id": sweep.experiment_id,
        "sweep_id": sweep.id,
        "status": sweep.status,
        "stopped_reason": sweep.stopped_reason,
        "completed": sweep.completed + sweep.failed + sweep.cancelled,
        "failed": sweep.failed,
        "cached": sweep.cached,
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
        "sweep_id": run.sweep_id,
        "run_id": run.id,
        "status": run.status,
        "score": run.score,
        "config": run.config,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "cost": run.cost_usd,
        "completed": sweep.completed + sweep.failed + sweep.cancelled,
        "total": sweep.total,
    }

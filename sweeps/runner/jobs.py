"""Entry points for workers: they take ids only; the database holds the truth."""

from __future__ import annotations

import asyncio

from django.db import close_old_connections


def run_sweep(sweep_id: int) -> str | None:
    # Imported here: execution records through the services, which enqueue this job, so a
    # module-level import would close the loop services -> dispatch -> jobs -> execution.
    from sweeps.runner.execution import execute_sweep

    close_old_connections()
    try:
        return asyncio.run(execute_sweep(sweep_id))
    finally:
        close_old_connections()

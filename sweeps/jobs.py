"""Entry points for workers: they take ids only; the database holds the truth."""

from __future__ import annotations

import asyncio

from django.db import close_old_connections

from sweeps.execution import execute_sweep


def run_sweep(sweep_id: int) -> str | None:
    close_old_connections()
    try:
        return asyncio.run(execute_sweep(sweep_id))
    finally:
        close_old_connections()

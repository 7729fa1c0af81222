"""How numbers read, in one place: pages (through the `numbers` template filters), the API's
texts and the CLI format counts, parameter values and a sweep's progress with these functions."""

from __future__ import annotations

from typing import Any

SIGNIFICANT = 4  # digits a float parameter is shown with: 0.1091, not 0.10908090072990548


def count(value: Any) -> str:
    """A count or a token total with thousands separators: 125,083."""
    if value is None or value == "":
        return "–"
    return f"{round(value):,}"


def param(value: Any) -> str:
    """A parameter value as a person reads it: floats to 4 significant digits, the rest as is."""
    if isinstance(value, float):
        return repr(float(f"{value:.{SIGNIFICANT}g}"))  # rounded, yet still a float: 1.0, 0.1091, 1235.0
    return str(value)


def scorer_means(means: list[dict[str, Any]], columns: int) -> list[str]:
    """A run's scorer means as cells, one per scorer of the spec (a dash where it has none yet)."""
    cells = ["–" if m["mean"] is None else f"{m['mean']:.3f}" for m in means[:columns]]
    return cells + ["–"] * (columns - len(cells))


def per_call(total: int | float, calls: int | float) -> str:
    """The mean per call of a total (e.g. output tokens), rounded: "–" with no call."""
    return count(total / calls) if calls else "–"


def run_status(status: str, failed: int) -> str:
    """A run's status, with its failed samples when it has some: "completed · 3 failed", so a
    configuration a flaky provider failed does not read as a bad one."""
    return f"{status} · {count(failed)} failed" if failed and status != "failed" else status


def progress(*, total: int, finished: int, cancelled: int) -> str:
    """ "224 of 720 done · 496 cancelled": cancelled samples are not done (see Sweep.finished)."""
    text = f"{count(finished)} of {count(total)} done"
    return text + (f" · {count(cancelled)} cancelled" if cancelled else "")

"""The regression view: two sweeps of one experiment, configuration by configuration.

What changed is worked out by engine/regression.py (a paired Wilcoxon test per configuration the
two sweeps share), read by selectors/regression.py, the same as the API's compare route and the
CLI's `--baseline` gate. This page adds the rows that flipped, their outputs side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString

from sweeps.engine.regression import ConfigChange, Regression
from sweeps.engine.space import flatten
from sweeps.models import Experiment, RunSample, Sweep
from sweeps.selectors.experiments import experiment_page_get
from sweeps.selectors.leaderboard import varying_keys
from sweeps.selectors.regression import flipped_samples, sweep_configs, sweep_regression
from sweeps.selectors.sweeps import sweep_history, sweep_shown
from sweeps.services import text_limits
from sweeps.web import compare

FLIPS_SHOWN = 20  # flipped rows shown per configuration; the run pages have the rest
ORDER = {"worse": 0, "better": 1, "unchanged": 2}  # what needs attention first
DEFAULT_ALPHA = 0.05


@dataclass
class Flip:
    row_index: int
    direction: str  # "pass_to_fail" or "fail_to_pass"
    inputs: list[tuple[str, Any]]
    before: RunSample | None
    after: RunSample | None
    after_output: SafeString = SafeString("")  # the later output, its changes from the earlier marked


@dataclass
class Line:
    change: ConfigChange
    params: list[tuple[str, Any]]  # the parameters that tell this configuration from the others
    flips: list[Flip] = field(default_factory=list)
    more_flips: int = 0


@login_required
def sweep_regression_page(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_page_get(user=request.user, experiment_id=experiment_id)
    history = sweep_history(experiment)
    context: dict[str, Any] = {"experiment": experiment, "history": history, "alpha": DEFAULT_ALPHA}
    try:
        before, after, alpha = chosen(request.GET, experiment, history)
    except ValueError as problem:
        context["error"] = str(problem)
        return render(request, "sweeps/regression.html", context, status=400)
    if before is None or after is None:
        context["error"] = "Comparing needs two sweeps of this experiment: start another one."
        return render(request, "sweeps/regression.html", context)
    regression = sweep_regression(before, after, alpha=alpha)
    context |= {"before": before, "after": after, "alpha": alpha, "regression": regression,
                "lines": lines(regression, sweep_configs(after))}  # fmt: skip
    return render(request, "sweeps/regression.html", context)


def chosen(query: QueryDict, experiment: Experiment, history: list[Sweep]) -> tuple[Sweep | None, Sweep | None, float]:
    """The sweeps and the level the query asks for (another experiment's sweep is a 404). By
    default the latest sweep against the one before it."""
    after = sweep_shown(experiment, query.get("after"), history)
    earlier = [sweep for sweep in history if after is not None and sweep.created_at < after.created_at]
    before = sweep_shown(experiment, query.get("before"), earlier) if query.get("before") else next(iter(earlier), None)
    if before is not None and before == after:
        raise ValueError("Choose two different sweeps.")
    raw = query.get("alpha") or str(DEFAULT_ALPHA)
    try:
        alpha = float(raw)
    except ValueError:
        alpha = -1.0
    if not 0 < alpha < 1:  # NaN fails this too
        raise ValueError(f"alpha must be a number between 0 and 1, not {raw[:20]!r}.")
    return before, after, alpha


def lines(regression: Regression, configs: dict[str, dict]) -> list[Line]:
    shown = [flatten(configs.get(change.config_hash, {})) for change in regression.changes]
    varying = varying_keys(shown)
    samples = flipped_samples(regression, per_config=FLIPS_SHOWN)
    result = []
    for change, params in zip(regression.changes, shown, strict=True):
        line = Line(change, [(key, params.get(key)) for key in varying])
        flipped = [(row, "pass_to_fail") for row in change.pass_to_fail] + [
            (row, "fail_to_pass") for row in change.fail_to_pass
        ]
        line.more_flips = max(0, len(flipped) - FLIPS_SHOWN)
        for row, direction in flipped[:FLIPS_SHOWN]:
            line.flips.append(flip(row, direction, samples.get((change.before.run_id, row)),
                                   samples.get((change.after.run_id, row))))  # fmt: skip
        result.append(line)
    return sorted(
        result,
        key=lambda line: (ORDER[line.change.verdict], line.change.p_value if line.change.p_value is not None else 1),
    )


def flip(row: int, direction: str, before: RunSample | None, after: RunSample | None) -> Flip:
    for sample in (before, after):
        if sample is not None:
            text_limits.cut_for_showing(sample, text_limits.page_text_url(sample.pk))
    inputs = next((compare.items(s.inputs) for s in (after, before) if s is not None), [])
    result = Flip(row, direction, inputs, before, after)
    if after is not None:
        if (
            before is not None
            and compare.has_output(before)
            and compare.has_output(after)
            and before.output != after.output
        ):
            result.after_output = compare.word_diff(before.output, after.output)
        else:
            result.after_output = conditional_escape(after.output)
    return result

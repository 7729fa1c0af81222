"""The run page (one configuration, sample by sample) and the compare page (runs side by side).

Thin like views.py: reads through selectors (scoped to the user: another's run is a 404), the
compare rows are built in sweeps/web/compare.py. Both pages are paginated on the server with a
constant number of queries, whatever the number of samples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from sweeps.engine.pipeline import resolve_pipeline
from sweeps.engine.space import flatten, get_path
from sweeps.engine.spec import StageSpec
from sweeps.models import Experiment, Run, RunSample
from sweeps.selectors.experiments import experiment_page_get
from sweeps.selectors.leaderboard import run_ranking, varying_params
from sweeps.selectors.ratings import sample_ratings
from sweeps.selectors.runs import (
    compare_row_keys,
    compare_samples,
    run_page_get,
    run_sample_search,
    runs_get,
    sample_get,
    scorer_means,
)
from sweeps.selectors.sweeps import sweep_latest_figures, sweep_pipeline
from sweeps.services import text_limits
from sweeps.web import compare

SAMPLES_PER_PAGE = 50
ROWS_PER_PAGE = 25
MIN_RUNS, MAX_RUNS = 2, 6
PICKER_RUNS = 50  # the best of the latest sweep, offered when no valid selection is given
FOLD_CHARS = 600  # longer texts start folded in a <details>
RUN_ID = re.compile(r"[0-9]{1,18}")  # 18 digits always fit a bigint: a longer "id" finds nothing


# --- run page ---


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_page_get(user=request.user, run_id=run_id)
    context = run_context(request, run, text_limits.page_text_url, reviewer=request.user)
    return render(request, "sweeps/run_detail.html", context)


def run_context(request: HttpRequest, run: Run, text_url: Callable[[int], str], *, reviewer: Any) -> dict[str, Any]:
    """The run page's context; `text_url(sample_id)` is where a cut text is read in full (the
    owner's URL, or a share link's), `reviewer` the user whose ratings it shows (None on a
    shared page, which neither shows nor takes ratings)."""
    filters, problems = sample_filters(request.GET)
    page = Paginator(run_sample_search(run, **filters), SAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    ratings = sample_ratings(user=reviewer, sample_ids=[sample.pk for sample in page]) if reviewer else {}
    for sample in page:
        text_limits.cut_for_showing(sample, text_url(sample.pk))
        sample.input_items = compare.items(sample.inputs)
        sample.user_rating = ratings.get(sample.pk)
    return {
        "run": run,
        "swept": sorted(flatten(run.config).items()),
        "scorer_means": scorer_means([run])[run.pk],
        "stages": [(stage, compare.items(stage.params)) for stage in resolved_stages(run)],
        "filters": filters,
        "problems": problems,
        "statuses": RunSample.Status.values,
        "page": page,
        "fold_at": FOLD_CHARS,
    }


@login_required
def sample_text(request: HttpRequest, sample_id: int) -> HttpResponse:
    """One stored text of a sample in full (`?part=output`, `stages.0.prompt`, ...), for its owner."""
    sample = sample_get(user=request.user, sample_id=sample_id)
    text = text_limits.full_text(sample, request.GET.get("part", ""))
    if text is None:
        raise Http404("No such text: ask for part=output, inputs.<column> or stages.<i>.system|prompt|output")
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


def sample_filters(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The sample filters asked for in the query string, and what was wrong with the others
    (shown on the page; a bad filter is ignored rather than refused)."""
    filters: dict[str, Any] = {}
    problems = []
    status = query.get("status", "")
    if status in RunSample.Status.values:
        filters["status"] = status
    elif status:
        problems.append(f"Unknown status {status!r}: choose one of {', '.join(RunSample.Status.values)}.")
    raw = query.get("max_score", "").strip()
    if raw:
        try:
            max_score = float(raw)
        except ValueError:
            max_score = None
        if max_score is not None and 0 <= max_score <= 1:
            filters["max_score"] = max_score
        else:
            problems.append(f"Score at most {raw!r}: give a number from 0 to 1, e.g. 0.5.")
    return filters, problems


def resolved_stages(run: Run) -> list:
    """The stages as this run executed them (models, params, prompt templates): the run's full
    configuration, where `run.config` holds only what the sweep varied."""
    stages = [
        StageSpec(name=s["name"], prompt=s["prompt"], system=s.get("system"), model=s.get("model"),
                  params=s.get("params") or {})
        for s in sweep_pipeline(run.sweep_id)
    ]  # fmt: skip
    try:
        return resolve_pipeline(stages, run.config)
    except ValueError:  # a hand-made config (the admin); the samples still show what ran
        return []


# --- compare page ---


class SelectionError(ValueError):
    """The runs asked for cannot be compared; the message says why, for the person asking."""


@login_required
def experiment_compare(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_page_get(user=request.user, experiment_id=experiment_id)
    asked = request.GET.getlist("runs")
    if not asked:  # ?with=<id>: the run page's "compare with other runs", that run ticked
        return render_picker(request, experiment, ticked=request.GET.getlist("with"), error="")
    try:
        run_ids = parse_run_ids(asked)
        runs = runs_get(user=request.user, run_ids=run_ids)  # another user's run: 404
        check_same_experiment(experiment, runs)
    except SelectionError as e:
        return render_picker(request, experiment, ticked=asked, error=str(e), status=400)

    page = Paginator(compare_row_keys(runs), ROWS_PER_PAGE).get_page(request.GET.get("page"))
    keys = list(page.object_list)  # (row_index, replicate) pairs
    samples = compare_samples(runs, keys)
    ratings = sample_ratings(user=request.user, sample_ids=[sample.pk for sample in samples])
    for sample in samples:
        text_limits.cut_for_showing(sample, text_limits.page_text_url(sample.pk))
        sample.user_rating = ratings.get(sample.pk)
    context = {
        "experiment": experiment,
        "headers": run_headers(runs),
        "rows": compare.build_rows(runs, keys, samples),
        "page": page,
        "fold_at": FOLD_CHARS,
    }
    return render(request, "sweeps/compare.html", context)


def parse_run_ids(values: list[str]) -> list[int]:
    """Run ids from repeated `runs=` parameters (the leaderboard's checkboxes) or one
    comma-separated list, in the order given (the first run is the one others are compared with)."""
    ids: list[int] = []
    for part in (p.strip() for value in values for p in value.split(",")):
        if not part:
            continue
        if not RUN_ID.fullmatch(part):
            raise SelectionError(f"{part[:40]!r} is not a run id: choose runs by number, e.g. ?runs=12&runs=15.")
        if int(part) not in ids:
            ids.append(int(part))
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise SelectionError(f"Choose {MIN_RUNS} to {MAX_RUNS} runs to compare; {len(ids)} chosen.")
    return ids


def check_same_experiment(experiment: Experiment, runs: list[Run]) -> None:
    others = [str(run.pk) for run in runs if run.experiment_id != experiment.pk]
    if others:
        raise SelectionError(
            f"Run {', '.join(others)} {'belongs' if len(others) == 1 else 'belong'} to another experiment: "
            "compare runs of one experiment."
        )


def run_headers(runs: list[Run]) -> list[dict]:
    """Per run, what sets it apart from the others (the parameters that vary among them), its
    score and each scorer's mean; the best score is marked when it stands out."""
    params = varying_params(runs)
    means = scorer_means(runs)
    scores = {run.score for run in runs if run.score is not None}
    best = max(scores) if len(scores) > 1 else None
    return [
        {
            "run": run,
            "params": [(p, get_path(run.config, p, "")) for p in params],
            "means": means[run.pk],
            "best": best is not None and run.score == best,
        }
        for run in runs
    ]


def render_picker(
    request: HttpRequest, experiment: Experiment, *, ticked: list[str], error: str, status: int = 200
) -> HttpResponse:
    """The page without a valid selection: why, and the latest sweep's runs to choose from (those
    already asked for ticked, so fixing the choice is one click)."""
    sweep = sweep_latest_figures(experiment)
    runs = list(run_ranking(sweep)[:PICKER_RUNS]) if sweep else []
    params = varying_params(runs) if runs else []
    context = {
        "experiment": experiment,
        "error": error,
        "params": params,
        "choices": [(run, [get_path(run.config, p, "") for p in params]) for run in runs],
        "ticked": {part.strip() for value in ticked for part in value.split(",")},
        "min_runs": MIN_RUNS,
        "max_runs": MAX_RUNS,
    }
    return render(request, "sweeps/compare.html", context, status=status)

"""Server-rendered pages. Thin: they read through selectors and change state through services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_http_methods, require_POST

from sweeps.engine import formatting
from sweeps.engine.space import flatten, get_path
from sweeps.models import Experiment, Run, ShareLink, Sweep
from sweeps.selectors.experiments import experiment_page_get, experiment_search
from sweeps.selectors.leaderboard import (
    LEADERBOARD_DEFAULT,
    LEADERBOARD_ORDERS,
    chart_runs,
    leaderboard_order,
    pareto_run_ids,
    run_history,
    run_leaderboard,
    runs_recently_finished,
    sweep_importances,
    top_two_verdict,
    varying_params,
    verdict_names,
)
from sweeps.selectors.ratings import human_shares, sweep_agreement
from sweeps.selectors.runs import scorer_means
from sweeps.selectors.shares import share_check_sweep, share_path, share_sweeps
from sweeps.selectors.sweeps import (
    latest_sweeps,
    scorer_names,
    sweep_history,
    sweep_latest_figures,
    sweep_page_facts,
    sweep_progress,
    sweep_shown,
)
from sweeps.services import ServiceError, tokens
from sweeps.services.sweeps import ALLOWED, sweep_start, sweep_transition
from sweeps.web import charts

PAGE_SIZE = 50  # experiments per list page, runs per leaderboard page
# The runs the charts show: enough to see the shape, few enough to redraw live; beyond it the
# best CHART_TOP and an even sample of the rest.
CHART_RUNS = 500
CHART_TOP = 250
FEED_SIZE = 20  # events the page starts with; the browser keeps up to 50 as more arrive


# --- experiments list ---


@dataclass
class ListRow:
    experiment: Experiment
    sweep: Sweep | None

    @property
    def done(self) -> int:
        return self.sweep.done if self.sweep else 0

    @property
    def tokens(self) -> str:
        return formatting.count(self.sweep.tokens_in + self.sweep.tokens_out) if self.sweep else ""

    @property
    def last_activity(self) -> datetime:
        times = [self.experiment.updated_at]
        if self.sweep:
            times += [t for t in (self.sweep.updated_at, self.sweep.heartbeat_at, self.sweep.finished_at) if t]
        return max(times)


def list_context(request: HttpRequest) -> dict[str, Any]:
    query = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    status = status if status in Experiment.Status.values else ""
    experiments = experiment_search(user=request.user, status=status or None, search=query or None)
    page = Paginator(experiments, PAGE_SIZE).get_page(request.GET.get("page"))
    experiments_shown = list(page)
    rows = [ListRow(e, s) for e, s in zip(experiments_shown, latest_sweeps(experiments_shown), strict=True)]
    return {"rows": rows, "page": page, "query": query, "status": status, "statuses": Experiment.Status.values}


@login_required
def experiment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "sweeps/experiment_list.html", list_context(request))


@login_required
def experiment_list_live(request: HttpRequest) -> HttpResponse:
    """The list's table alone, re-fetched by the browser when one of the user's sweeps changes."""
    return render(request, "sweeps/list_table.html", list_context(request))


# --- experiment page ---


def actions(sweep: Sweep | None, allowed: list[str]) -> list[str]:
    """The controls to offer now: a new sweep once the last one is over, else what it allows."""
    return (["start"] if sweep is None or sweep.status in Sweep.FINISHED else []) + allowed


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes = round(seconds / 60)
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def feed_item(at: datetime, kind: str, text: str) -> dict[str, Any]:
    return {"at": at, "type": kind, "css": kind.replace(".", "-"), "text": text}


def feed(sweep: Sweep) -> list[dict[str, Any]]:
    """The last known events, rebuilt from the rows (the socket only tells what happens next),
    worded as static/sweeps/experiment.js words the live ones."""
    items = [feed_item(sweep.created_at, "sweep.queued", f"Sweep {sweep.pk} queued")]
    if sweep.started_at:
        items.append(feed_item(sweep.started_at, "sweep.started", f"Sweep {sweep.pk} started"))
    if sweep.status in (*Sweep.FINISHED, Sweep.Status.PAUSED):
        reason = f" ({sweep.stopped_reason})" if sweep.stopped_reason not in ("", sweep.status) else ""
        at = sweep.finished_at or sweep.updated_at
        items.append(feed_item(at, f"sweep.{sweep.status}", f"Sweep {sweep.pk} {sweep.status}{reason}"))
    for run in runs_recently_finished(sweep, limit=FEED_SIZE):
        score = f" · score {run['score']:.3f}" if run["score"] is not None else ""
        kind = f"run.{run['status']}" if run["status"] in ("failed", "pruned") else "run.completed"
        items.append(feed_item(run["finished_at"], kind, f"Run {run['id']} {run['status']}{score}"))
    return sorted(items, key=lambda item: item["at"], reverse=True)[:FEED_SIZE]


def truncated(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def param_cell(value: Any) -> dict[str, str]:
    """A parameter's cell: cut to fit the table (a prompt is long), whole in its tooltip."""
    full = formatting.param(value)
    return {"text": truncated(full), "full": full}


def shared_params(runs: list[Run], varying: list[str]) -> list[tuple[str, str]]:
    """The parameters every shown run has alike: one line above the table, not a column each."""
    if not runs:
        return []
    first = flatten(runs[0].config)
    return [(key, truncated(formatting.param(value), 80)) for key, value in sorted(first.items()) if key not in varying]


def per_dollar(run: Run) -> str:
    """The score / $ cell: a dash while unscored, "free" when it cost nothing (nothing to divide by)."""
    if run.score is None:
        return "–"
    value = run.score_per_dollar
    if value is None:
        return "free"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def certainty(run: Run) -> str:
    """The interval cell: the 95 % interval, and with repeats the spread and consistency."""
    if run.score_ci_low is None:
        return ""
    text = f"{run.score_ci_low:.2f}–{run.score_ci_high:.2f}"
    if run.score_spread is not None:
        text += f" · ±{run.score_spread:.3f}"
    if run.consistency is not None:
        text += f" · {run.consistency:.0%} consistent"
    return text


def leaderboard_rows(
    runs: list[Run], params: list[str], first_rank: int, front: set[int], scorers: int
) -> list[dict[str, Any]]:
    """Cells as text, formatted here rather than by template filters: with 50 rows of a dozen
    cells, floatformat alone would take a good share of the page's time budget. `front`: the
    ids of the runs on the Pareto front over score, cost and latency; `scorers`: how many
    columns of scorer means the table has."""
    means = scorer_means(runs, live=False)
    human = human_shares(run.pk for run in runs)  # none rated: no `human` column, the table stays narrow
    return [
        {
            "rank": rank,
            "id": run.pk,
            "status": run.status,
            "status_text": formatting.run_status(run.status, run.samples_failed),
            "score": "–" if run.score is None else f"{run.score:.3f}",
            "certainty": certainty(run),
            "scorer_means": formatting.scorer_means(means[run.pk], scorers),
            "human": human_cell(human.get(run.pk)) if human else None,
            "values": [param_cell(get_path(run.config, p, "")) for p in params],
            "tokens": formatting.count(run.tokens_in + run.tokens_out),
            "cost": f"${run.cost_usd:.5f}",
            "per_dollar": per_dollar(run),
            "latency": "" if run.latency_ms is None else f"{run.latency_ms:.0f} ms",
            "front": run.pk in front,
            "truncated": run.samples_truncated,
        }  # fmt: skip
        for rank, run in enumerate(runs, start=first_rank)
    ]


def human_cell(share: dict[str, Any] | None) -> str:
    """The share of 👍 among a run's ratings, with how many there are: "75 % (3/4)"."""
    return "–" if share is None else f"{share['share']:.0%} ({share['up']}/{share['count']})".replace("%", " %")


def agreement_context(sweep: Sweep, scorers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each llm_judge's agreement with the ratings, worded for the page; only judges with rated
    samples (with none, there is nothing to say yet)."""
    shown = []
    for found in sweep_agreement(sweep, scorers):
        if not found["pairs"]:
            continue
        kappa = f"κ = {found['kappa']:.2f}" if found["kappa"] is not None else f"κ {found['kappa_note']}"
        shown.append({**found, "percent": f"{found['accuracy']:.0%}".replace("%", " %"), "kappa_text": kappa})
    return shown


def verdict_context(sweep: Sweep, ranked: list[int]) -> dict[str, Any] | None:
    """Whether the top two runs differ, worded for the page (None until two have finished)."""
    verdict = top_two_verdict(sweep)
    if verdict is None:
        return None
    first_name, second_name = verdict_names(sweep, verdict["run_ids"], ranked=ranked)
    return {**verdict, "first": verdict["run_ids"][0], "second": verdict["run_ids"][1],
            "first_name": first_name, "second_name": second_name,
            "p": f"= {verdict['p_value']:.2g}" if verdict["p_value"] >= 0.001 else "< 0.001",
            "interval": f"{verdict['ci_low']:+.3f} to {verdict['ci_high']:+.3f}"}  # fmt: skip


def charts_context(figures: dict[str, Any]) -> dict[str, Any]:
    return {"charts": figures, "charts_json": charts.json_script(figures, "charts-data")}


def live_context(request: HttpRequest, experiment: Experiment, share: ShareLink | None = None) -> dict[str, Any]:
    """What the live part of the experiment page shows. Reads runs, never samples, in a fixed
    number of queries, so the page costs the same at 100 samples or 100,000. With a share link:
    read-only (the templates hide every control) and only the sweeps the link covers."""
    history = sweep_history(experiment)
    if share is not None:
        share_check_sweep(share, request.GET.get("sweep"))
        history = share_sweeps(share, history)
    sweep = sweep_shown(experiment, request.GET.get("sweep"), history)
    shared = {"share": share, "share_base": share_path(share) if share else ""}
    if sweep is None:
        return {"experiment": experiment, "sweep": None, "actions": actions(None, []) if share is None else [],
                **shared, **charts_context({"runs": 0})}  # fmt: skip
    # An earlier sweep is shown for reading: its controls are the latest's, on the latest's page.
    latest = not history or history[0].pk == sweep.pk
    progress = sweep_progress(sweep)
    drawn = chart_runs(sweep, limit=CHART_RUNS, top=CHART_TOP)
    params = varying_params(drawn) if drawn else []
    order = leaderboard_order(request.GET.get("order"))
    page = Paginator(run_leaderboard(sweep, order=order), PAGE_SIZE).get_page(request.GET.get("page"))
    # Page 1 by score: the charts' runs already have it.
    reuse = page.number == 1 and order == LEADERBOARD_DEFAULT
    shown = drawn[:PAGE_SIZE] if reuse else list(page)
    scorers, raw_params = sweep_page_facts(sweep)
    names = scorer_names(scorers)
    log_params = {key for key, value in raw_params.items() if isinstance(value, dict) and value.get("log")}
    finished = run_history(sweep)
    return {
        "experiment": experiment,
        "sweep": sweep,
        "actions": actions(sweep, progress["allowed_actions"]) if latest and share is None else [],
        **shared,
        "history": history,
        "latest": latest,
        "sweep_query": "" if latest else f"sweep={sweep.pk}&",
        "done": sweep.done,
        "progress_text": progress["progress_text"],
        "tokens": sweep.tokens_in + sweep.tokens_out,
        "eta": duration(progress["eta_seconds"]),
        "params": params,
        "param_heads": [path.split(".") for path in params],  # broken at the dots when the column is narrow
        "scorer_names": names,
        "shared_params": shared_params(drawn, params),
        "rows": leaderboard_rows(shown, params, page.start_index(), set(pareto_run_ids(sweep)), len(names)),
        "page": page,
        "order": order,
        "orders": LEADERBOARD_ORDERS.items(),
        # Pagination links keep the sort; the sort links start again at page 1.
        "order_query": "" if order == LEADERBOARD_DEFAULT else f"{urlencode({'order': order})}&",
        "chart_limit": CHART_RUNS,
        "chart_top": CHART_TOP,
        "verdict": verdict_context(sweep, [run.pk for run in drawn]),  # the charts' runs: best first
        "agreement": agreement_context(sweep, scorers),
        # While the sweep is active the browser redraws charts less often than the table.
        **charts_context(
            {
                **charts.figures(
                    drawn,
                    params,
                    finished,
                    log_params=log_params,
                    importances=sweep_importances(sweep, raw_params, finished),
                ),
                "active": sweep.is_active,
            }  # fmt: skip
        ),
    }


@login_required
def experiment_detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_page_get(user=request.user, experiment_id=experiment_id)
    context = live_context(request, experiment)
    context["feed"] = feed(context["sweep"]) if context["sweep"] else []
    context["plotly_js_url"] = reverse("plotly_js", args=[charts.plotly_js_version()])
    return render(request, "sweeps/experiment_detail.html", context)


@login_required
def experiment_live(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """The part of the experiment page that events change, re-rendered on the server."""
    experiment = experiment_page_get(user=request.user, experiment_id=experiment_id)
    return render(request, "sweeps/live.html", live_context(request, experiment))


def from_script(request: HttpRequest) -> bool:
    """Whether static/sweeps/experiment.js sent the request (it then wants a fragment, not a page)."""
    return request.headers.get("X-Requested-With") == "fetch"


@login_required
@require_POST
def sweep_control(request: HttpRequest, experiment_id: int, action: str) -> HttpResponse:
    """Start, pause, resume or stop, through the same services as the API and the admin. A plain
    form post is redirected back to the page; the page's script gets the live part at once (or
    the refusal, 409), so the controls work without reloading the page."""
    experiment = experiment_page_get(user=request.user, experiment_id=experiment_id)
    try:
        if action == "start":
            sweep_start(experiment=experiment, started_by=request.user, via=Experiment.Source.WEB)
        elif action in ALLOWED:
            sweep = sweep_latest_figures(experiment)
            if sweep is None:
                raise ServiceError("This experiment has no sweep yet: start one.")
            sweep_transition(sweep=sweep, action=action)
        else:
            raise Http404
    except ServiceError as e:
        if from_script(request):
            return HttpResponse(str(e), status=409, content_type="text/plain; charset=utf-8")
        messages.error(request, str(e))
    if from_script(request):
        return render(request, "sweeps/live.html", live_context(request, experiment))
    return redirect("experiment_detail", experiment_id=experiment.pk)


# The URL names plotly.js's version, so a year of caching is safe: an upgrade changes the URL.
# No login: it is the public library, and the login page may one day want it too.
@cache_control(public=True, max_age=365 * 24 * 3600, immutable=True)
def plotly_js(request: HttpRequest, version: str) -> FileResponse:
    """plotly.min.js from the installed plotly package: offline, never a CDN, never committed."""
    if version != charts.plotly_js_version():
        raise Http404("No such plotly.js version")
    return FileResponse(charts.plotly_js_path().open("rb"), content_type="text/javascript; charset=utf-8")


@never_cache  # the response to a POST holds a new raw token: no cache, no back-button copy
@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The user's API tokens, and a form for a new one. A new token is shown in the response to
    the POST that made it, and nowhere else: it is never kept in the session (which is in the
    database), so reloading the list does not show it again."""
    created, raw, name = None, None, ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            created, raw = tokens.token_create(user=request.user, name=name)
        except ServiceError as e:
            messages.error(request, str(e))
    context = {"tokens": tokens.token_list(user=request.user), "created": created, "raw": raw, "name": name}
    return render(request, "sweeps/tokens.html", context)


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = tokens.token_get(user=request.user, token_id=token_id)
    try:
        tokens.token_revoke(token=token)
    except ServiceError as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Token {token} revoked: requests with it are refused from now on.")
    return redirect("api_tokens")

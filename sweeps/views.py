"""Server-rendered pages. Thin: they read through selectors and change state through services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from sweeps import selectors, services, tokens
from sweeps.engine.space import get_path


def live_context(experiment) -> dict:
    sweep = selectors.sweep_latest(experiment)
    runs = selectors.leaderboard(sweep) if sweep else []
    params = selectors.varying_params(runs) if runs else []
    return {
        "experiment": experiment,
        "sweep": sweep,
        "params": params,
        "rows": [(run, [get_path(run.config, p, "") for p in params]) for run in runs],
        "allowed": [a for a, states in services.ALLOWED.items() if sweep and sweep.status in states],
    }


@login_required
def experiment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "sweeps/experiment_list.html", {"experiments": selectors.experiment_list(user=request.user)})


@login_required
def experiment_detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    return render(request, "sweeps/experiment_detail.html", live_context(experiment))


@login_required
def experiment_live(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """The part of the experiment page that events change, re-rendered on the server."""
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    return render(request, "sweeps/live.html", live_context(experiment))


@login_required
@require_POST
def sweep_control(request: HttpRequest, experiment_id: int, action: str) -> HttpResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    try:
        if action == "start":
            services.sweep_start(experiment=experiment)
        elif action in services.ALLOWED:
            sweep = selectors.sweep_latest(experiment)
            if sweep is None:
                raise services.ServiceError("This experiment has no sweep yet: start one.")
            getattr(services, f"sweep_{action}")(sweep=sweep)
        else:
            raise Http404
    except services.ServiceError as e:
        messages.error(request, str(e))
    return redirect("experiment_detail", experiment_id=experiment.pk)


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(user=request.user, run_id=run_id)
    return render(request, "sweeps/run_detail.html", {"run": run, "samples": selectors.run_samples(run)})


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
        except services.ServiceError as e:
            messages.error(request, str(e))
    context = {"tokens": tokens.token_list(user=request.user), "created": created, "raw": raw, "name": name}
    return render(request, "sweeps/tokens.html", context)


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = tokens.token_get(user=request.user, token_id=token_id)
    try:
        tokens.token_revoke(token=token)
    except services.ServiceError as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Token {token} revoked: requests with it are refused from now on.")
    return redirect("api_tokens")

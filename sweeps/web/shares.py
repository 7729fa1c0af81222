"""Read-only share links: the pages a link's holder sees without logging in, and the owner's
page that makes and revokes links. The holder's pages reuse the owner's page contexts with the
link passed in, so they show the same figures; the templates then leave out every control,
and every link on them stays under /share/<token>/."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.defaults import page_not_found

from sweeps.selectors.experiments import experiment_page_get
from sweeps.selectors.shares import share_get, share_list, share_path, share_resolve, share_run_get, share_sample_get
from sweeps.selectors.sweeps import sweep_history
from sweeps.services import ServiceError, text_limits
from sweeps.services.shares import share_create, share_revoke
from sweeps.web import charts
from sweeps.web.runs import run_context
from sweeps.web.views import feed, live_context


def shared_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A holder's page: GET only, never cached (a revoked link must stop working at once), kept
    out of search engines, and its URL (the token) never sent on as a Referer; its 404 (a
    revoked or tampered link) too, as the token is still in that URL."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except Http404 as missing:
            response = page_not_found(request, missing)
        response["X-Robots-Tag"] = "noindex, nofollow"
        response["Referrer-Policy"] = "no-referrer"
        return response

    return require_GET(never_cache(guarded))


@shared_page
def share_experiment(request: HttpRequest, token: str) -> HttpResponse:
    link = share_resolve(token)
    context = live_context(request, link.experiment, share=link)
    context["feed"] = feed(context["sweep"]) if context["sweep"] else []
    context["plotly_js_url"] = reverse("plotly_js", args=[charts.plotly_js_version()])
    return render(request, "sweeps/experiment_detail.html", context)


@shared_page
def share_run(request: HttpRequest, token: str, run_id: int) -> HttpResponse:
    link = share_resolve(token)
    run = share_run_get(link, run_id)

    def text_url(sample_id: int) -> str:
        return reverse("share_sample_text", args=[token, sample_id])

    context = run_context(request, run, text_url, reviewer=None)
    context.update(share=link, share_base=share_path(link))
    return render(request, "sweeps/run_detail.html", context)


@shared_page
def share_sample_text(request: HttpRequest, token: str, sample_id: int) -> HttpResponse:
    sample = share_sample_get(share_resolve(token), sample_id)
    text = text_limits.full_text(sample, request.GET.get("part", ""))
    if text is None:
        raise Http404("No such text: ask for part=output, inputs.<column> or stages.<i>.system|prompt|output")
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


# --- the owner's page ---


def parse_sweep_id(raw: str) -> int | None:
    """The form's sweep choice: empty for every sweep, else a sweep's id."""
    raw = raw.strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise ServiceError(f"{raw[:40]!r} is not a sweep id: choose a sweep from the list, or all sweeps.")
    return int(raw)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def experiment_shares(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """The experiment's share links, and a form for a new one (all sweeps or one)."""
    experiment = experiment_page_get(user=request.user, experiment_id=experiment_id)
    if request.method == "POST":
        try:
            sweep_id = parse_sweep_id(request.POST.get("sweep", ""))
            link = share_create(user=request.user, experiment=experiment, sweep_id=sweep_id,
                                label=request.POST.get("label", ""))  # fmt: skip
        except ServiceError as e:
            messages.error(request, str(e))
        else:
            messages.success(request, f"Share link {link.pk} created: anyone with its URL can read what it covers.")
        return redirect("experiment_shares", experiment_id=experiment.pk)
    links = [
        {"link": link, "url": request.build_absolute_uri(share_path(link))}
        for link in share_list(user=request.user, experiment_id=experiment.pk)
    ]
    context = {"experiment": experiment, "links": links, "sweeps": sweep_history(experiment)}
    return render(request, "sweeps/shares.html", context)


@login_required
@require_POST
def experiment_share_revoke(request: HttpRequest, experiment_id: int, share_id: int) -> HttpResponse:
    link = share_get(user=request.user, share_id=share_id)
    if link.experiment_id != experiment_id:
        raise Http404("No such share link")
    try:
        share_revoke(link=link)
    except ServiceError as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Share link {link.pk} revoked: its URL now answers 404.")
    return redirect("experiment_shares", experiment_id=experiment_id)

"""Admin: experiments and providers are editable; results are read-only records.

Actions call the same services as the dashboard, API and CLI, and report per item.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from sweeps.engine.errors import SpecError
from sweeps.engine.spec import dump_spec_text, load_spec_text
from sweeps.models import (
    ApiToken,
    Experiment,
    Notification,
    Provider,
    Rating,
    ResponseCache,
    Run,
    RunSample,
    Score,
    ShareLink,
    SpecVersion,
    Sweep,
)
from sweeps.selectors.sweeps import sweep_latest
from sweeps.services import ServiceError, tokens
from sweeps.services.experiments import (
    experiment_check_editable,
    experiment_create,
    experiment_update,
    validate_spec,
)
from sweeps.services.shares import share_revoke
from sweeps.services.sweeps import sweep_pause, sweep_resume, sweep_start, sweep_stop


def apply_to_each(
    modeladmin: admin.ModelAdmin, request: HttpRequest, items: QuerySet, action: Callable, done: str
) -> None:
    for item in items:
        try:
            result = action(item)
        except ServiceError as e:
            modeladmin.message_user(request, f"{item}: {e}", messages.WARNING)
        else:
            modeladmin.message_user(request, f"{item}: {done.format(result=result)}", messages.SUCCESS)


def latest_sweep(experiment: Experiment) -> Sweep:
    sweep = sweep_latest(experiment)
    if sweep is None:
        raise ServiceError("has no sweep yet")
    return sweep


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ExperimentForm(forms.ModelForm):
    """The spec is one YAML field, as in the editor and the CLI's file, and goes through the same
    validation: every bad field is named, and a paused sweep limits what may change."""

    spec_text = forms.CharField(
        label="Spec",
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "spellcheck": "false"}),
        help_text="YAML or JSON, as README's “The spec” describes.",
    )

    class Meta:
        model = Experiment
        fields = ["owner"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["spec_text"].initial = dump_spec_text(self.instance.spec)

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            self.spec = validate_spec(load_spec_text(cleaned["spec_text"]))
            if self.instance.pk:
                experiment_check_editable(experiment=self.instance, spec=self.spec)
        except SpecError as e:
            raise forms.ValidationError([str(err) for err in e.errors]) from None
        except ServiceError as e:
            raise forms.ValidationError(str(e)) from None
        return cleaned


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    list_display = ["id", "name", "owner", "status", "updated_at"]
    list_filter = ["status", "owner"]
    search_fields = ["name", "description"]
    readonly_fields = ["status", "created_at", "updated_at"]
    actions = ["start_sweep", "pause_sweep", "resume_sweep", "stop_sweep"]

    def save_model(self, request, obj: Experiment, form, change: bool) -> None:
        data, text = form.spec.to_dict(), form.cleaned_data["spec_text"]
        if change:
            experiment_update(experiment=obj, data=data, text=text, author=request.user, via=Experiment.Source.ADMIN)
        else:
            obj.pk = experiment_create(owner=obj.owner, data=data, source=Experiment.Source.ADMIN, text=text).pk
            obj.refresh_from_db()

    @admin.action(description="Start a sweep")
    def start_sweep(self, request, queryset):
        apply_to_each(
            self,
            request,
            queryset,
            lambda e: sweep_start(experiment=e, started_by=request.user, via=Experiment.Source.ADMIN),
            "sweep {result.pk} queued",
        )

    @admin.action(description="Pause the latest sweep")
    def pause_sweep(self, request, queryset):
        apply_to_each(self, request, queryset, lambda e: sweep_pause(sweep=latest_sweep(e)), "paused")

    @admin.action(description="Resume the latest sweep")
    def resume_sweep(self, request, queryset):
        apply_to_each(self, request, queryset, lambda e: sweep_resume(sweep=latest_sweep(e)), "resumed")

    @admin.action(description="Stop the latest sweep")
    def stop_sweep(self, request, queryset):
        apply_to_each(self, request, queryset, lambda e: sweep_stop(sweep=latest_sweep(e)), "stopped")


@admin.register(SpecVersion)
class SpecVersionAdmin(ReadOnly):
    """The history of a spec, to read: every save that changed it made one (services.versions).
    Nobody deletes one here, as sweeps name the version they ran; they go with their experiment."""

    list_display = ["id", "experiment", "number", "author", "via", "created_at"]
    list_filter = ["via"]
    search_fields = ["experiment__name", "author__username", "text"]
    list_select_related = ["experiment", "author"]
    readonly_fields = ("experiment", "number", "author", "via", "created_at", "text", "spec")
    fields = readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Sweep)
class SweepAdmin(ReadOnly):
    list_display = ["id", "experiment", "status", "stopped_reason", "completed", "failed", "pruned", "total",
                    "tokens_in", "tokens_out", "cost_usd", "best_score", "started_at", "finished_at"]  # fmt: skip
    list_filter = ["status", "stopped_reason"]
    search_fields = ["experiment__name", "job_id"]
    list_select_related = ["experiment"]
    actions = ["pause", "resume", "stop"]

    @admin.action(description="Pause selected sweeps")
    def pause(self, request, queryset):
        apply_to_each(self, request, queryset, lambda s: sweep_pause(sweep=s), "paused")

    @admin.action(description="Resume selected sweeps")
    def resume(self, request, queryset):
        apply_to_each(self, request, queryset, lambda s: sweep_resume(sweep=s), "resumed")

    @admin.action(description="Stop selected sweeps")
    def stop(self, request, queryset):
        apply_to_each(self, request, queryset, lambda s: sweep_stop(sweep=s), "stopped")


@admin.register(Run)
class RunAdmin(ReadOnly):
    list_display = ["id", "experiment", "sweep", "status", "score", "samples_failed", "tokens_in", "tokens_out",
                    "cost_usd", "latency_ms", "round"]  # fmt: skip
    list_filter = ["status"]
    search_fields = ["experiment__name", "config_hash"]
    list_select_related = ["experiment"]


class ScoreInline(admin.TabularInline):
    model = Score
    extra = 0
    can_delete = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RunSample)
class RunSampleAdmin(ReadOnly):
    list_display = ["id", "run", "row_index", "replicate", "status", "score", "cache_hit", "tokens_in", "tokens_out",
                    "attempts", "lease_owner"]  # fmt: skip
    list_filter = ["status", "cache_hit"]
    search_fields = ["output", "error"]
    inlines = [ScoreInline]


@admin.register(Rating)
class RatingAdmin(ReadOnly):
    """People's 👍/👎 on samples, to read: they rate on the run and compare pages."""

    list_display = ["id", "sample_id", "run_id", "user", "value", "note", "updated_at"]
    list_filter = ["value"]
    search_fields = ["note"]
    raw_id_fields = ["sample", "run"]
    list_select_related = ["user"]  # not the sample and run, whose rows hold texts and configs


@admin.register(ResponseCache)
class ResponseCacheAdmin(ReadOnly):
    list_display = ["key", "provider", "model", "tokens_in", "tokens_out", "cost_usd", "hits", "created_at"]
    list_filter = ["provider"]
    search_fields = ["key", "model", "text"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "availability", "base_url", "api_key_env", "requests_per_minute",
                    "tokens_per_minute", "price_in_per_mtok", "price_out_per_mtok", "enabled"]  # fmt: skip
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]

    @admin.display(description="available")
    def availability(self, provider: Provider) -> str:
        available, reason = provider.availability()
        return "yes" if available else f"no: {reason}"


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnly):
    """Tokens are made by their owners (the account page or `create_api_token`), where the raw
    token can be shown once; here they can only be looked at, revoked or deleted. The digest
    is never displayed: it is not secret on its own, but it is of no use to anyone here."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    fields = readonly_fields
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        # ReadOnly refuses "change" to everyone; revoking needs the permission all the same.
        return request.user.has_perm("sweeps.change_apitoken")

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        apply_to_each(self, request, queryset, lambda t: tokens.token_revoke(token=t), "revoked")


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnly):
    """Links are made by their experiment's owner (the Share page or the API); here they can be
    looked at and revoked. The URL is not shown: it is the owner's to hand out."""

    list_display = ["id", "experiment", "sweep", "label", "created_by", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["label", "experiment__name", "created_by__username"]
    list_select_related = ["experiment", "sweep", "created_by"]
    readonly_fields = ("experiment", "sweep", "label", "created_by", "created_at", "revoked_at")
    fields = readonly_fields
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sweeps.change_sharelink")

    @admin.action(description="Revoke selected share links", permissions=["revoke"])
    def revoke(self, request, queryset):
        apply_to_each(self, request, queryset, lambda link: share_revoke(link=link), "revoked")


@admin.register(Notification)
class NotificationAdmin(ReadOnly):
    """Made by their owners (the Notifications page or the API), where a webhook's secret can be
    shown once and its URL checked against PROMPTLOOPER_WEBHOOK_ALLOW; here they can be looked at
    or deleted. The salt is never displayed: with SECRET_KEY it is the signing secret."""

    list_display = ["owner", "webhook_url", "email", "events", "experiment", "active", "last_ok", "last_sent_at"]
    list_filter = ["active", "last_ok"]
    search_fields = ["owner__username", "webhook_url", "email"]
    list_select_related = ["owner", "experiment"]
    readonly_fields = ("owner", "experiment", "webhook_url", "email", "events", "active", "created_at", "last_event",
                       "last_sent_at", "last_ok", "last_result")  # fmt: skip
    fields = readonly_fields

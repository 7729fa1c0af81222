"""Experiments, their sweeps, the runs a sweep evaluates and the samples workers claim.

The database is the source of truth: a sweep's job is a disposable executor that claims
pending samples, so a crash or a second worker never loses or repeats work.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from sweeps.engine.ranking import score_per_dollar
from sweeps.engine.spec import ExperimentSpec, parse_spec
from sweeps.providers.keys import key_env_problem
from sweeps.providers.prices import model_price


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def non_negative(model: str, *fields: str) -> list[models.BaseConstraint]:
    return [models.CheckConstraint(condition=Q(**{f"{f}__gte": 0}), name=f"{model}_{f}_non_negative") for f in fields]


class SweepStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"


class Experiment(TimeStamped):
    class Status(models.TextChoices):
        DRAFT = "draft"
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        STOPPED = "stopped"
        COMPLETED = "completed"
        FAILED = "failed"

    class Source(models.TextChoices):  # where it was created: lists tell CI's experiments from hand-made ones
        WEB = "web"
        API = "api"
        CLI = "cli"
        ADMIN = "admin"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="experiments")
    # The spec, as parse_spec's normal form: the one stored copy, written only by
    # services.experiments.experiment_save after validation. Name and description are copied
    # out of it there, because lists show and search them without loading the whole spec.
    spec = models.JSONField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    source = models.CharField(max_length=8, choices=Source.choices, blank=True)  # blank: made before it was kept

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.name

    def parsed_spec(self) -> ExperimentSpec:
        """The stored spec as the engine's types (it was validated when saved)."""
        return parse_spec(self.spec, max_grid=settings.PROMPTLOOPER_MAX_GRID)


class SpecVersion(models.Model):
    """One saved state of an experiment's spec: the text as its author typed it (comments and
    layout kept) and the validated normal form that sweeps of it ran. Written only by
    services.versions.version_record, when the normal form changes (a resave that changes only
    comments or layout replaces the latest's text)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()  # 1, 2, … per experiment
    text = models.TextField()
    spec = models.JSONField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=8, choices=Experiment.Source.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["experiment_id", "-number"]  # the column: "experiment" would join and order by its ordering
        constraints = [models.UniqueConstraint(fields=["experiment", "number"], name="spec_version_unique_number")]

    def __str__(self) -> str:
        return f"Version {self.number} of {self.experiment_id}"


class Sweep(TimeStamped):
    Status = SweepStatus
    ACTIVE = (SweepStatus.QUEUED, SweepStatus.RUNNING)
    FINISHED = (SweepStatus.COMPLETED, SweepStatus.STOPPED, SweepStatus.FAILED)

    class Reason(models.TextChoices):
        COMPLETED = "completed"
        STOPPED = "stopped"
        PAUSED = "paused"
        TOKEN_BUDGET = "token_budget"
        COST_BUDGET = "cost_budget"
        INTERRUPTED = "interrupted"  # the worker died; resume continues with what is unfinished
        PROVIDER_ERROR = "provider_error"  # a provider's quota ran out (fail_fast); resume once topped up
        RATE_LIMITED = "rate_limited"  # a provider kept answering 429 beyond the retries; resume later
        FAILED = "failed"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="sweeps")
    spec = models.JSONField()  # snapshot: editing the experiment never changes a sweep already made
    # Who started it, and through what (web, api, cli, admin): blank for sweeps from before
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_via = models.CharField(max_length=8, choices=Experiment.Source.choices, blank=True)
    # The API token that started it (null: the browser, the CLI, the admin, or before this was kept)
    started_token = models.ForeignKey("ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The version of the experiment's spec it ran (null for sweeps from before versions were kept)
    spec_version = models.ForeignKey(
        "SpecVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="sweeps"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stopped_reason = models.CharField(max_length=16, choices=Reason.choices, blank=True)
    error = models.TextField(blank=True)
    job_id = models.TextField(blank=True)  # the RQ job ids serving it, comma-separated
    max_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    max_cost_usd = models.FloatField(null=True, blank=True)
    rounds = models.PositiveIntegerField(default=0)  # proposal rounds made (guided search)
    total = models.PositiveIntegerField(default=0)  # samples created so far
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    cached = models.PositiveIntegerField(default=0)  # samples served wholly from the cache
    cached_calls = models.PositiveIntegerField(default=0)  # stage calls answered by the cache (what saved_* counts)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.FloatField(default=0)
    saved_tokens = models.PositiveBigIntegerField(default=0)  # what cache hits did not pay for
    saved_cost_usd = models.FloatField(default=0)
    pruned = models.PositiveIntegerField(default=0)  # samples early stopping spared (counted as done)
    pruned_tokens = models.PositiveBigIntegerField(default=0)  # estimated: what the pruned samples would have cost
    pruned_cost_usd = models.FloatField(default=0)
    best_score = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # last sign of life of an executor

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["experiment", "-created_at"]), models.Index(fields=["status"])]
        constraints = non_negative("sweep", "cost_usd", "saved_cost_usd", "pruned_cost_usd")

    def __str__(self) -> str:
        return f"Sweep {self.pk} of {self.experiment}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def done(self) -> int:
        """Samples finished: completed, failed, or spared by early stopping. Cancelled samples are
        not done (a stopped sweep never ran them), so they never fill the bar."""
        return self.completed + self.failed + self.pruned

    @property
    def progress(self) -> float:
        """The one progress rule (page, API, CLI): samples done of the samples the sweep made."""
        return self.done / self.total if self.total else 0.0


class Run(TimeStamped):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        PRUNED = "pruned"  # early stopping showed it worse than the best part-way: its score is on the rows it saw

    # Closed runs whose verdicts no longer change
    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="runs")
    round = models.PositiveIntegerField(default=0)
    config = models.JSONField()
    config_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    score = models.FloatField(null=True, blank=True)
    samples_total = models.PositiveIntegerField(default=0)
    samples_failed = models.PositiveIntegerField(default=0)
    samples_truncated = models.PositiveIntegerField(default=0, db_default=0)  # samples with an answer cut by max_tokens
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.FloatField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)  # mean per sample
    # How sure the score is, set when the run closes (engine/stats.py): a 95 % bootstrap interval
    # over the dataset's rows; with repeats, the spread of the per-replicate scores and the share
    # of rows whose replicates all agree on pass or fail.
    score_ci_low = models.FloatField(null=True, blank=True)
    score_ci_high = models.FloatField(null=True, blank=True)
    score_spread = models.FloatField(null=True, blank=True)
    consistency = models.FloatField(null=True, blank=True)
    # Each scorer's mean, in scorer order, as [{"name", "mean", "n"}], set when the run closes:
    # the weighted score's parts (selectors.runs.scorer_means reads them, live while it runs).
    scorer_means = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["sweep", "config_hash"], name="run_unique_config_per_sweep"),
            *non_negative("run", "cost_usd"),
        ]
        indexes = [
            models.Index(fields=["experiment", "-score"], name="run_leaderboard"),
            models.Index(fields=["sweep", "status"], name="run_sweep_status"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk}"

    @property
    def score_per_dollar(self) -> float | None:
        return score_per_dollar(self.score, self.cost_usd)


# RunSample.UNFINISHED, as plain values: the partial index's condition, which a migration freezes
OPEN_STATUSES = ("pending", "running", "waiting")


class RunSample(models.Model):
    """One dataset row (and replicate) through the pipeline for a run: the unit workers claim."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        PRUNED = "pruned"  # never run: early stopping stopped its configuration first
        WAITING = "waiting"  # early stopping holds it back until every configuration finished the rung before

    # Samples that count in their run's score (a failed one as 0)
    SCORED = (Status.COMPLETED, Status.FAILED)
    NOT_SCORED = (Status.CANCELLED, Status.PRUNED)
    UNFINISHED = (Status.PENDING, Status.RUNNING, Status.WAITING)
    # What the current round still owes: waiting samples belong to a later rung of early stopping
    IN_ROUND = (Status.PENDING, Status.RUNNING)

    # No index of their own: the unique (run, row_index, replicate) and the claim index
    # (sweep, status, id) lead with these columns and serve every lookup, and each index is one
    # more write per sample on the hottest table.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="samples", db_index=False)
    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="samples", db_index=False)
    row_index = models.PositiveIntegerField()
    replicate = models.PositiveIntegerField(default=0)
    inputs = models.JSONField(default=dict)
    stages = models.JSONField(default=list)  # per stage: model, rendered prompt, output, tokens, cached
    output = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    score = models.FloatField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    cache_hit = models.BooleanField(default=False)
    truncated = models.BooleanField(
        default=False, db_default=False
    )  # a call ended with finish_reason "length" (max_tokens cut it)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    input_items: list[tuple[str, Any]]  # not a column: the run page sets it, sorted for the template
    user_rating: Rating | None  # not a column: the run and compare pages set the viewer's rating

    class Meta:
        ordering = ["run_id", "row_index", "replicate"]
        constraints = [
            models.UniqueConstraint(fields=["run", "row_index", "replicate"], name="sample_unique_per_run_row"),
            *non_negative("sample", "cost_usd"),
        ]
        # The claim query walks pending samples of one sweep in id order. Whether a run still has
        # open samples (after each batch of results) is a probe of the small partial index:
        # counting them would read a 100,000-sample run again after every batch.
        indexes = [
            models.Index(fields=["sweep", "status", "id"], name="sample_claim"),
            models.Index(fields=["run"], name="sample_open_by_run", condition=Q(status__in=OPEN_STATUSES)),
        ]

    def __str__(self) -> str:
        return f"Sample {self.pk} (run {self.run_id}, row {self.row_index}, replicate {self.replicate})"


class Score(models.Model):
    sample = models.ForeignKey(RunSample, on_delete=models.CASCADE, related_name="scores")
    scorer_index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    value = models.FloatField()
    passed = models.BooleanField()
    reason = models.TextField(blank=True)
    weight = models.FloatField(default=1)

    class Meta:
        ordering = ["sample_id", "scorer_index"]
        constraints = [
            models.UniqueConstraint(fields=["sample", "scorer_index"], name="score_unique_per_scorer"),
            models.CheckConstraint(condition=Q(value__gte=0) & Q(value__lte=1), name="score_value_in_0_1"),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value:.2f}"


class Rating(TimeStamped):
    """A person's 👍/👎 on one sample, with an optional note: what a judge's verdicts are checked
    against. One per sample and user; rating again replaces it."""

    class Value(models.TextChoices):
        UP = "up"
        DOWN = "down"

    NOTE_MAX_LENGTH = 2000

    sample = models.ForeignKey(RunSample, on_delete=models.CASCADE, related_name="ratings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    # The sample's run, copied: the leaderboard's share of 👍 per run is then one grouped query
    # over this table, never a join through the samples.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="ratings")
    value = models.CharField(max_length=4, choices=Value.choices)
    note = models.TextField(max_length=NOTE_MAX_LENGTH, blank=True)

    class Meta:
        ordering = ["sample_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["sample", "user"], name="rating_unique_per_sample_user"),
            models.CheckConstraint(condition=Q(value__in=["up", "down"]), name="rating_value_up_or_down"),
        ]
        indexes = [models.Index(fields=["run", "value"], name="rating_by_run")]

    def __str__(self) -> str:
        return f"{self.value} on sample {self.sample_id} by user {self.user_id}"


class ResponseCache(models.Model):
    """One provider response, keyed by the canonical request (never the API key or base URL)."""

    key = models.CharField(max_length=64, unique=True)
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200)
    text = models.TextField()
    finish_reason = models.CharField(max_length=32, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(default=0)
    cost_usd = models.FloatField(default=0)
    tool_calls = models.JSONField(default=list, blank=True)  # [{"name", "arguments"}] the answer called
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = non_negative("cache", "cost_usd", "latency_ms")

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.key[:12]}"


DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
OPTIONS_HELP = (
    "JSON. HTTP providers: timeout_connect, timeout_read, timeout_total (seconds), max_connections; "
    "cache_namespace (text: change it to stop reusing cached answers of this provider); "
    "retry: {max_attempts, base, cap, max_wait}; prices: {model: [in, out]} in USD per million tokens. "
    "Mock: latency_ms, jitter, seed."
)
MAX_TIMEOUT_SECONDS = 86_400
OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "timeout_connect": (int, float), "timeout_read": (int, float), "timeout_total": (int, float), "max_connections": int,
    "cache_namespace": str,
    "retry": dict, "prices": dict, "latency_ms": (int, float), "jitter": (int, float), "seed": int,
}  # fmt: skip


def provider_options_problems(kind: str, options: Any) -> list[str]:
    if not isinstance(options, dict):
        return ["must be a JSON object"]
    problems = []
    for key, value in options.items():
        expected = OPTION_TYPES.get(key)
        if expected is None:
            problems.append(f"unknown option {key!r} (known: {', '.join(OPTION_TYPES)})")
        elif isinstance(value, bool) or not isinstance(value, expected):
            problems.append(f"{key} has the wrong type")
    for key in ("timeout_connect", "timeout_read", "timeout_total"):
        value = options.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and not 0 < value <= MAX_TIMEOUT_SECONDS:
            problems.append(f"{key} must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds")
    namespace = options.get("cache_namespace")
    if isinstance(namespace, str) and len(namespace) > 100:
        problems.append("cache_namespace must be at most 100 characters")
    retry = options.get("retry")
    if isinstance(retry, dict):
        unknown = set(retry) - {"max_attempts", "base", "cap", "max_wait"}
        if unknown:
            problems.append(f"retry accepts max_attempts, base, cap, max_wait; not {', '.join(sorted(unknown))}")
        elif not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in retry.values()):
            problems.append("retry values must be numbers >= 0")
        elif retry.get("max_attempts", 1) < 1 or retry.get("base", 0.5) > retry.get("cap", 30):
            problems.append("retry needs max_attempts >= 1 and base <= cap")
    for model, price in (options.get("prices") or {}).items():
        if not (
            isinstance(price, list) and len(price) == 2 and all(isinstance(p, int | float) and p >= 0 for p in price)
        ):
            problems.append(f"prices.{model} must be [input, output] USD per million tokens")
    return problems


class Provider(TimeStamped):
    class Kind(models.TextChoices):
        OPENAI = "openai"
        ANTHROPIC = "anthropic"
        MOCK = "mock"

    name = models.SlugField(max_length=50, unique=True)  # the prefix in "provider/model"
    kind = models.CharField(max_length=16, choices=Kind.choices)
    base_url = models.URLField(blank=True)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable holding the key (never the key)"
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    price_in_per_mtok = models.FloatField(default=0, help_text="USD per million input tokens")
    price_out_per_mtok = models.FloatField(default=0, help_text="USD per million output tokens")
    options = models.JSONField(default=dict, blank=True, help_text=OPTIONS_HELP)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = non_negative("provider", "price_in_per_mtok", "price_out_per_mtok")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if problems := provider_options_problems(self.kind, self.options):
            errors["options"] = problems
        if problem := key_env_problem(self.api_key_env):
            errors["api_key_env"] = problem
        if errors:
            raise ValidationError(errors)

    def availability(self) -> tuple[bool, str]:
        """Whether sweeps can use this provider now, and if not, what to do about it."""
        if not self.enabled:
            return False, "disabled in the admin"
        if problem := key_env_problem(self.api_key_env):
            return False, f"api_key_env: {problem}"
        if self.key_required() and not os.environ.get(self.api_key_env):
            return False, f"set the environment variable {self.api_key_env}"
        return True, ""

    def key_required(self) -> bool:
        """Whether calls need the key in `api_key_env`. Not with an empty `api_key_env` (a keyless
        server), nor for the openai row pointed at OPENAI_BASE_URL (a local server, which needs
        none; it gets the key when OPENAI_API_KEY is set all the same)."""
        if self.kind == self.Kind.MOCK or not self.api_key_env:
            return False
        return not (self.kind == self.Kind.OPENAI and not self.base_url and os.environ.get("OPENAI_BASE_URL"))

    def api_key(self) -> str | None:
        """Read from the environment at the moment of use; never stored, never logged, and never
        from a variable the rules refuse (a row saved before them, or edited in the database)."""
        if not self.api_key_env or key_env_problem(self.api_key_env):
            return None
        return os.environ.get(self.api_key_env)

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url
        if self.kind == self.Kind.OPENAI and os.environ.get("OPENAI_BASE_URL"):
            return os.environ["OPENAI_BASE_URL"]
        return DEFAULT_BASE_URLS.get(self.kind, "")

    def price(self, model: str) -> tuple[float, float]:
        overrides = (self.options or {}).get("prices", {})
        return model_price(self.kind, model, overrides, (self.price_in_per_mtok, self.price_out_per_mtok))


class ApiToken(models.Model):
    """A bearer token for the JSON API. Only its sha256 digest is stored: the raw token is shown
    once, at creation. A plain fast hash is right here (not a password hasher) because the token
    is 32 random bytes: there is nothing to guess, so slowing down guesses buys nothing, and every
    API request can find its token with one indexed lookup."""

    PREFIX_LENGTH = 12  # "pl_" + 9 characters: enough to tell tokens apart, useless for guessing

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)  # what it is for ("ci"); names may repeat
    prefix = models.CharField(max_length=PREFIX_LENGTH)
    digest = models.CharField(max_length=64, unique=True)  # sha256 hex of the raw token; unique is indexed
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ShareLink(models.Model):
    """A read-only link to an experiment's pages for people without an account. Its URL carries
    the link's id signed with SECRET_KEY (sweeps.selectors.shares), so nothing secret is stored:
    revoking sets revoked_at, and deleting the experiment deletes its links."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="share_links")
    # None: the whole experiment, every sweep it has or will have; else that one sweep alone.
    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, null=True, blank=True, related_name="share_links")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    label = models.CharField(max_length=100, blank=True)  # whom it was given to ("reviewers")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        scope = f"sweep {self.sweep_id}" if self.sweep_id else "all sweeps"
        return f"Share {self.pk} of experiment {self.experiment_id} ({scope}){f' · {self.label}' if self.label else ''}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Notification(models.Model):
    """Where to tell a user that a sweep ended (completed, failed) or paused for its budget or its
    provider: a webhook, an e-mail, or both; for one experiment, or all the owner's (experiment null).
    The webhook's signing secret is not stored: it is derived from SECRET_KEY and `salt`
    (sweeps/services/notifications.py), so a copy of the database cannot forge deliveries."""

    EVENTS = ("completed", "failed", "budget", "provider")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    webhook_url = models.URLField(max_length=2000, blank=True)
    salt = models.CharField(max_length=64)
    email = models.EmailField(blank=True)
    events = models.JSONField(default=list)  # a subset of EVENTS
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The latest delivery, for its owner to see (they cannot read the worker's log)
    last_event = models.CharField(max_length=32, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_ok = models.BooleanField(null=True)
    last_result = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "active"])]

    def __str__(self) -> str:
        target = " and ".join(t for t in (self.webhook_url, self.email) if t)
        return f"{target} on {', '.join(self.events)}"

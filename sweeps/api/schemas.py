"""The API's input and output shapes, explicit field by field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Body, Field, Schema
from pydantic import StringConstraints

from sweeps.engine.spec_schema import spec_json_schema

MAX_PAGE = 200  # list endpoints never answer with more items than this


# Text a query parameter may hold: no NUL, which nothing stored contains and the database refuses
# (promptlooper/query_guard.py answers it 400). Saying so in the schema keeps clients' generators
# and the fuzzer from sending it as valid input.
QueryText = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]


class Message(Schema):
    detail: str


class Conflict(Schema):
    detail: str
    allowed: list[str] = []


class Page(Schema):
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=10**9)


# The body is taken whole: a Schema would drop the keys it does not know before they are reported.
SpecBody = Body[dict[str, Any]]


def spec_body_docs(*, partial: bool = False) -> dict[str, Any]:
    schema = spec_json_schema(partial=partial)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class SweepOut(Schema):
    id: int
    experiment_id: int
    status: str
    started_via: str = Field(description="how it was started: web, api, cli or admin (empty: before this was kept)")
    stopped_reason: str
    error: str
    rounds: int
    total: int
    completed: int
    failed: int
    cancelled: int
    cached: int = Field(description="samples the response cache answered wholly")
    cached_calls: int = Field(
        description="stage calls the response cache answered: what saved_tokens and saved_cost_usd add up"
    )
    tokens_in: int
    tokens_out: int
    cost_usd: float
    saved_tokens: int
    saved_cost_usd: float
    pruned: int = Field(description="samples early stopping spared (counted as finished in progress)")
    pruned_tokens: int = Field(description="estimated tokens the pruned samples would have used")
    pruned_cost_usd: float = Field(description="estimated cost the pruned samples would have had")
    best_score: float | None
    max_tokens: int | None
    max_cost_usd: float | None
    progress: float = Field(
        description="done (completed, failed or pruned; never cancelled) ÷ samples made so far, 0..1"
    )
    progress_text: str = Field(
        description='the same in words, as the page and the CLI say it: "224 of 720 done · 496 cancelled"'
    )
    eta_seconds: float | None = Field(description="at the rate so far; null until there is a rate")
    allowed_actions: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    spec_version: int | None = Field(
        description="the number of the spec version it ran (null: started before versions were kept)"
    )


class VersionOut(Schema):
    number: int
    author: str | None = Field(description="the username of who saved it (null: the user was deleted)")
    via: str = Field(description="how it was saved: web, api, cli or admin")
    created_at: datetime
    sweep_ids: list[int] = Field(description="the sweeps that ran this version, oldest first")


class VersionPage(Schema):
    items: list[VersionOut]
    count: int


class VersionDetail(VersionOut):
    text: str = Field(description="the spec as it was submitted (YAML or JSON; comments and layout kept)")
    spec: dict[str, Any] = Field(description="the validated normal form: what sweeps of this version ran")
    diff: str = Field(
        description="a unified diff of `text` against the previous version's (every line added for the first)"
    )


class ExperimentOut(Schema):
    id: int
    name: str
    description: str
    status: str
    source: str = Field(description="where it was created: web, api, cli or admin (empty: before this was kept)")
    created_at: datetime
    updated_at: datetime
    latest_sweep: SweepOut | None


class ExperimentDetail(ExperimentOut):
    spec: dict[str, Any]


class ExperimentPage(Schema):
    items: list[ExperimentOut]
    count: int


class SweepPage(Schema):
    items: list[SweepOut]
    count: int


class ScorerMean(Schema):
    name: str
    mean: float | None = Field(description="mean over the run's scored samples (a failed sample counts 0)")
    n: int = Field(description="samples counted")


class HumanShare(Schema):
    up: int = Field(description="samples people rated 👍")
    count: int = Field(description="ratings given")
    share: float = Field(description="up ÷ count")


HUMAN_DESCRIPTION = "people's ratings of the run's samples (share of 👍); null before any"


class RatingOut(Schema):
    value: Literal["up", "down"]
    note: str
    updated_at: datetime


class RatingIn(Schema):
    value: Literal["up", "down"] = Field(description="👍 up or 👎 down")
    note: str = Field("", max_length=2000, pattern=r"^[^\x00]*$", description="why, optional")


class AgreementOut(Schema):
    scorer: str = Field(description="the llm_judge scorer's name (its Score rows carry it)")
    scorer_index: int
    pairs: int = Field(description="samples with both the judge's verdict and a rating")
    agreed: int
    both_pass: int = Field(description="judge passed, rated 👍")
    judge_only: int = Field(description="judge passed, rated 👎")
    human_only: int = Field(description="judge failed, rated 👍")
    both_fail: int = Field(description="judge failed, rated 👎")
    accuracy: float | None = Field(description="agreed ÷ pairs; null without pairs")
    kappa: float | None = Field(description="Cohen's kappa: agreement beyond chance; null when undefined")
    kappa_note: str = Field(description="why kappa is null, when it is")


SCORES_DESCRIPTION = "each scorer's mean, in the spec's scorer order: the parts of the weighted score"


class RunOut(Schema):
    id: int
    sweep_id: int
    round: int
    status: str
    config: dict[str, Any]
    score: float | None
    samples_total: int
    samples_failed: int
    samples_truncated: int = Field(description="samples with an answer cut short by max_tokens (finish_reason length)")
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float | None
    score_per_dollar: float | None = Field(description="score ÷ cost; null when free or unscored")
    score_ci_low: float | None = Field(description="95 % bootstrap interval of the score over the dataset's rows")
    score_ci_high: float | None
    score_spread: float | None = Field(description="with repeats: std. deviation of the per-replicate scores")
    consistency: float | None = Field(description="with repeats: share of rows whose replicates all pass or all fail")
    scores: list[ScorerMean] = Field(default_factory=list, description=SCORES_DESCRIPTION)
    human: HumanShare | None = Field(None, description=HUMAN_DESCRIPTION)
    error: str
    started_at: datetime | None
    finished_at: datetime | None


class RunPage(Schema):
    items: list[RunOut]
    count: int


class ScoreOut(Schema):
    name: str
    value: float
    passed: bool
    reason: str
    weight: float


class SampleOut(Schema):
    id: int
    row_index: int
    replicate: int
    status: str
    inputs: dict[str, Any]
    stages: list[dict[str, Any]]
    output: str
    score: float | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float | None
    cache_hit: bool
    truncated: bool = Field(description='a call of this sample ended with finish_reason "length" (cut by max_tokens)')
    error: str
    attempts: int
    scores: list[ScoreOut]
    rating: RatingOut | None = Field(None, description="your 👍/👎 and note; PUT /samples/{id}/rating sets it")
    cut: list[str] = Field(
        default_factory=list,
        description="texts shortened to PROMPTLOOPER_SHOWN_TEXT_CHARS (output, inputs.<column>, "
        "stages.<i>.system|prompt|output); GET /runs/{id}/samples/{sid}/text?part=<name> gives one in full",
    )


class SamplePage(Schema):
    items: list[SampleOut]
    count: int


class RunDetail(RunOut):
    samples: SamplePage


class LeaderboardEntry(Schema):
    rank: int
    run_id: int
    status: str
    score: float | None
    params: dict[str, Any] = Field(description="the parameters that differ between runs, by dotted path")
    config: dict[str, Any]
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float | None
    samples_failed: int
    samples_truncated: int
    score_per_dollar: float | None = Field(description="score ÷ cost; null when free or unscored")
    score_ci_low: float | None = Field(description="95 % bootstrap interval of the score over the dataset's rows")
    score_ci_high: float | None
    score_spread: float | None = Field(description="with repeats: std. deviation of the per-replicate scores")
    consistency: float | None = Field(description="with repeats: share of rows whose replicates all pass or all fail")
    scores: list[ScorerMean] = Field(description=SCORES_DESCRIPTION)
    human: HumanShare | None = Field(None, description=HUMAN_DESCRIPTION)
    pareto: bool = Field(description="no run of the sweep beats it on score, cost and latency at once")


class Verdict(Schema):
    run_ids: list[int] = Field(description="the two best finished runs, best first")
    difference: float = Field(description="mean per-row score difference, first minus second")
    ci_low: float = Field(description="95 % paired bootstrap interval of the difference")
    ci_high: float
    p_value: float = Field(description="two-sided Wilcoxon signed-rank test on the per-row differences")
    rows: int
    alpha: float
    distinguishable: bool = Field(description="p_value < alpha: the order is unlikely to be noise")


class Leaderboard(Schema):
    sweep_id: int | None
    varying_params: list[str]
    entries: list[LeaderboardEntry]
    pareto_front: list[int] = Field(description="ids of the runs on the Pareto front over score, cost and latency")
    verdict: Verdict | None = Field(
        description="are the top two distinguishable? null with fewer than two finished runs"
    )


RunOrder = Literal[
    "-score", "score", "cost", "-cost", "latency", "-latency", "created", "-created", "-score_per_dollar"
]
RunStatus = Literal["pending", "running", "completed", "failed", "cancelled", "pruned"]
ExportFormat = Literal["csv", "jsonl"]
ExperimentStatus = Literal["draft", "queued", "running", "paused", "stopped", "completed", "failed"]


class ProviderOut(Schema):
    name: str
    kind: str
    base_url: str
    api_key_env: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    price_in_per_mtok: float
    price_out_per_mtok: float
    options: dict[str, Any]
    enabled: bool
    available: bool
    unavailable_reason: str = Field(description="what to do to make it available; empty when available")


class ProviderIn(Schema):
    name: str = Field(pattern=r"^[-a-zA-Z0-9_]+$", min_length=1, max_length=50)
    kind: Literal["openai", "anthropic", "mock"]
    base_url: str = ""
    api_key_env: str = Field("", max_length=100, description="the NAME of the environment variable, never the key")
    requests_per_minute: int | None = Field(None, ge=1, le=2**31 - 1)
    tokens_per_minute: int | None = Field(None, ge=1, le=2**31 - 1)
    price_in_per_mtok: float = Field(0, ge=0, le=1e6)
    price_out_per_mtok: float = Field(0, ge=0, le=1e6)
    options: dict[str, Any] = {}
    enabled: bool = True


class ProviderPatch(Schema):
    base_url: str | None = None
    api_key_env: str | None = Field(None, max_length=100)
    requests_per_minute: int | None = Field(None, ge=1, le=2**31 - 1)
    tokens_per_minute: int | None = Field(None, ge=1, le=2**31 - 1)
    price_in_per_mtok: float | None = Field(None, ge=0, le=1e6)
    price_out_per_mtok: float | None = Field(None, ge=0, le=1e6)
    options: dict[str, Any] | None = None
    enabled: bool | None = None

"""Issue 12, item 12: every number on a page, in the API and in the CLI tells the truth, and
reads the same way everywhere. Whole sweeps through the embedded worker on the configured
database; pages through Django's test client."""

from __future__ import annotations

import html
import json
import re

import pytest

from sweeps.engine import formatting
from sweeps.events import publishing
from sweeps.models import Run, RunSample
from sweeps.services import ServiceError
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_pause, sweep_resume, sweep_start, sweep_stop
from tests.conftest import logged_in, spec, wait_for, wait_for_sweep

pytestmark = pytest.mark.django_db(transaction=True)


def start(user, **overrides):
    experiment = experiment_create(owner=user, data=spec(**overrides))
    return sweep_start(experiment=experiment)


def live(client, sweep) -> str:
    return client.get(f"/experiments/{sweep.experiment_id}/live/").content.decode()


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert found, f"no #{element_id}"
    return " ".join(html.unescape(found.group(1)).split())


# --- progress: cancelled samples are not done ---


def test_a_stopped_sweeps_progress_counts_cancelled_samples_apart_not_as_done(user, mock_latency):
    mock_latency(30)
    sweep = start(user, max_concurrency=1)
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").exists())
    sweep_stop(sweep=sweep)
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status__in=("running", "pending")).exists())
    sweep = wait_for_sweep(sweep)

    done = RunSample.objects.filter(sweep=sweep, status__in=("completed", "failed")).count()
    cancelled = RunSample.objects.filter(sweep=sweep, status="cancelled").count()
    assert sweep.status == "stopped" and cancelled > 0 and done + cancelled == sweep.total == 12

    expected = f"{done} of 12 done · {cancelled} cancelled"
    page = live(logged_in(user), sweep)
    assert text_of(page, "progress-text") == expected
    assert re.search(rf'<progress id="progress" max="12" value="{done}"', page)  # not a full bar
    api = logged_in(user).get(f"/api/v1/sweeps/{sweep.pk}").json()
    assert api["progress"] == pytest.approx(done / 12) and api["progress_text"] == expected


# --- the cache: hits and what they saved count the same calls ---


def test_cache_hits_count_the_calls_whose_savings_the_page_shows(user, mock_latency):
    single = {"sweep": {"type": "grid", "params": {"model": ["mock/echo"]}}}
    wait_for_sweep(start(user, **single))
    # Same first stage, a new second one: every sample has one cached call and one paid call,
    # so no sample comes wholly from the cache, yet the cache saved something.
    pipeline = spec()["pipeline"]
    pipeline[1] = {**pipeline[1], "prompt": "Which label fits: {{ summarize }}"}
    second = wait_for_sweep(start(user, pipeline=pipeline, **single))

    assert second.status == "completed" and second.cached == 0 and second.saved_tokens > 0
    assert second.cached_calls == 3  # one stage call per row
    page = live(logged_in(user), second)
    assert text_of(page, "cache-hits") == "3 calls"
    assert text_of(page, "saved").startswith(f"{formatting.count(second.saved_tokens)} tokens · $")
    assert logged_in(user).get(f"/api/v1/sweeps/{second.pk}").json()["cached_calls"] == 3


# --- the estimate: per call is per call ---


def test_the_estimates_output_tokens_per_call_are_per_call_and_the_total_says_total(user, mock_latency):
    data = spec(pipeline=[{"name": "answer", "prompt": "Answer: {{ ticket }}", "model": "mock/echo",
                           "params": {"max_tokens": 40}}])  # fmt: skip
    page = logged_in(user).post("/experiments/estimate/", {"spec": json.dumps(data)}).content.decode()

    calls = 4 * 3  # 4 configurations x 3 rows, one stage, nothing cached
    assert re.search(rf'data-estimate="tokens-out" data-value="{calls * 40}">{calls * 40}</strong> in total', page)
    assert re.search(r'data-estimate="tokens-out-per-call">40</span> per call', page)


# --- budget pauses say that reservations count ---


def test_a_budget_pause_says_reservations_count(user, mock_latency):
    mock_latency(5)
    sweep = wait_for_sweep(
        start(
            user,
            budget={"max_tokens": 60},
            max_concurrency=2,
            pipeline=[
                {"name": "answer", "prompt": "Answer: {{ ticket }}", "model": "mock/echo", "params": {"max_tokens": 16}}
            ],
        )  # fmt: skip
    )
    assert sweep.status == "paused" and sweep.stopped_reason == "token_budget"
    spent = sweep.tokens_in + sweep.tokens_out
    said = f"{spent} spent + what the calls in flight and the next call reserve would pass max_tokens 60"
    assert said in sweep.error and "reservations count" in sweep.error
    assert said in text_of(live(logged_in(user), sweep), "sweep-error")
    with pytest.raises(ServiceError, match=r"spent \+ what the calls in flight .* raise the experiment's budget"):
        sweep_resume(sweep=sweep)


# --- a paused sweep has no running run; "resumed" is said once ---


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """Every event sent to browsers, in order."""
    events: list[dict] = []

    async def record(batch):
        events.extend(batch)

    monkeypatch.setattr(publishing, "_send", record)
    return events


def test_a_paused_sweep_has_no_running_run_and_resume_is_announced_once(user, mock_latency, sent):
    mock_latency(30)
    sweep = start(user, max_concurrency=2)
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() >= 2)
    sweep_pause(sweep=sweep)
    sweep = wait_for_sweep(sweep)
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status="running").exists())
    # The executor ends its job after releasing its samples: then no run may read `running`.
    wait_for(lambda: not Run.objects.filter(sweep=sweep, status="running").exists(), timeout=5)
    assert Run.objects.filter(sweep=sweep, status="pending").exists()
    assert sweep.status == "paused"

    sweep = wait_for_sweep(sweep_resume(sweep=sweep), until=("completed", "failed"))
    assert sweep.status == "completed"
    assert set(Run.objects.filter(sweep=sweep).values_list("status", flat=True)) == {"completed"}
    # Events go out once the status is committed, so a moment after it reads "completed"
    wait_for(lambda: any(e["type"] == "sweep.completed" for e in sent), timeout=10)
    kinds = [e["type"] for e in sent if e["type"].startswith("sweep.") and e["type"] != "sweep.progress"]
    assert kinds == ["sweep.queued", "sweep.started", "sweep.paused", "sweep.resumed", "sweep.completed"]


# --- runs with failed samples say so ---


def test_a_run_with_failed_samples_shows_them_on_its_page_the_leaderboard_and_the_cli(user, mock_latency):
    # One row of three has no `ticket`: its prompt does not render, so each run fails one sample.
    dataset = [*spec()["dataset"][:2], {"subject": "no ticket here", "expected": "shipping"}]
    pipeline = [{"name": "answer", "prompt": "{{ ticket.upper() }}", "model": "mock/echo"}]
    sweep = wait_for_sweep(start(user, dataset=dataset, pipeline=pipeline))
    runs = list(Run.objects.filter(sweep=sweep))
    assert sweep.status == "completed" and all(r.status == "completed" and r.samples_failed == 1 for r in runs)

    client = logged_in(user)
    run_page = client.get(f"/runs/{runs[0].pk}/").content.decode()
    assert text_of(run_page, "run-status") == "completed · 1 failed"
    board = live(client, sweep)
    badges = re.findall(r'<span class="badge completed">([^<]*)</span>', board)
    assert badges == ["completed · 1 failed"] * 4


# --- one way of writing numbers; parameters to 4 significant digits ---


def test_counts_have_thousands_separators_and_float_parameters_four_significant_digits(user, mock_latency):
    temperature = 0.10908090072990548  # as TPE draws them
    sweep = wait_for_sweep(start(user, sweep={"type": "grid", "params": {"params.temperature": [temperature, 1.0]}}))
    run = Run.objects.get(sweep=sweep, config__params__temperature=temperature)
    client = logged_in(user)

    board = live(client, sweep)
    params = re.findall(r'<td class="param"[^>]*>([^<]*)</td>', board)
    visible = re.sub(r"<script.*?</script>", "", board, flags=re.S)  # the charts plot the exact value
    assert sorted(params) == ["0.1091", "1.0"] and "0.10908" not in visible
    assert "params.temperature = 0.1091" in board  # the charts' hover text
    run_page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "0.1091" in run_page and "0.10908" not in run_page

    # Counts past a thousand read 1,234 on every page (the figures come from real sweeps, made large)
    Run.objects.filter(pk=run.pk).update(tokens_in=120_000, tokens_out=5_083)
    sweep.__class__.objects.filter(pk=sweep.pk).update(tokens_in=200_000, tokens_out=10_584)
    board = live(client, sweep)
    assert text_of(board, "tokens") == "210,584"
    assert re.search(rf'data-run-id="{run.pk}".*?<td class="num">125,083</td>', board, re.S)
    assert "125,083 tokens (120,000 in, 5,083 out)" in client.get(f"/runs/{run.pk}/").content.decode()
    assert "210,584" in client.get("/").content.decode()


def test_formatting_rules():
    assert formatting.count(125083) == "125,083" and formatting.count(None) == "–"
    assert formatting.param(0.10908090072990548) == "0.1091" and formatting.param(1.0) == "1.0"
    assert formatting.param(12345.678) == "12350.0" and formatting.param("mock/echo") == "mock/echo"
    assert formatting.param(3) == "3" and formatting.per_call(12_480, 48) == "260" and formatting.per_call(5, 0) == "–"
    assert formatting.run_status("completed", 3) == "completed · 3 failed"
    assert formatting.run_status("failed", 3) == "failed" and formatting.run_status("completed", 0) == "completed"
    assert formatting.progress(total=720, finished=224, cancelled=496) == "224 of 720 done · 496 cancelled"


# --- the verdict names rows as the leaderboard numbers them ---


def test_the_verdict_names_the_top_two_by_their_leaderboard_rank(user, mock_latency):
    sweep = wait_for_sweep(start(user))
    page = live(logged_in(user), sweep)
    ranked = [int(i) for i in re.findall(r'<tr data-run-id="(\d+)">', page)]
    verdict = re.search(r'<p class="verdict[^"]*" id="verdict">(.*?)</p>', page, re.S).group(1)
    links = re.findall(r'<a href="/runs/(\d+)/">([^<]*)</a>', verdict)
    assert links == [(str(ranked[0]), "#1"), (str(ranked[1]), "#2")]

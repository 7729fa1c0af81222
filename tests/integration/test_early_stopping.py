"""Early stopping, replicates and run statistics through real sweeps (embedded worker, mock provider)."""

from __future__ import annotations

import pytest
from scipy import stats as scipy_stats

from sweeps.engine import stats
from sweeps.engine.early_stopping import row_order
from sweeps.models import Run, RunSample
from sweeps.selectors.leaderboard import leaderboard, pareto_run_ids, top_two_verdict
from sweeps.selectors.runs import run_search
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start, sweep_stop
from tests.conftest import wait_for, wait_for_sweep

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 40
GOOD, BAD = "Repeat: {{ text }}", "{{ text }} please"  # echo answers after the last ':', so only GOOD can match


def dataset(rows: int = ROWS) -> list[dict]:
    return [{"text": f"ticket {i} about billing", "expected": f"ticket {i} about billing"} for i in range(rows)]


def es_spec(**sweep_overrides) -> dict:
    return {
        "name": "Early stopping",
        "pipeline": [{"name": "answer", "prompt": "{{ text }}", "model": "mock/echo"}],
        "dataset": dataset(),
        "scorers": [{"type": "equals_expected"}],
        "sweep": {
            "type": "grid",
            "params": {"prompt": [GOOD, BAD], "params.temperature": [0.0, 0.4]},
            "seed": 11,
            "early_stopping": {"rungs": [0.25, 0.5, 1.0], "alpha": 0.05},
            **sweep_overrides,
        },
        "max_concurrency": 8,
    }


def run_sweep(user, data):
    experiment = experiment_create(owner=user, data=data)
    return wait_for_sweep(sweep_start(experiment=experiment), timeout=60)


def test_clearly_worse_configurations_are_pruned_after_the_first_rung(user, mock_latency, provider_calls):
    sweep = run_sweep(user, es_spec())

    assert sweep.status == "completed"
    runs = {(r.config["prompt"], r.config["params"]["temperature"]): r for r in Run.objects.filter(sweep=sweep)}
    best = runs[(GOOD, 0.0)]
    assert best.status == "completed" and best.score == 1.0
    assert best.samples.filter(status="completed").count() == ROWS  # the winner saw every row
    first_rung = set(row_order(ROWS, 11)[:10])  # the shared order, seeded by the sweep's seed
    for bad in (runs[(BAD, 0.0)], runs[(BAD, 0.4)]):
        assert bad.status == "pruned" and bad.score < 0.5  # noise may drop "please" now and then
        assert set(bad.samples.exclude(status="pruned").values_list("row_index", flat=True)) == first_rung
        assert bad.samples.filter(status="pruned").count() == ROWS - 10
    # Nothing was ever asked of the provider for the pruned rows.
    pruned_prompts = {f"ticket {i} about billing please" for i in range(ROWS) if i not in first_rung}
    assert not any(call.messages[-1]["content"] in pruned_prompts for call in provider_calls)

    pruned = RunSample.objects.filter(sweep=sweep, status="pruned").count()
    assert sweep.pruned == pruned >= 2 * (ROWS - 10)
    assert sweep.done == sweep.total == 4 * ROWS
    # Estimated at the pruned runs' own tokens per sample so far.
    per_sample = {r.pk: (r.tokens_in + r.tokens_out) / r.samples.exclude(status="pruned").count()
                  for r in Run.objects.filter(sweep=sweep, status="pruned")}  # fmt: skip
    expected = sum(
        rate * Run.objects.get(pk=pk).samples.filter(status="pruned").count() for pk, rate in per_sample.items()
    )
    assert sweep.pruned_tokens == pytest.approx(expected, abs=1)
    assert sweep.best_score == 1.0


def test_without_early_stopping_every_sample_runs(user, mock_latency):
    data = es_spec()
    del data["sweep"]["early_stopping"]
    sweep = run_sweep(user, data)
    assert sweep.status == "completed" and sweep.pruned == 0
    assert RunSample.objects.filter(sweep=sweep, status="completed").count() == 4 * ROWS


def test_pruned_runs_rank_below_full_ones_and_stay_off_the_pareto_front(user, mock_latency):
    sweep = run_sweep(user, es_spec())
    ranked = leaderboard(sweep)
    statuses = [r.status for r in ranked]
    assert statuses.index("pruned") > max(i for i, s in enumerate(statuses) if s == "completed")
    front = pareto_run_ids(sweep)
    assert front and not Run.objects.filter(id__in=front, status="pruned").exists()


def test_stopping_cancels_the_samples_waiting_for_their_rung(user, mock_latency):
    mock_latency(30)
    experiment = experiment_create(owner=user, data=es_spec())
    sweep = sweep_start(experiment=experiment)
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").exists())
    assert RunSample.objects.filter(sweep=sweep, status="waiting").exists()
    sweep_stop(sweep=sweep)
    # Samples in flight finish and are recorded; then nothing is left to do.
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status__in=("pending", "waiting", "running")).exists())
    sweep.refresh_from_db()

    assert sweep.status == "stopped"
    assert sweep.cancelled and sweep.done + sweep.cancelled == sweep.total  # cancelled are never done
    assert not Run.objects.filter(sweep=sweep, status__in=("pending", "running")).exists()


def test_repeats_are_real_samples_and_a_rerun_is_free(user, mock_latency, provider_calls):
    data = es_spec(params={"params.temperature": [0.8]})
    del data["sweep"]["early_stopping"]
    data.update(repeats=3, dataset=dataset(12), pipeline=[{"name": "answer", "prompt": GOOD, "model": "mock/echo"}])
    experiment = experiment_create(owner=user, data=data)
    first = wait_for_sweep(sweep_start(experiment=experiment))

    assert first.total == 36 and len(provider_calls) == 36  # the replicate index is in the cache key
    assert first.cached == 0
    outputs = {}
    for sample in RunSample.objects.filter(sweep=first):
        outputs.setdefault(sample.row_index, set()).add(sample.output)
    assert any(len(texts) > 1 for texts in outputs.values())  # temperature noise differs by replicate

    second = wait_for_sweep(sweep_start(experiment=experiment))
    assert len(provider_calls) == 36 and second.cached == second.total == 36  # a re-run is free

    run = Run.objects.get(sweep=first)
    scores = list(run.samples.values_list("row_index", "replicate", "score"))
    per_replicate = [sum(s for _, rep, s in scores if rep == r) / 12 for r in range(3)]
    assert run.score_spread == pytest.approx(scipy_stats.tstd(per_replicate))
    agreeing = sum(len({s == 1.0 for row, _, s in scores if row == i}) == 1 for i in range(12))
    assert run.consistency == pytest.approx(agreeing / 12)
    assert run.score_ci_low <= run.score <= run.score_ci_high
    assert Run.objects.get(sweep=second).score_spread == pytest.approx(run.score_spread)


def test_a_single_replicate_has_an_interval_but_no_spread(user, mock_latency):
    data = es_spec()
    del data["sweep"]["early_stopping"]
    sweep = run_sweep(user, data)
    for run in Run.objects.filter(sweep=sweep):
        assert run.score_spread is None and run.consistency is None
        assert run.score_ci_low <= run.score <= run.score_ci_high
    noisy = Run.objects.get(sweep=sweep, config__prompt=GOOD, config__params__temperature=0.4)
    assert noisy.score_ci_low < noisy.score_ci_high  # some rows pass, some do not


def test_the_verdict_on_the_top_two_matches_scipy(user, mock_latency):
    data = es_spec()
    del data["sweep"]["early_stopping"]
    sweep = run_sweep(user, data)
    verdict = top_two_verdict(sweep)

    first, second = (Run.objects.get(pk=pk) for pk in verdict["run_ids"])
    assert (first.config["prompt"], first.config["params"]["temperature"]) == (GOOD, 0.0)
    assert first.score >= second.score
    a = dict(first.samples.values_list("row_index", "score"))
    b = dict(second.samples.values_list("row_index", "score"))
    diffs = [a[row] - b[row] for row in sorted(a)]
    expected = scipy_stats.wilcoxon(diffs, zero_method="wilcox", correction=False).pvalue
    assert verdict["p_value"] == pytest.approx(expected)
    assert verdict["difference"] == pytest.approx(sum(diffs) / len(diffs))
    assert verdict["distinguishable"] == (expected < 0.05)
    assert verdict["rows"] == ROWS
    assert stats.compare_paired(a, b).p_value == pytest.approx(verdict["p_value"])


@pytest.mark.parametrize("kind", ["random", "guided", "tpe"])
def test_early_stopping_works_with_every_strategy(user, mock_latency, kind):
    data = es_spec(type=kind, n_trials=8, params={"prompt": [GOOD, BAD], "params.temperature": [0.0, 0.2, 0.4, 0.6]})
    sweep = run_sweep(user, data)

    assert sweep.status == "completed", sweep.error
    runs = list(Run.objects.filter(sweep=sweep))
    assert len(runs) == 8 and sweep.total == 8 * ROWS and sweep.done == sweep.total
    assert {r.status for r in runs} <= {"completed", "pruned"}
    # Every bad-prompt configuration is pruned after the first rung, in whatever round it came.
    assert all(r.status == "pruned" for r in runs if r.config["prompt"] == BAD)
    assert sweep.pruned == RunSample.objects.filter(sweep=sweep, status="pruned").count() > 0
    best = max((r for r in runs if r.status == "completed"), key=lambda r: r.score)
    assert best.score == 1.0 and sweep.best_score == 1.0


def test_the_experiment_page_shows_what_pruning_saved_the_intervals_and_the_verdict(user, mock_latency, client):
    from tests.pages import Table

    data = es_spec()
    sweep = run_sweep(user, data)
    client.force_login(user)
    page = client.get(f"/experiments/{sweep.experiment_id}/").content.decode()

    assert f"{sweep.pruned:,} samples · ~{sweep.pruned_tokens:,} tokens" in " ".join(page.split())
    board = Table("leaderboard", page)
    interval = board.headers.index("95 % interval")
    by_id = {int(row["attrs"]["data-run-id"]): row["cells"] for row in board.rows}
    for run in Run.objects.filter(sweep=sweep):
        assert by_id[run.pk][interval] == f"{run.score_ci_low:.2f}–{run.score_ci_high:.2f}"
    # One finished run (the others pruned): nothing to compare it with.
    assert top_two_verdict(sweep) is None and 'id="verdict"' not in page


def test_the_experiment_page_says_whether_the_top_two_are_distinguishable(user, mock_latency, client):
    data = es_spec()
    del data["sweep"]["early_stopping"]
    sweep = run_sweep(user, data)
    client.force_login(user)
    page = " ".join(client.get(f"/experiments/{sweep.experiment_id}/").content.decode().split())

    verdict = top_two_verdict(sweep)
    first, second = verdict["run_ids"]
    assert verdict["distinguishable"]  # 1.0 on every row against about half the rows: clear
    # Named as the leaderboard numbers them (#1, #2), linking to the runs the verdict compared.
    assert f'Top two, <a href="/runs/{first}/">#1</a> and <a href="/runs/{second}/">#2</a>:' in page
    assert "<strong>distinguishable</strong>" in page
    assert verdict["p_value"] < 0.001 and f"(p &lt; 0.001, Wilcoxon signed-rank over {ROWS} rows" in page


def test_with_three_rows_the_page_says_the_order_may_be_noise(user, mock_latency, client):
    from tests.conftest import spec

    sweep = run_sweep(user, spec())
    client.force_login(user)
    page = " ".join(client.get(f"/experiments/{sweep.experiment_id}/").content.decode().split())
    assert top_two_verdict(sweep)["distinguishable"] is False
    assert '<p class="verdict undecided" id="verdict">' in page
    assert "<strong>not distinguishable</strong>, the order may be noise: more rows or repeats would tell" in page


def test_pruned_runs_come_last_by_score_per_dollar_though_they_paid_for_few_rows(user, mock_latency):
    from sweeps.models import Provider

    Provider.objects.filter(name="mock").update(price_in_per_mtok=1.0, price_out_per_mtok=2.0)
    sweep = run_sweep(user, es_spec())
    ranked = list(run_search(sweep, order="-score_per_dollar"))
    statuses = [r.status for r in ranked]
    assert "pruned" in statuses and statuses == sorted(statuses, key=lambda s: s == "pruned")
    pruned = [r for r in ranked if r.status == "pruned"]
    assert all(r.cost_usd > 0 for r in ranked)
    assert max(r.score_per_dollar for r in pruned) > 0  # a real ratio, just not a comparable one

"""Leaderboard and early-stopping statistics, checked against scipy (a test-only dependency)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sweeps.engine.stats import (
    Comparison,
    bootstrap_ci,
    compare_paired,
    consistency,
    replicate_spread,
    row_means,
    wilcoxon_p,
    worse_than,
)

ALTERNATIVES = ["two-sided", "less", "greater"]


def scipy_p(diffs, alternative: str = "two-sided") -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nan for all-zero samples comes with warnings
        result = scipy_stats.wilcoxon(diffs, zero_method="wilcox", correction=False, alternative=alternative)
    return float(result.pvalue)


def beta_scores(n: int, seed: int) -> np.ndarray:
    """Scores in 0..1 skewed towards 0, like a hard dataset."""
    return np.random.default_rng(seed).beta(2, 5, n)


# --- wilcoxon_p: same p-value as scipy's default method="auto" ------------------------------

# No zeros, no tied |d|, n <= 50: scipy uses the exact null distribution.
EXACT_SAMPLES = [
    [0.12, -0.05, 0.31, 0.22, -0.08, 0.44, 0.17, 0.09, -0.02, 0.35],
    [0.4, -0.1, 0.25],
    [0.1, 0.2, -0.3],  # rank sum at its mean: the doubled two-sided p is capped at 1
    [-0.3, -0.21, -0.15, 0.05, -0.44, -0.12, -0.33, 0.02],
    list(np.random.default_rng(3).normal(0.15, 0.3, 40)),
]

# Zeros and/or tied |d|: n <= 13 is scipy's exact sign-flip permutation test, beyond that the normal
# approximation with the tie correction.
TIED_SAMPLES = [
    [0.2, -0.2, 0.2, 0.0, 0.5, 0.1, 0.0, -0.1, 0.3],  # n=9: zeros and ties
    [0.1, 0.1, 0.1, -0.1, 0.3, 0.4],  # n=6: ties, no zeros
    [0.2, -0.2, 0.1, -0.1, 0.0],  # symmetric: capped at 1 again
    [0.25, 0.0, 0.5, 0.75, -0.25, 0.5, 0.0, 0.25, 1.0, 0.5, -0.5, 0.25, 0.75],  # n=13, the last exact one
    [0.25, 0.0, 0.5, 0.75, -0.25, 0.5, 0.0, 0.25, 1.0, 0.5, -0.5, 0.25, 0.75, 0.5],  # n=14: normal
    [0.0, 0.1, -0.1, 0.2, 0.2, 0.0, 0.3, -0.2, 0.1, 0.4, 0.0, 0.2, 0.1, -0.1, 0.5, 0.3, 0.2, 0.1, 0.0, 0.6],
    list(np.round(np.random.default_rng(5).normal(0.05, 0.2, 45), 1)),
]

# What a contains/equals scorer gives two configs on the same rows: differences in {-1, 0, 1}.
BINARY_SAMPLES = [
    [1, 0, 1, 1, -1, 0, 1, 0, 1, 1],
    [1, 0, 1, 1, -1, 0, 1, 0, 1, 1, 0, 1, -1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, -1, 1],
    list(np.random.default_rng(7).choice([-1.0, 0.0, 1.0], size=80, p=[0.2, 0.5, 0.3])),
]


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("diffs", EXACT_SAMPLES)
def test_wilcoxon_exact_path_matches_scipy(diffs, alternative):
    assert wilcoxon_p(diffs, alternative) == pytest.approx(scipy_p(diffs, alternative), rel=1e-9)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("diffs", TIED_SAMPLES)
def test_wilcoxon_ties_and_zeros_match_scipy(diffs, alternative):
    assert wilcoxon_p(diffs, alternative) == pytest.approx(scipy_p(diffs, alternative), rel=1e-9)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_wilcoxon_large_sample_matches_scipy(alternative):
    diffs = np.random.default_rng(11).normal(0.05, 0.25, 60)  # n > 50: normal approximation, no ties
    assert wilcoxon_p(diffs, alternative) == pytest.approx(scipy_p(diffs, alternative), rel=1e-9)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("diffs", BINARY_SAMPLES)
def test_wilcoxon_binary_differences_match_scipy(diffs, alternative):
    assert wilcoxon_p(diffs, alternative) == pytest.approx(scipy_p(diffs, alternative), rel=1e-9)


def test_wilcoxon_all_zero_is_no_evidence():
    assert np.isnan(scipy_p([0.0] * 20))  # scipy has nothing to rank and says nan; we say 1.0
    assert wilcoxon_p([0.0] * 20) == 1.0
    assert wilcoxon_p([0.0, 0.0, 0.0], "less") == 1.0
    assert wilcoxon_p([]) == 1.0


def test_wilcoxon_small_p_for_a_consistent_shift():
    diffs = [0.1 + 0.01 * i for i in range(20)]  # every row better
    assert wilcoxon_p(diffs) < 1e-4
    assert wilcoxon_p(diffs, "greater") < 1e-4
    assert wilcoxon_p(diffs, "less") > 0.99


def test_wilcoxon_rejects_an_unknown_alternative():
    with pytest.raises(ValueError, match="alternative"):
        wilcoxon_p([0.1, 0.2], "bigger")


# --- bootstrap_ci ------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed():
    values = beta_scores(50, seed=1)
    assert bootstrap_ci(values, seed=4) == bootstrap_ci(values, seed=4)
    assert bootstrap_ci(values, seed=4) != bootstrap_ci(values, seed=5)


def test_bootstrap_contains_the_mean_and_stays_inside_the_data():
    values = beta_scores(80, seed=2)
    low, high = bootstrap_ci(values)
    assert values.min() <= low < values.mean() < high <= values.max()


def test_bootstrap_agrees_with_scipy_percentile_interval():
    values = beta_scores(200, seed=3)
    reference = scipy_stats.bootstrap(
        (values,),
        np.mean,
        method="percentile",
        confidence_level=0.95,
        n_resamples=20000,
        rng=np.random.default_rng(0),
    ).confidence_interval
    low, high = bootstrap_ci(values, resamples=20000)
    assert low == pytest.approx(reference.low, abs=0.01)
    assert high == pytest.approx(reference.high, abs=0.01)


def test_bootstrap_narrows_with_more_rows():
    few_low, few_high = bootstrap_ci(beta_scores(40, seed=6))
    many_low, many_high = bootstrap_ci(beta_scores(640, seed=6))
    assert many_high - many_low < (few_high - few_low) / 2  # 16x the rows: about a quarter of the width


def test_bootstrap_higher_confidence_is_wider():
    values = beta_scores(100, seed=8)
    low_90, high_90 = bootstrap_ci(values, confidence=0.90)
    low_99, high_99 = bootstrap_ci(values, confidence=0.99)
    assert low_99 < low_90 and high_90 < high_99


def test_bootstrap_edge_cases():
    assert bootstrap_ci([]) is None
    assert bootstrap_ci([0.7]) is None
    assert bootstrap_ci([0.1, 0.1, 0.1]) == (0.1, 0.1)  # summing 0.1s would give 0.10000000000000002


# --- compare_paired ----------------------------------------------------------------------------


def paired_configs(n: int, effect: float, seed: int) -> tuple[dict[int, float], dict[int, float]]:
    """Two configs on the same rows: row difficulty varies a lot, the config effect is small."""
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0.1, 0.8, n)
    b = np.clip(difficulty + rng.normal(0, 0.03, n), 0, 1)
    a = np.clip(difficulty + effect + rng.normal(0, 0.03, n), 0, 1)
    return dict(enumerate(a.tolist())), dict(enumerate(b.tolist()))


def test_a_clearly_better_config_is_distinguishable():
    a, b = paired_configs(30, effect=0.08, seed=1)
    result = compare_paired(a, b)
    assert result.distinguishable and result.p_value < 0.05
    assert 0 < result.ci_low < result.difference < result.ci_high
    assert result.rows == 30

    reverse = compare_paired(b, a)
    assert reverse.distinguishable
    assert reverse.difference == pytest.approx(-result.difference)
    assert reverse.ci_high < 0


def test_identical_configs_are_not_distinguishable():
    a, _ = paired_configs(30, effect=0.0, seed=2)
    assert compare_paired(a, dict(a)) == Comparison(
        difference=0.0, ci_low=0.0, ci_high=0.0, p_value=1.0, rows=30, distinguishable=False
    )


def test_pure_noise_is_not_distinguishable():
    a, b = paired_configs(30, effect=0.0, seed=3)
    assert not compare_paired(a, b).distinguishable


def test_compare_uses_only_the_common_rows():
    a = {0: 0.9, 1: 0.8, 2: 0.7, 3: 0.6, 10: 0.0, 11: 0.0}
    b = {0: 0.5, 1: 0.6, 2: 0.4, 3: 0.5, 20: 1.0}
    result = compare_paired(a, b)
    assert result.rows == 4
    assert result.difference == pytest.approx((0.4 + 0.2 + 0.3 + 0.1) / 4)
    assert result.p_value == pytest.approx(scipy_p([0.4, 0.2, 0.3, 0.1]), rel=1e-9)


def test_compare_p_matches_scipy_on_the_differences():
    a, b = paired_configs(35, effect=0.02, seed=4)
    diffs = [a[row] - b[row] for row in range(35)]
    assert compare_paired(a, b).p_value == pytest.approx(scipy_p(diffs), rel=1e-9)


def test_compare_ties_differences_that_only_float_noise_separates():
    # row means over 3 replicates: 2/3 - 1/3 and 1/3 - 0 are the same difference, not to floats
    thirds = [(2, 1), (1, 0), (2, 0), (3, 2), (2, 1), (1, 0), (3, 1), (2, 1), (1, 2), (3, 2), (0, 1), (2, 0)]
    a = {row: x / 3 for row, (x, _) in enumerate(thirds)}
    b = {row: y / 3 for row, (_, y) in enumerate(thirds)}
    raw = [a[row] - b[row] for row in a]
    exact = [(x - y) / 3 for x, y in thirds]
    assert scipy_p(raw) != pytest.approx(scipy_p(exact), rel=1e-6)  # the noise does change scipy's answer
    assert compare_paired(a, b).p_value == pytest.approx(scipy_p(exact), rel=1e-9)


def test_compare_needs_two_common_rows():
    assert compare_paired({0: 0.5, 1: 0.7}, {1: 0.2, 2: 0.9}) is None
    assert compare_paired({}, {}) is None
    assert compare_paired({0: 0.5, 1: 0.7}, {0: 0.2, 1: 0.1}) is not None


def test_alpha_sets_the_bar():
    a, b = paired_configs(12, effect=0.03, seed=5)
    p = compare_paired(a, b).p_value
    assert 0.001 < p < 0.5  # somewhere alpha can land on either side of
    assert compare_paired(a, b, alpha=p * 1.01).distinguishable
    assert not compare_paired(a, b, alpha=p).distinguishable  # strictly below alpha


# --- worse_than ----------------------------------------------------------------------------------


def test_worse_than():
    best, loser = paired_configs(20, effect=-0.1, seed=6)[::-1]
    assert worse_than(loser, best, alpha=0.05)
    assert not worse_than(best, best, alpha=0.05)
    assert not worse_than(best, loser, alpha=0.05)  # better is not worse, however clear


def test_worse_than_is_one_sided():
    # p for "less" on 6 all-negative differences is 1/64: below 0.05 one-sided, 2/64 two-sided
    candidate = {row: 0.5 for row in range(6)}
    best = {row: 0.5 + 0.01 * (row + 1) for row in range(6)}
    assert worse_than(candidate, best, alpha=0.02)
    assert not worse_than(candidate, best, alpha=0.015)


def test_worse_than_needs_two_common_rows():
    assert not worse_than({0: 0.0, 1: 0.0}, {1: 1.0, 2: 1.0}, alpha=0.5)


# --- replicates ----------------------------------------------------------------------------------


def test_replicate_spread_is_the_std_of_per_replicate_means():
    scores = [
        (0, 0, 1.0), (1, 0, 0.5), (2, 0, 0.0),  # replicate 0: mean 0.5
        (0, 1, 1.0), (1, 1, 1.0), (2, 1, 0.7),  # replicate 1: mean 0.9
        (0, 2, 0.2), (1, 2, 0.4),               # replicate 2: row 2 unscored, mean 0.3
    ]  # fmt: skip
    assert replicate_spread(scores) == pytest.approx(np.std([0.5, 0.9, 0.3], ddof=1))


def test_replicate_spread_needs_two_replicates():
    assert replicate_spread([(0, 0, 0.4), (1, 0, 0.9)]) is None
    assert replicate_spread([]) is None
    assert replicate_spread([(0, 0, 0.4), (0, 1, 0.4)]) == 0.0


def test_consistency_is_the_share_of_rows_whose_replicates_agree():
    verdicts = [
        (0, 0, True), (0, 1, True), (0, 2, True),  # agree
        (1, 0, False), (1, 1, False),              # agree
        (2, 0, True), (2, 1, False),               # disagree
        (3, 0, False),                             # one replicate: not counted
    ]  # fmt: skip
    assert consistency(verdicts) == pytest.approx(2 / 3)


def test_consistency_needs_a_row_with_two_replicates():
    assert consistency([(0, 0, True), (1, 0, False)]) is None
    assert consistency([]) is None


def test_row_means():
    scores = [(2, 0, 1.0), (0, 0, 0.2), (2, 1, 0.0), (0, 1, 0.4), (2, 2, 0.5), (5, 0, 0.9)]
    assert row_means(scores) == {0: pytest.approx(0.3), 2: pytest.approx(0.5), 5: 0.9}

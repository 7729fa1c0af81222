"""Is one configuration really better than another, or did it get the easier draws?

The leaderboard and paired early stopping ask that question of per-row scores (the mean over
a row's replicates, a float in 0..1). The choices, and why:

- Paired, on the rows both runs scored. Dataset rows differ far more in difficulty than
  configurations do, so comparing the two means as independent samples buries the effect in
  row-to-row variance; the per-row difference a - b cancels the row's difficulty out. The
  differences are rounded to 12 decimals before ranking, so that 2/3 - 1/3 and 1/3 - 0 tie.
- Wilcoxon signed-rank on those differences. It assumes no normality, which bounded scores
  piled up at 0 and 1 (and binary contains/equals scorers, whose differences are -1, 0, 1)
  never have. wilcoxon_p reproduces scipy.stats.wilcoxon(d, zero_method="wilcox",
  correction=False) with its default method="auto" (scipy 1.18), so a p-value here can be
  checked against the reference; scipy itself is only a test dependency. Its rule:
    * more than 50 differences (zeros included): normal approximation;
    * otherwise, no zeros and no tied |d|: the exact null distribution of the rank sum;
    * otherwise, 13 or fewer differences: an exact sign-flip permutation test on the
      average ranks (scipy runs permutation_test, and 2**13 fits its 9999 resamples, so it
      enumerates every flip);
    * otherwise the normal approximation with the tie correction.
- Percentile bootstrap for the interval on a mean: no distributional assumption either, it
  stays inside [min, max] of the data (a mean of 0..1 scores never gets an interval past 1),
  and it is cheap vectorised. Seeded, so a page shows the same interval on every load.

Pure Python + numpy, no Django: tested in tests/engine/test_stats.py.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

_ALTERNATIVES = ("two-sided", "less", "greater")
_EXACT_MAX_N = 50  # scipy's "auto": above this many differences, always the normal approximation
_PERMUTATION_MAX_N = 13  # scipy's "auto" with ties or zeros: 2**13 sign flips fit in 9999 resamples
_MAX_DRAWS_PER_BATCH = 1 << 22  # bootstrap indices drawn at once (32 MB of int64), whatever the row count
# a - b of two row means carries float noise (2/3 - 1/3 != 1/3 - 0). Rounding before ranking makes equal
# differences tie, as Wilcoxon means them to; real score differences are nowhere near this fine.
_DIFF_DECIMALS = 12
_SQRT1_2 = math.sqrt(0.5)


def wilcoxon_p(diffs: Sequence[float], alternative: str = "two-sided") -> float:
    """p-value of the Wilcoxon signed-rank test on paired differences: scipy.stats.wilcoxon(diffs,
    zero_method="wilcox", correction=False, alternative=alternative).pvalue, method "auto" (see the module
    docstring). 1.0 when no non-zero difference is left, where scipy gives 1.0 or nan: no evidence."""
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, not {alternative!r}")
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if np.isnan(d).any():
        raise ValueError("differences must not be NaN")
    n = d.size  # zeros count here: scipy picks the method before dropping them
    nonzero = d[d != 0]
    count = nonzero.size
    if count == 0:
        return 1.0
    ranks, tie_sizes = _average_ranks(np.abs(nonzero))
    r_plus = float(ranks[nonzero > 0].sum())
    has_ties = bool((tie_sizes > 1).any())

    if n <= _EXACT_MAX_N and not has_ties and count == n:
        return _exact_p(round(r_plus), count, alternative)
    if n <= _PERMUTATION_MAX_N:
        return _sign_flip_p(ranks, r_plus, alternative)
    return _normal_p(r_plus, count, tie_sizes, alternative)


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n of values, ties sharing their average rank, and the size of each group of equal values."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    sizes = np.diff(np.append(starts, values.size))
    group_ranks = starts + 1 + (sizes - 1) / 2
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(group_ranks, sizes)
    return ranks, sizes


@cache
def _rank_sum_pmf(n: int) -> np.ndarray:
    """P(rank sum of the positive differences = k), k = 0..n(n+1)/2, with no ties: each rank 1..n is
    positive with probability 1/2, so adding rank k spreads the distribution so far over +0 and +k.
    Built in float64 halvings like scipy's _get_wilcoxon_distr, so the sums below round the same way."""
    pmf = np.ones(1, dtype=np.float64)
    for k in range(1, n + 1):
        previous = pmf
        pmf = np.zeros(k * (k + 1) // 2 + 1, dtype=np.float64)
        pmf[: previous.size] = previous * 0.5
        pmf[-previous.size :] += previous * 0.5
    pmf.setflags(write=False)
    return pmf


def _exact_p(r_plus: int, n: int, alternative: str) -> float:
    pmf = _rank_sum_pmf(n)
    mean = n * (n + 1) / 4
    # scipy sums whichever side of the mean the point is on and takes the complement for the other:
    # this keeps its rounding (p-values below ~1e-15 are float noise in both).
    cdf = float(pmf[: r_plus + 1].sum()) if r_plus <= mean else 1 - float(pmf[r_plus + 1 :].sum())
    sf = float(pmf[r_plus:].sum()) if r_plus <= mean else 1 - float(pmf[:r_plus].sum())
    if alternative == "less":
        return cdf
    if alternative == "greater":
        return sf
    return min(2 * min(sf, cdf), 1.0)


def _sign_flip_p(ranks: np.ndarray, r_plus: float, alternative: str) -> float:
    """Exact permutation p: every assignment of signs to the (average) ranks is equally likely under the
    null. Doubled average ranks are integers, so subsets are counted by doubled rank sum, exactly."""
    doubled = [round(2 * r) for r in ranks]
    counts = [1] + [0] * sum(doubled)
    reached = 0
    for rank in doubled:
        reached += rank
        for total in range(reached, rank - 1, -1):
            counts[total] += counts[total - rank]
    observed = round(2 * r_plus)
    flips = 2 ** len(doubled)
    less = sum(counts[: observed + 1]) / flips
    greater = sum(counts[observed:]) / flips
    if alternative == "less":
        return less
    if alternative == "greater":
        return greater
    return min(2 * min(less, greater), 1.0)


def _normal_p(r_plus: float, n: int, tie_sizes: np.ndarray, alternative: str) -> float:
    mean = n * (n + 1) * 0.25
    tie_term = float((tie_sizes.astype(np.float64) ** 3 - tie_sizes).sum())
    se = math.sqrt((n * (n + 1.0) * (2.0 * n + 1.0) - tie_term / 2) / 24)
    z = (r_plus - mean) / se
    if alternative == "less":
        return _ndtr(z)
    if alternative == "greater":
        return _ndtr(-z)
    return 2 * _ndtr(-abs(z))


def _ndtr(x: float) -> float:
    """Standard normal CDF, split at |x| < sqrt(2) the way scipy.special.ndtr (cephes) is."""
    t = x * _SQRT1_2
    if abs(t) < 1:
        return 0.5 + 0.5 * math.erf(t)
    tail = 0.5 * math.erfc(abs(t))
    return 1 - tail if t > 0 else tail


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean over rows: resample the rows with replacement, take each
    resample's mean, cut the tails. None for fewer than 2 values; (v, v) when all values are v."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size < 2:
        return None
    if (x == x[0]).all():
        # every resample mean is v, but summing n copies of v in floats can land a hair off it
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    batch = max(1, _MAX_DRAWS_PER_BATCH // x.size)
    for start in range(0, resamples, batch):
        stop = min(start + batch, resamples)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    difference: float  # mean of a - b over the common rows
    ci_low: float  # paired bootstrap percentile interval of that mean difference
    ci_high: float
    p_value: float  # two-sided Wilcoxon signed-rank on the per-row differences
    rows: int  # common rows used
    distinguishable: bool  # p_value < alpha


def _paired_differences(a: Mapping[int, float], b: Mapping[int, float]) -> list[float]:
    """a - b on the rows both have, in row order so resampling is deterministic."""
    return [a[row] - b[row] for row in sorted(a.keys() & b.keys())]


def _for_ranking(diffs: Sequence[float]) -> list[float]:
    """The differences with subtraction noise rounded off, so that equal differences tie when ranked."""
    return [round(d, _DIFF_DECIMALS) for d in diffs]


def compare_paired(
    a: Mapping[int, float], b: Mapping[int, float], *, alpha: float = 0.05, seed: int = 0
) -> Comparison | None:
    """Paired comparison of a against b on the rows both have. None when fewer than 2 common rows."""
    diffs = _paired_differences(a, b)
    interval = bootstrap_ci(diffs, seed=seed)
    if interval is None:
        return None
    p_value = wilcoxon_p(_for_ranking(diffs))
    return Comparison(
        difference=math.fsum(diffs) / len(diffs),
        ci_low=interval[0],
        ci_high=interval[1],
        p_value=p_value,
        rows=len(diffs),
        distinguishable=p_value < alpha,
    )


def worse_than(candidate: Mapping[int, float], best: Mapping[int, float], *, alpha: float) -> bool:
    """Early stopping's test: is the candidate significantly worse than the best so far on the rows both
    have (one-sided Wilcoxon, candidate - best tends below 0, p < alpha)? False for fewer than 2 common rows."""
    diffs = _paired_differences(candidate, best)
    if len(diffs) < 2:
        return False
    return wilcoxon_p(_for_ranking(diffs), alternative="less") < alpha


def replicate_spread(scores: Sequence[tuple[int, int, float]]) -> float | None:
    """How much a run's score would move on a re-run: the sample standard deviation (ddof=1) of its
    per-replicate mean score. scores are (row_index, replicate, score). None when fewer than 2 replicates."""
    by_replicate: defaultdict[int, list[float]] = defaultdict(list)
    for _row, replicate, score in scores:
        by_replicate[replicate].append(score)
    if len(by_replicate) < 2:
        return None
    means = [math.fsum(values) / len(values) for _replicate, values in sorted(by_replicate.items())]
    return float(np.std(means, ddof=1))


def consistency(verdicts: Sequence[tuple[int, int, bool]]) -> float | None:
    """The share of rows, among those with at least 2 replicates, whose replicates all agree (all passed
    or all failed). verdicts are (row_index, replicate, passed). None when no row has 2 replicates."""
    by_row: defaultdict[int, dict[int, bool]] = defaultdict(dict)
    for row, replicate, passed in verdicts:
        by_row[row][replicate] = bool(passed)
    repeated = [set(replicates.values()) for replicates in by_row.values() if len(replicates) >= 2]
    if not repeated:
        return None
    return sum(len(outcomes) == 1 for outcomes in repeated) / len(repeated)


def row_means(scores: Sequence[tuple[int, int, float]]) -> dict[int, float]:
    """(row_index, replicate, score) -> {row_index: mean score over its replicates}, in row order."""
    by_row: defaultdict[int, list[float]] = defaultdict(list)
    for row, _replicate, score in scores:
        by_row[row].append(score)
    return {row: math.fsum(values) / len(values) for row, values in sorted(by_row.items())}

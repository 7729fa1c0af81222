"""What changed between two sweeps, configuration by configuration, and which changes are real.

For each configuration both sweeps ran (the same config hash), the per-row scores are compared
paired, as the leaderboard's verdict does (stats.compare_paired: Wilcoxon signed-rank over the
rows both scored): a configuration got significantly worse or better at level alpha, or it is
unchanged (its difference may be noise). The rows whose verdict flipped, pass to fail and fail to
pass, say where to look. Pure: the selector hands in each run's rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sweeps.engine import stats


@dataclass(frozen=True)
class RunRows:
    """One run's rows: the mean score of each row's replicates, and whether every replicate passed."""

    run_id: int
    score: float | None
    means: Mapping[int, float]
    passed: Mapping[int, bool]


@dataclass(frozen=True)
class ConfigChange:
    config_hash: str
    before: RunRows
    after: RunRows
    verdict: str  # "worse", "better" or "unchanged"
    difference: float | None  # mean of after - before over the shared rows
    p_value: float | None
    rows: int
    pass_to_fail: list[int]
    fail_to_pass: list[int]


@dataclass(frozen=True)
class Regression:
    changes: list[ConfigChange]
    only_before: list[str] = field(default_factory=list)  # config hashes the later sweep did not run
    only_after: list[str] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(change.verdict == verdict for change in self.changes)

    @property
    def summary(self) -> str:
        if not self.changes:
            return "no configuration in common"
        worse, better, same = self.count("worse"), self.count("better"), self.count("unchanged")
        plural = "s" if worse != 1 else ""
        return (f"{worse} configuration{plural} got significantly worse, {better} better, "
                f"{same} unchanged")  # fmt: skip


def compare_sweeps(before: Mapping[str, RunRows], after: Mapping[str, RunRows], *, alpha: float = 0.05) -> Regression:
    """`before` and `after`: each sweep's runs by config hash."""
    changes = []
    for config_hash in sorted(before.keys() & after.keys(), key=lambda h: after[h].run_id):
        old, new = before[config_hash], after[config_hash]
        comparison = stats.compare_paired(new.means, old.means, alpha=alpha, seed=new.run_id)
        verdict = "unchanged"
        if comparison is not None and comparison.distinguishable:
            verdict = "worse" if comparison.difference < 0 else "better"
        shared = sorted(old.passed.keys() & new.passed.keys())
        changes.append(ConfigChange(
            config_hash, old, new, verdict,
            comparison.difference if comparison else None, comparison.p_value if comparison else None,
            comparison.rows if comparison else len(shared),
            [row for row in shared if old.passed[row] and not new.passed[row]],
            [row for row in shared if new.passed[row] and not old.passed[row]],
        ))  # fmt: skip
    return Regression(
        changes,
        only_before=sorted(before.keys() - after.keys()),
        only_after=sorted(after.keys() - before.keys()),
    )

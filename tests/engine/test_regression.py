"""compare_sweeps: per configuration, a paired test says worse, better or unchanged, and lists
the rows whose verdict flipped."""

from __future__ import annotations

from sweeps.engine.regression import RunRows, compare_sweeps

ROWS = range(12)


def run(run_id, scores, score=None):
    return RunRows(run_id, score, dict(enumerate(scores)), {row: value >= 0.5 for row, value in enumerate(scores)})


def test_a_configuration_that_lost_on_every_row_is_significantly_worse():
    before = {"a": run(1, [1.0] * 12, 1.0), "b": run(2, [0.6] * 12), "gone": run(3, [1.0] * 12)}
    after = {"a": run(11, [0.0] * 10 + [1.0] * 2, 1 / 6), "b": run(12, [0.6] * 11 + [0.7]), "new": run(13, [1.0])}

    regression = compare_sweeps(before, after)

    worse, same = regression.changes
    assert (worse.config_hash, worse.verdict, worse.rows) == ("a", "worse", 12)
    assert worse.p_value < 0.01 and worse.difference == -10 / 12
    assert worse.pass_to_fail == list(range(10)) and worse.fail_to_pass == []
    assert (same.verdict, same.pass_to_fail, same.fail_to_pass) == ("unchanged", [], [])  # one row moved: noise
    assert (regression.only_before, regression.only_after) == (["gone"], ["new"])
    assert regression.summary == "1 configuration got significantly worse, 0 better, 1 unchanged"


def test_better_and_no_configuration_in_common():
    better = compare_sweeps({"a": run(1, [0.0] * 12)}, {"a": run(2, [1.0] * 12)})
    assert better.changes[0].verdict == "better" and better.changes[0].fail_to_pass == list(ROWS)
    nothing = compare_sweeps({"a": run(1, [0.0] * 12)}, {"b": run(2, [1.0] * 12)})
    assert nothing.changes == [] and nothing.summary == "no configuration in common"

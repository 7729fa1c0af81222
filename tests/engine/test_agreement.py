from __future__ import annotations

import pytest

from sweeps.engine.agreement import agreement


def test_kappa_matches_a_hand_computed_table():
    # 20 both pass, 5 judge only, 10 human only, 15 both fail (n = 50):
    # observed = 35/50 = 0.7; judge yes 25/50 = 0.5, human yes 30/50 = 0.6;
    # expected = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    pairs = [(True, True)] * 20 + [(True, False)] * 5 + [(False, True)] * 10 + [(False, False)] * 15
    found = agreement(pairs)
    assert (found.both_pass, found.judge_only, found.human_only, found.both_fail) == (20, 5, 10, 15)
    assert (found.pairs, found.agreed) == (50, 35)
    assert found.accuracy == pytest.approx(0.7)
    assert found.kappa == pytest.approx(0.4)
    assert found.kappa_note == ""


def test_perfect_agreement_is_kappa_one_and_opposite_answers_minus_one():
    assert agreement([(True, True), (False, False)]).kappa == pytest.approx(1.0)
    assert agreement([(True, False), (False, True)]).kappa == pytest.approx(-1.0)


def test_no_pairs_has_no_figures():
    found = agreement([])
    assert (found.pairs, found.accuracy, found.kappa) == (0, None, None)
    assert "no sample" in found.kappa_note


def test_kappa_is_undefined_when_both_always_say_the_same_one_thing():
    found = agreement([(True, True)] * 4)
    assert found.accuracy == 1.0
    assert found.kappa is None
    assert "undefined" in found.kappa_note


def test_one_rater_constant_gives_kappa_zero_not_undefined():
    # The judge always passes, people split: expected = human yes share = observed, kappa 0.
    found = agreement([(True, True), (True, False)])
    assert found.accuracy == 0.5
    assert found.kappa == pytest.approx(0.0)

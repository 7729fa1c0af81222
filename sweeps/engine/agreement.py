"""How far a judge's pass/fail verdicts agree with people's 👍/👎 on the same samples: the
counts table, the share of samples they agree on (accuracy) and Cohen's kappa, which discounts
the agreement two raters would reach by chance given how often each says yes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Agreement:
    both_pass: int  # judge passed, person 👍
    judge_only: int  # judge passed, person 👎
    human_only: int  # judge failed, person 👍
    both_fail: int  # judge failed, person 👎
    accuracy: float | None  # None without pairs
    kappa: float | None  # None when undefined; `kappa_note` says why
    kappa_note: str

    @property
    def pairs(self) -> int:
        return self.both_pass + self.judge_only + self.human_only + self.both_fail

    @property
    def agreed(self) -> int:
        return self.both_pass + self.both_fail


def agreement(pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """`pairs`: (judge passed?, person rated 👍?) per sample both have seen."""
    table = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    for judge, human in pairs:
        table[(bool(judge), bool(human))] += 1
    a, b, c, d = table[(True, True)], table[(True, False)], table[(False, True)], table[(False, False)]
    n = a + b + c + d
    if n == 0:
        return Agreement(a, b, c, d, None, None, "no sample has both a judge's verdict and a rating")
    observed = (a + d) / n
    judge_yes, human_yes = (a + b) / n, (a + c) / n
    expected = judge_yes * human_yes + (1 - judge_yes) * (1 - human_yes)
    if expected == 1:
        # Both raters said the same one thing every time: chance alone explains it all.
        return Agreement(a, b, c, d, observed, None, "undefined: the judge and the ratings each gave one answer only")
    return Agreement(a, b, c, d, observed, (observed - expected) / (1 - expected), "")

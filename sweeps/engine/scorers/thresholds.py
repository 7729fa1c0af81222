"""Scorers that hold a sample to a threshold on what it took rather than what it said: how long
its stages took and what they cost (promptfoo's `latency` and `cost` assertions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sweeps.engine.scorers.base import SampleFacts, Scorer, ScoreResult, Scoring, SpecOptions, verdict


@dataclass(frozen=True, kw_only=True)
class _AtMost(Scorer):
    options = ("threshold",)
    unit: ClassVar[str]
    threshold: float

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        threshold = options.number("threshold", -1.0)
        if "threshold" not in options.spec:
            options.error("threshold", f"required: the most {cls.unit} a sample may take")
        elif threshold is not None and threshold < 0:
            options.error("threshold", f"must be at least 0, got {threshold:g}")
        return {"threshold": threshold}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        raise TypeError(f"{type(self).__name__} reads the sample's facts: the executor runs it through ascore")

    async def ascore(self, output: str, variables: Mapping[str, Any], scoring: Scoring) -> ScoreResult:
        if scoring.sample is None:
            raise TypeError(f"{type(self).__name__} needs the sample's facts")
        value = self.measure(scoring.sample)
        passed = value <= self.threshold
        return verdict(passed, f"{self.shown(value)}, {'within' if passed else 'over'} {self.shown(self.threshold)}")

    def measure(self, sample: SampleFacts) -> float:
        raise NotImplementedError

    def shown(self, value: float) -> str:
        raise NotImplementedError


class Latency(_AtMost):
    """The pipeline took at most `threshold` milliseconds (its stages' latencies summed)."""

    unit = "milliseconds"

    def measure(self, sample: SampleFacts) -> float:
        return sample.latency_ms

    def shown(self, value: float) -> str:
        return f"{value:,.0f} ms"


class Cost(_AtMost):
    """The pipeline cost at most `threshold` US dollars (its stages' costs summed)."""

    unit = "US dollars"

    def measure(self, sample: SampleFacts) -> float:
        return sample.cost_usd

    def shown(self, value: float) -> str:
        return f"${value:.6g}"

"""Scorers rate each output of each dataset row: text, JSON and similarity checks, and the LLM
judge, all behind one Scorer (base.py), built from spec entries by build_scorer (registry.py)."""

from sweeps.engine.scorers.base import ModelCall, SampleFacts, Scorer, ScoreResult, Scoring, weighted_mean
from sweeps.engine.scorers.judge import JUDGE_INSTRUCTIONS
from sweeps.engine.scorers.registry import MAX_WEIGHT, SCORER_TYPES, build_scorer

__all__ = [
    "JUDGE_INSTRUCTIONS", "MAX_WEIGHT", "SCORER_TYPES", "ModelCall", "SampleFacts", "ScoreResult", "Scorer", "Scoring",
    "build_scorer", "weighted_mean",
]  # fmt: skip

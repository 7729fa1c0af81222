"""Similarity of the output to a rendered target: by characters (rapidfuzz), or by meaning
(the cosine of embeddings from any OpenAI-compatible `/embeddings` endpoint)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from rapidfuzz import fuzz

from sweeps.engine.scorers.base import Scorer, ScoreResult, Scoring, SpecOptions, quote
from sweeps.engine.templating import render_template

METHODS = ("fuzzy", "embedding")


@dataclass(frozen=True, kw_only=True)
class Similarity(Scorer):
    """Fuzzy similarity (rapidfuzz ratio) to the rendered `value`; passes at `threshold`.
    `method: embedding` compares meaning instead (EmbeddingSimilarity)."""

    options = ("value", "threshold", "method", "model")
    template_keys = {"value": ()}
    value: jinja2.Template
    threshold: float = 0.8

    @classmethod
    def variant(cls, spec: Mapping[str, Any]) -> type[Scorer]:
        return EmbeddingSimilarity if spec.get("method") == "embedding" else cls

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        threshold = options.number("threshold", 0.8)
        if threshold is not None and not 0 <= threshold <= 1:
            options.error("threshold", f"must be between 0 and 1, got {threshold:g}")
        options.choice("method", METHODS, "fuzzy")
        if "model" in options.spec and options.spec.get("method") != "embedding":
            options.error("model", "only method: embedding calls a model")
        return {"value": options.template("value", default="{{ expected }}"), "threshold": threshold}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        target = render_template(self.value, variables)
        return self.judged(fuzz.ratio(output.strip(), target) / 100, target)

    def judged(self, similarity: float, target: str) -> ScoreResult:
        passed = similarity >= self.threshold
        verdict = "reaches" if passed else "is below"
        reason = f"{self.kind} {similarity:.2f} to {quote(target)} {verdict} threshold {self.threshold:g}"
        return ScoreResult(similarity, passed, reason)

    kind = "similarity"


@dataclass(frozen=True, kw_only=True)
class EmbeddingSimilarity(Similarity):
    """The cosine of the output's and the target's embeddings from `model`, below 0 counted 0."""

    calls_model = True
    model_keys = ("model",)
    model_error = "embedding error"
    kind = "cosine similarity"
    model: str

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        arguments = super().parse_options(options)
        model = options.spec.get("model")
        if not isinstance(model, str) or "/" not in model.strip("/"):
            options.error("model", f"required: provider/model of an embedding model, e.g. "
                                   f"openai/text-embedding-3-small; got {model!r}")  # fmt: skip
        return {**arguments, "model": model}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        raise TypeError("similarity by embedding needs a model call: the executor runs it through ascore")

    async def ascore(self, output: str, variables: Mapping[str, Any], scoring: Scoring) -> ScoreResult:
        target = render_template(self.value, variables)
        first, second = await scoring.embed(self.model, (output.strip(), target))
        return self.judged(max(0.0, cosine(first, second)), target)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of two vectors; ValueError when they cannot be compared."""
    if len(a) != len(b):
        raise ValueError(f"the embeddings have {len(a)} and {len(b)} dimensions")
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norms == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms

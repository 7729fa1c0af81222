"""What every scorer is: it rates one output of one dataset row with a value in 0..1.

A spec entry such as `{type: contains, value: "{{ expected }}", weight: 2}` becomes a
Scorer through build_scorer (registry.py), which checks everything up front (templates
compiled, regexes and JSON schemas validated) so a sweep never stops halfway on a bad scorer.
String `value`s are templates rendered with the row's variables (dataset columns and stage
outputs); when that fails for a row, the scorer gives it 0 and says why.

Every scorer offers `ascore`, which the executor awaits; most give `score`'s verdict, which
needs no model call. The LLM judge is a scorer like the others whose verdict takes a model call
(`calls_model`), and a python scorer awaits the user's function within its time limit.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import jinja2

from sweeps.engine.errors import FieldError
from sweeps.engine.templating import TemplateError, compile_template, limit_error

# How a scorer calls a model: ("provider/model", messages, params) -> the answer's text. The
# executor's makes the call like a stage's (cache, budget, retries, rate limits).
ModelCall = Callable[[str, Sequence[Mapping[str, str]], Mapping[str, Any]], Awaitable[str]]
# How a scorer asks for embeddings: ("provider/model", texts) -> one vector per text, made like
# any other call (cache, budget, retries) and recorded among the sample's calls.
EmbedCall = Callable[[str, tuple[str, ...]], Awaitable[list[list[float]]]]


@dataclass(frozen=True)
class SampleFacts:
    """What the executor knows of a sample besides its text, for scorers that judge more than
    the output. Latency and cost are the pipeline's stages' (a judge's calls come later)."""

    row: Mapping[str, Any]  # the dataset row alone, of the template variables
    latency_ms: float = 0.0  # the stages' summed; a call served from the cache keeps its first latency
    cost_usd: float = 0.0
    tool_calls: tuple[Mapping[str, Any], ...] = ()  # the tools the final answer called


async def no_model_call(model: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any]) -> str:
    raise TypeError("only a scorer with calls_model may call a model")


async def no_embed_call(model: str, texts: tuple[str, ...]) -> list[list[float]]:
    raise TypeError("only a scorer with calls_model may ask for embeddings")


@dataclass(frozen=True)
class Scoring:
    """What a verdict may use besides the output and the variables: the sample's facts, and (for
    a scorer that `calls_model`) the executor's chat and embedding calls."""

    sample: SampleFacts | None = None
    call: ModelCall = no_model_call
    embed: EmbedCall = no_embed_call


@dataclass(frozen=True)
class ScoreResult:
    value: float  # 0..1
    passed: bool
    reason: str


def weighted_mean(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Mean of (value, weight) pairs; None when there is nothing to average."""
    total_weight = weighted_sum = 0.0
    for value, weight in pairs:
        total_weight += weight
        weighted_sum += value * weight
    return weighted_sum / total_weight if total_weight > 0 else None


class SpecOptions:
    """Reads one scorer spec, collecting every problem with its field path."""

    def __init__(self, spec: Mapping[str, Any], path: str) -> None:
        self.spec = spec
        self.path = path
        self.errors: list[FieldError] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(FieldError(f"{self.path}.{key}" if self.path else key, message))

    def template(self, key: str, default: str | None = None) -> jinja2.Template | None:
        raw = self.spec.get(key, default)
        if raw is None:
            self.error(key, "required")
        elif isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            self.error(key, f"must be a string, got {type(raw).__name__}")
        elif raw == "":
            self.error(key, "must not be empty")
        else:
            try:
                template = compile_template(str(raw))  # YAML turns `value: 42` into a number
            except TemplateError as exc:
                self.error(key, f"invalid template: {exc}")
            else:
                if bomb := limit_error(template):
                    self.error(key, bomb)
                    return None
                return template
        return None

    def text(self, key: str, default: str) -> str:
        raw = self.spec.get(key, default)
        if not isinstance(raw, str) or not raw:
            self.error(key, f"must be a non-empty string, got {raw!r}")
        return raw

    def number(self, key: str, default: float) -> float | None:
        raw = self.spec.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            self.error(key, f"must be a number, got {raw!r}")
            return None
        if not math.isfinite(raw):
            self.error(key, f"must be a finite number, got {raw!r}")
            return None
        return float(raw)

    def count(self, key: str) -> int | None:
        raw = self.spec.get(key)
        if raw is None:
            self.error(key, "required")
        elif isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            self.error(key, f"must be a whole number >= 0, got {raw!r}")
        else:
            return raw
        return None

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.spec.get(key, default)
        if not isinstance(raw, bool):
            self.error(key, f"must be true or false, got {raw!r}")
        return raw

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.spec.get(key, default)
        if raw not in allowed:
            self.error(key, f"must be one of: {', '.join(allowed)}; got {raw!r}")
        return raw


def verdict(passed: bool, reason: str) -> ScoreResult:
    """The result of a pass/fail check, which scores 1 or 0."""
    return ScoreResult(1.0 if passed else 0.0, passed, reason)


def quote(text: str, limit: int = 80) -> str:
    """repr() of text, shortened so a reason stays readable."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


@dataclass(frozen=True, kw_only=True)
class Scorer(ABC):
    """Rates outputs. Neither `score` nor `ascore` raises on row data; a 0 comes with its reason
    instead. (`ascore` does raise when its model call fails or answers nonsense: the executor
    turns that into a 0 with the reason, after deciding whether the sample should wait.)"""

    name: str
    weight: float = 1.0
    options: ClassVar[tuple[str, ...]] = ()  # spec keys of this type besides type, name, weight
    # Spec keys holding templates rendered per row, each with the variables it may use besides
    # the row's (dataset columns and stage outputs): spec validation checks the names.
    template_keys: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # The verdict takes a model call: the executor awaits `ascore` with a ModelCall, and the
    # estimate counts one call per sample. Spec keys naming that provider/model: `model_keys`.
    calls_model: ClassVar[bool] = False
    model_error: ClassVar[str] = "judge error"  # how a verdict lost to a failed model call begins
    model_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def variant(cls, spec: Mapping[str, Any]) -> type[Scorer]:
        """The class that scores this spec entry: a type whose options choose how it works
        (similarity's `method`) answers with the class of that method."""
        return cls

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        """Constructor arguments of this type, read from its spec options."""
        return {}

    def score(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        try:
            return self.evaluate(output, variables)
        except TemplateError as exc:
            return ScoreResult(0.0, False, f"value template failed: {exc}")

    async def ascore(self, output: str, variables: Mapping[str, Any], scoring: Scoring) -> ScoreResult:
        """The verdict: a scorer that needs one makes its model call through `scoring` (it
        `calls_model`), or reads the sample's facts there; the others give `score`'s."""
        return self.score(output, variables)

    @abstractmethod
    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult: ...

"""The experiment spec: the API's JSON body, also accepted as a YAML file.

`parse_spec` checks everything before anything is saved and reports every problem at
once, each with the field path it is about (`pipeline[1].prompt`, `sweep.params.model`),
so a person can fix a spec in one go instead of one error per attempt.
"""

from __future__ import annotations

import copy
import difflib
import keyword
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import yaml

from sweeps.engine.errors import FieldError, SpecError
from sweeps.engine.scorers import build_scorer
from sweeps.engine.space import Choice, Space, Steps, Uniform, ValueSpec, parse_value_spec
from sweeps.engine.spec_files import parse_sources, reference_problem
from sweeps.engine.strategies import NAMES_TEXT, STRATEGIES, Strategy
from sweeps.engine.templating import TemplateError, compile_template, limit_error, render_budget, template_variables
from sweeps.engine.values import INT64_MAX, value_problems

DEFAULT_SWEEP_TYPE = "grid"
DEFAULT_MAX_CONCURRENCY = 8
MAX_CONCURRENCY = 256  # more parallel calls than this only buys rate-limit errors
# Fixed bounds of the other numbers (those that set how much work a sweep is, n_trials, repeats
# and samples per sweep, are SpecLimits, from settings).
MAX_TOP_K = 1000  # configurations guided/tpe search refines around
MAX_SEED = INT64_MAX  # a seed is 0..2^63-1
MAX_BUDGET_TOKENS = 10**15  # the budget columns are 64-bit, and sums of spent tokens must fit beside it
MAX_BUDGET_USD = 10**9
MAX_CALL_TOKENS = 10_000_000  # a call's params.max_tokens: more than any model answers

TOP_LEVEL_KEYS = (
    "name",
    "description",
    "pipeline",
    "dataset",
    "scorers",
    "sweep",
    "repeats",
    "max_concurrency",
    "budget",
    "fail_fast",
    "sources",  # the files a spec's fields were read from (spec_files.py), as recorded then
)
STAGE_KEYS = ("name", "prompt", "system", "model", "params")
SWEEP_KEYS = ("type", "params", "n_trials", "top_k", "explore_ratio", "seed", "early_stopping")
EARLY_STOPPING_KEYS = ("rungs", "alpha")
DEFAULT_RUNGS = (0.1, 0.3, 1.0)
DEFAULT_ALPHA = 0.05
BUDGET_KEYS = ("max_tokens", "max_cost_usd")

# Stage names become template variables, so they must be names Jinja can read.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JINJA_LITERALS = frozenset({"true", "false", "none"})
_MODEL = re.compile(r"[^/\s]+/\S+")  # the model part may itself contain slashes
# A sweep parameter path: optionally scoped to one stage, then what it sets.
_PARAM_PATH = re.compile(
    r"(?:stages\.(?P<stage>[^.]+)\.)?(?P<target>model|system|prompt|params\.[A-Za-z_][A-Za-z0-9_]*)"
)
_PARAM_PATH_HELP = "use model, system, prompt, params.<name>, or stages.<stage>.model|system|prompt|params.<name>"


@dataclass(frozen=True)
class StageSpec:
    name: str
    prompt: str
    system: str | None
    model: str | None  # None: the sweep's model, or the previous stage's
    params: Mapping[str, Any]


@dataclass(frozen=True)
class EarlyStoppingSpec:
    rungs: tuple[float, ...]  # shares of the dataset's rows after which configurations are compared; ends at 1.0
    alpha: float  # a configuration stops when a paired test shows it worse than the best at this level


@dataclass(frozen=True)
class SweepSpec:
    type: str
    space: Space
    n_trials: int | None
    top_k: int
    explore_ratio: float
    seed: int | None
    early_stopping: EarlyStoppingSpec | None = None

    @property
    def strategy(self) -> Strategy:
        """What proposes this sweep's configs, and how many per round."""
        return STRATEGIES[self.type]


@dataclass(frozen=True)
class BudgetSpec:
    max_tokens: int | None
    max_cost_usd: float | None


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    description: str
    pipeline: tuple[StageSpec, ...]
    dataset: tuple[dict, ...]
    scorers: tuple[dict, ...]  # as written; scoring.build_scorer turns each into a Scorer
    sweep: SweepSpec
    repeats: int
    max_concurrency: int
    budget: BudgetSpec
    # Stop the sweep (reason provider_error) when a provider says the account is out of quota.
    fail_fast: bool = True
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Every field, defaults filled in; `parse_spec(spec.to_dict()) == spec`."""
        return {
            "name": self.name,
            "description": self.description,
            "pipeline": [
                {
                    "name": stage.name,
                    "prompt": stage.prompt,
                    "system": stage.system,
                    "model": stage.model,
                    "params": copy.deepcopy(dict(stage.params)),
                }
                for stage in self.pipeline
            ],
            "dataset": copy.deepcopy(list(self.dataset)),
            "scorers": copy.deepcopy(list(self.scorers)),
            "sweep": {
                "type": self.sweep.type,
                "params": {key: _value_spec_to_raw(self.sweep.space.params[key]) for key in self.sweep.space.keys()},
                "n_trials": self.sweep.n_trials,
                "top_k": self.sweep.top_k,
                "explore_ratio": self.sweep.explore_ratio,
                "seed": self.sweep.seed,
                "early_stopping": {"rungs": list(es.rungs), "alpha": es.alpha}
                if (es := self.sweep.early_stopping)
                else None,
            },
            "repeats": self.repeats,
            "max_concurrency": self.max_concurrency,
            "budget": {
                "max_tokens": self.budget.max_tokens,
                "max_cost_usd": self.budget.max_cost_usd,
            },
            "fail_fast": self.fail_fast,
            **({"sources": copy.deepcopy(dict(self.sources))} if self.sources else {}),
        }


MAX_NAME_LENGTH = 200  # an experiment's name is stored in a column this wide


@dataclass(frozen=True)
class SpecLimits:
    """How much work one sweep may be (the server's settings); None: no limit (a spec already
    accepted is read again with no limits, so lowering a setting never breaks a sweep in progress)."""

    max_grid: int = 10_000  # configurations of a grid
    max_trials: int | None = None  # sweep.n_trials
    max_repeats: int | None = None  # repeats
    max_samples: int | None = None  # configurations x dataset rows x repeats, per sweep


def load_spec_text(text: str) -> Any:
    """Read a spec written as YAML or JSON (JSON is YAML); SpecError names the bad line."""
    try:
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" at line {mark.line + 1}" if mark else ""
        raise SpecError.at("", f"invalid YAML{line}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise SpecError.at("", f"invalid YAML: {exc}") from exc


def dump_spec_text(data: Mapping[str, Any]) -> str:
    """A stored spec as the YAML a person edits (keys in the spec's order, text unescaped)."""
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)


def parse_spec(
    data: Any,
    *,
    max_grid: int | None = None,
    limits: SpecLimits | None = None,
    known_providers: Collection[str] | Mapping[str, str] | None = None,
) -> ExperimentSpec:
    """Validate raw spec data into an ExperimentSpec, or raise one SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError.at("", f"the spec must be an object with a name and a pipeline, got {_kind(data)}")
    # Values nothing can store (NUL, lone surrogates, NaN, huge integers) are refused before any
    # field is read: every later check may then trust its text and numbers.
    if problems := value_problems(data):
        raise SpecError(problems)
    with render_budget():  # every template rendered to validate it shares one step and time budget
        return _parse_spec(data, max_grid, limits or SpecLimits(), known_providers)


def _parse_spec(
    data: dict, max_grid: int | None, limits: SpecLimits, known_providers: Collection[str] | Mapping[str, str] | None
) -> ExperimentSpec:
    max_grid = max_grid if max_grid is not None else limits.max_grid
    v = _Validator()
    v.reject_unknown_keys(data, "", TOP_LEVEL_KEYS)

    name = v.text(data, "name", "", required=True, max_length=MAX_NAME_LENGTH) or ""
    description = v.text(data, "description", "") or ""
    dataset = _parse_dataset(v, data.get("dataset"))
    columns = {column for row in dataset for column in row}
    pipeline = _parse_pipeline(v, data.get("pipeline"), columns, known_providers)
    sweep = _parse_sweep(v, data.get("sweep"), pipeline, columns, max_grid, limits.max_trials, known_providers)
    _require_first_model(v, pipeline, sweep.space)
    scorers = _parse_scorers(v, data.get("scorers"), pipeline, columns, known_providers)
    repeats = v.integer(data, "repeats", "", default=1, maximum=limits.max_repeats)
    max_concurrency = v.integer(data, "max_concurrency", "", default=DEFAULT_MAX_CONCURRENCY, maximum=MAX_CONCURRENCY)
    budget = _parse_budget(v, data.get("budget"))
    fail_fast = v.boolean(data, "fail_fast", "", default=True)
    sources = parse_sources(data.get("sources"), v.errors)
    if not v.errors:
        _check_samples(v, sweep, len(dataset), repeats or 1, limits.max_samples)

    if v.errors:
        raise SpecError(v.errors)
    return ExperimentSpec(
        name=name,
        description=description,
        pipeline=pipeline,
        dataset=dataset,
        scorers=scorers,
        sweep=sweep,
        repeats=repeats,
        max_concurrency=max_concurrency,
        budget=budget,
        fail_fast=fail_fast,
        sources=sources,
    )


# --- sections ---------------------------------------------------------------------------


def _parse_dataset(v: _Validator, raw: Any) -> tuple[dict, ...]:
    # No dataset still runs the pipeline once per config: prompts then use no variables.
    if raw is None or raw == []:
        return ({},)
    if not isinstance(raw, list):
        v.error("dataset", reference_problem(raw) or f"must be a list of objects, got {_kind(raw)}")
        return ({},)
    rows = []
    for index, row in enumerate(raw):
        if v.string_keyed(row, f"dataset[{index}]"):
            rows.append(copy.deepcopy(row))
    return tuple(rows) or ({},)


def _parse_pipeline(
    v: _Validator, raw: Any, columns: set[str], known_providers: Collection[str] | None
) -> tuple[StageSpec, ...]:
    if raw is None or raw == []:
        v.error("pipeline", "needs at least one stage")
        return ()
    if not isinstance(raw, list):
        v.error("pipeline", f"must be a list of stages, got {_kind(raw)}")
        return ()
    # All names first: a template that uses a later stage gets a clearer message than "unknown".
    names = [item.get("name") if isinstance(item, dict) else None for item in raw]
    stages = []
    for index, item in enumerate(raw):
        path = f"pipeline[{index}]"
        if not isinstance(item, dict):
            v.error(path, f"must be an object, got {_kind(item)}")
            continue
        v.reject_unknown_keys(item, path, STAGE_KEYS)
        name = v.text(item, "name", path, required=True)
        if name is not None:
            _check_stage_name(v, name, _at(path, "name"), names[:index], columns)
        prompt = v.text(item, "prompt", path, required=True)
        if prompt is not None:
            _check_template(v, prompt, _at(path, "prompt"), columns, names, index)
        system = v.text(item, "system", path)
        if system is not None:
            _check_template(v, system, _at(path, "system"), columns, names, index)
        model = v.text(item, "model", path)
        if model is not None:
            _check_model(v, model, _at(path, "model"), known_providers)
        params = item.get("params")
        if params is not None and not v.string_keyed(params, _at(path, "params")):
            params = None
        if params and "max_tokens" in params:
            _check_call_tokens(v, params["max_tokens"], _at(path, "params.max_tokens"))
        stages.append(
            StageSpec(
                name=name or "",
                prompt=prompt or "",
                system=system,
                model=model,
                params=copy.deepcopy(params or {}),
            )
        )
    return tuple(stages)


def _parse_sweep(
    v: _Validator,
    raw: Any,
    pipeline: Sequence[StageSpec],
    columns: set[str],
    max_grid: int,
    max_trials: int | None,
    known_providers: Collection[str] | None,
) -> SweepSpec:
    section = v.section(raw, "sweep", SWEEP_KEYS)
    sweep_type = v.text(section, "type", "sweep")
    if sweep_type is None:
        sweep_type = DEFAULT_SWEEP_TYPE
    strategy = STRATEGIES.get(sweep_type)
    if strategy is None:
        v.error("sweep.type", f"unknown sweep type {sweep_type!r}: use {NAMES_TEXT}")

    space = Space(_parse_space(v, section.get("params"), pipeline, columns, known_providers))
    if strategy is not None and strategy.is_exhaustive:
        _check_grid(v, space, max_grid)

    n_trials = v.integer(section, "n_trials", "sweep", default=None, maximum=max_trials)
    if section.get("n_trials") is None and strategy is not None and not strategy.is_exhaustive:
        v.error("sweep.n_trials", f"is required for a {sweep_type} sweep")
    return SweepSpec(
        type=sweep_type,
        space=space,
        n_trials=n_trials,
        top_k=v.integer(section, "top_k", "sweep", default=5, maximum=MAX_TOP_K),
        explore_ratio=v.number(section, "explore_ratio", "sweep", default=0.3, between=(0.0, 1.0)),
        seed=v.integer(section, "seed", "sweep", default=None, minimum=0, maximum=MAX_SEED),
        early_stopping=_parse_early_stopping(v, section.get("early_stopping")),
    )


def _check_samples(v: _Validator, sweep: SweepSpec, rows: int, repeats: int, max_samples: int | None) -> None:
    """The sweep's samples at most (configurations x rows x repeats) stay within the limit."""
    if max_samples is None:
        return
    exhaustive = sweep.strategy.is_exhaustive  # called only on a valid spec: the type is known
    configs = sweep.space.grid_size() if exhaustive else sweep.n_trials
    if configs is None:
        return
    samples = configs * rows * repeats
    if samples > max_samples:
        field = "sweep.params" if exhaustive else "sweep.n_trials"
        v.error(
            field,
            f"the sweep would make {samples:,} samples ({configs:,} configurations x {rows:,} rows x "
            f"{repeats:,} repeats), more than the limit of {max_samples:,} per sweep",
        )


def _parse_early_stopping(v: _Validator, raw: Any) -> EarlyStoppingSpec | None:
    if raw is None or raw is False:
        return None
    path = "sweep.early_stopping"
    section = {} if raw is True else v.section(raw, path, EARLY_STOPPING_KEYS)
    alpha = v.number(section, "alpha", path, default=DEFAULT_ALPHA, between=(0.0001, 0.5))
    rungs = section.get("rungs", list(DEFAULT_RUNGS))
    where = f"{path}.rungs"
    if not isinstance(rungs, list) or not rungs:
        v.error(where, f"must be a list of shares of the dataset such as [0.1, 0.3, 1.0], got {_kind(rungs)}")
        return None
    for i, rung in enumerate(rungs):
        if isinstance(rung, bool) or not isinstance(rung, int | float) or not 0 < rung <= 1:
            v.error(f"{where}[{i}]", f"must be a share of the dataset's rows above 0 and at most 1, got {rung!r}")
            return None
    if any(b <= a for a, b in zip(rungs, rungs[1:])):
        v.error(where, f"must increase, got {rungs}")
        return None
    # The last rung is the whole dataset: a survivor always finishes, so its score is comparable.
    return EarlyStoppingSpec(rungs=(*(float(r) for r in rungs if r < 1), 1.0), alpha=float(alpha))


def _parse_space(
    v: _Validator,
    raw: Any,
    pipeline: Sequence[StageSpec],
    columns: set[str],
    known_providers: Collection[str] | None,
) -> dict[str, ValueSpec]:
    if raw is None:
        return {}
    if not v.string_keyed(raw, "sweep.params"):
        return {}
    names = [stage.name for stage in pipeline]
    params: dict[str, ValueSpec] = {}
    for key, raw_spec in raw.items():
        path = _at("sweep.params", key)
        match = _PARAM_PATH.fullmatch(key)
        if match is None:
            v.error(path, f"not a parameter path: {_PARAM_PATH_HELP}")
            continue
        stage = match["stage"]
        if stage is not None and stage not in names:
            v.error(path, f"unknown stage {stage!r} (stages: {_listing(names)})")
            continue
        spec = v.attempt(parse_value_spec, raw_spec, path)
        if spec is None:
            continue
        target = match["target"]
        if target == "params.max_tokens":
            values = spec.values if isinstance(spec, Choice) else (spec.low, spec.high)
            if not all(_check_call_tokens(v, value, path) for value in values):
                continue
        if target in ("model", "system", "prompt"):
            # A top-level prompt or system applies to every stage, so the first stage,
            # which can see the fewest variables, decides what it may use.
            stage_index = names.index(stage) if stage is not None else 0
            if not _check_text_choices(v, spec, path, target, columns, names, stage_index, known_providers):
                continue
        params[key] = spec
    return params


def _check_text_choices(
    v: _Validator,
    spec: ValueSpec,
    path: str,
    target: str,
    columns: set[str],
    names: Sequence[str],
    stage_index: int,
    known_providers: Collection[str] | None,
) -> bool:
    """Models, prompts and systems are text: only a list of choices makes sense for them."""
    if not isinstance(spec, Choice):
        v.error(path, f"{target} takes a list of choices, not a range")
        return False
    errors_before = len(v.errors)
    for index, value in enumerate(spec.values):
        item_path = f"{path}[{index}]"
        if target == "system" and value is None:
            continue  # a choice of "no system message"
        if not isinstance(value, str):
            v.error(item_path, f"must be a string, got {_kind(value)}")
        elif target == "model":
            _check_model(v, value, item_path, known_providers)
        else:
            _check_template(v, value, item_path, columns, names, stage_index)
    return len(v.errors) == errors_before


def _check_grid(v: _Validator, space: Space, max_grid: int) -> None:
    ranges = [key for key in space.keys() if isinstance(space.params[key], Uniform)]
    for key in ranges:
        v.error(
            _at("sweep.params", key),
            "a grid needs discrete values: add a step or give a list, or use type random or guided",
        )
    if ranges:
        return
    size = space.grid_size()
    if size is not None and size > max_grid:
        v.error(
            "sweep.params",
            f"the grid has {size:,} configurations, more than the limit of {max_grid:,}: "
            "use type random or guided with n_trials",
        )


def _require_first_model(v: _Validator, pipeline: Sequence[StageSpec], space: Space) -> None:
    # Later stages inherit the model of the stage before them; the first has nothing to inherit.
    if not pipeline or pipeline[0].model is not None:
        return
    if {"model", f"stages.{pipeline[0].name}.model"} & set(space.keys()):
        return
    v.error("pipeline[0].model", "the first stage needs a model (provider/model) unless the sweep sets model")


def _parse_scorers(
    v: _Validator,
    raw: Any,
    pipeline: Sequence[StageSpec],
    columns: set[str],
    known_providers: Collection[str] | None,
) -> tuple[dict, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        v.error("scorers", f"must be a list, got {_kind(raw)}")
        return ()
    scorers = []
    for index, item in enumerate(raw):
        path = f"scorers[{index}]"
        if not isinstance(item, dict):
            v.error(path, f"must be an object, got {_kind(item)}")
        elif (scorer := v.attempt(build_scorer, item, path)) is not None:
            scorers.append(copy.deepcopy(item))
            # Scorers run after the whole pipeline: every stage's output is a variable (and for
            # a judge's rubric, `output`). A misspelt one would otherwise score every row 0.
            names = [stage.name for stage in pipeline]
            for key, extra in scorer.template_keys.items():
                if isinstance(item.get(key), str):  # a number (`value: 42`) names no variable
                    visible = [*names, *extra]
                    _check_template(v, item[key], _at(path, key), columns, visible, len(visible))
            for key in scorer.model_keys:
                _check_model(v, item[key], _at(path, key), known_providers)
    return tuple(scorers)


def _parse_budget(v: _Validator, raw: Any) -> BudgetSpec:
    section = v.section(raw, "budget", BUDGET_KEYS)
    return BudgetSpec(
        max_tokens=v.integer(section, "max_tokens", "budget", default=None, maximum=MAX_BUDGET_TOKENS),
        max_cost_usd=v.number(section, "max_cost_usd", "budget", default=None, positive=True, maximum=MAX_BUDGET_USD),
    )


# --- checks shared by several sections --------------------------------------------------


def _check_stage_name(v: _Validator, name: str, path: str, earlier: Sequence[Any], columns: set[str]) -> None:
    if not _IDENTIFIER.fullmatch(name) or keyword.iskeyword(name) or name in _JINJA_LITERALS:
        v.error(
            path,
            f"{name!r} is not a valid stage name: it becomes a template variable, so use "
            "letters, digits and underscores, not starting with a digit",
        )
    elif name in earlier:
        v.error(path, f"duplicate stage name {name!r}")
    elif name in columns:
        v.error(path, f"{name!r} is also a dataset column: rename one, a template could not tell them apart")


def _check_template(
    v: _Validator, source: str, path: str, columns: set[str], names: Sequence[Any], stage_index: int
) -> None:
    """The template compiles and reads only dataset columns and earlier stages' outputs."""
    try:
        template = compile_template(source)
    except TemplateError as exc:
        v.error(path, str(exc))
        return
    if bomb := limit_error(template):
        v.error(path, bomb)
        return
    builtins = template.environment.globals  # range, dict, ... are fine
    earlier = names[:stage_index]
    for variable in sorted(template_variables(source)):
        if variable in columns or variable in earlier or variable in builtins:
            continue
        if variable in names:
            v.error(
                path,
                f"{variable!r} is not an earlier stage: a stage can use only the outputs of stages before it",
            )
        else:
            v.error(
                path,
                f"unknown variable {variable!r}: not a dataset column ({_listing(sorted(columns))}) "
                f"nor an earlier stage ({_listing(earlier)})",
            )


def _check_call_tokens(v: _Validator, value: Any, path: str) -> bool:
    """A call's max_tokens: what its budget reservation and the provider both take as a count."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CALL_TOKENS:
        v.error(path, f"max_tokens must be a whole number from 1 to {MAX_CALL_TOKENS:,}, got {value!r}")
        return False
    return True


def _check_model(v: _Validator, model: str, path: str, known_providers: Collection[str] | None) -> None:
    if not _MODEL.fullmatch(model):
        v.error(path, f"{model!r} is not of the form provider/model, e.g. mock/echo")
        return
    provider = model.split("/", 1)[0]
    if known_providers is None:
        return
    if provider not in known_providers:
        v.error(path, f"unknown provider {provider!r} (known: {_listing(sorted(known_providers))})")
    elif isinstance(known_providers, Mapping) and known_providers[provider]:
        # Given as {name: why it is unavailable, or ""}: say what to do, not just "unknown".
        v.error(path, f"provider {provider!r} is unavailable: {known_providers[provider]}")


# --- the validator ----------------------------------------------------------------------

T = TypeVar("T")


class _Validator:
    """Reads raw spec data, recording each problem with its path instead of stopping at the first.

    Readers return a usable placeholder (None, a default, {}) after recording an error, so
    parsing goes on and one SpecError at the end lists everything.
    """

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def attempt(self, parse: Callable[..., T], *args: Any) -> T | None:
        """Run another module's parser (value specs, scorers), keeping its errors with ours."""
        try:
            return parse(*args)
        except SpecError as exc:
            self.errors.extend(exc.errors)
            return None

    def reject_unknown_keys(self, section: dict, path: str, allowed: Sequence[str]) -> None:
        for key in section:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                advice = f"did you mean {hint[0]!r}?" if hint else f"allowed: {', '.join(allowed)}"
                self.error(_at(path, str(key)), f"unknown key; {advice}")

    def section(self, raw: Any, path: str, allowed: Sequence[str]) -> dict:
        """An optional object with known keys; {} when it is absent or not an object."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error(path, f"must be an object, got {_kind(raw)}")
            return {}
        self.reject_unknown_keys(raw, path, allowed)
        return raw

    def string_keyed(self, raw: Any, path: str) -> bool:
        """raw is an object whose keys are strings (YAML also allows numbers and nulls)."""
        if not isinstance(raw, dict):
            self.error(path, f"must be an object, got {_kind(raw)}")
            return False
        bad = [key for key in raw if not isinstance(key, str)]
        for key in bad:
            self.error(path, f"keys must be strings, got {_kind(key)} {key!r}")
        return not bad

    def text(
        self, section: dict, key: str, path: str, *, required: bool = False, max_length: int | None = None
    ) -> str | None:
        value = section.get(key)
        where = _at(path, key)
        if value is None:
            if required:
                self.error(where, "is required")
            return None
        if not isinstance(value, str):
            self.error(where, reference_problem(value) or f"must be a string, got {_kind(value)}")
            return None
        if required and not value.strip():
            self.error(where, "must not be empty")
            return None
        if max_length is not None and len(value) > max_length:
            self.error(where, f"has {len(value)} characters; at most {max_length} are allowed")
            return None
        return value

    def boolean(self, section: dict, key: str, path: str, *, default: bool) -> bool:
        value = section.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(_at(path, key), f"must be true or false, got {_kind(value)}")
            return default
        return value

    @overload
    def integer(
        self, section: dict, key: str, path: str, *, default: int, minimum: int | None = 1, maximum: int | None = None
    ) -> int: ...

    @overload
    def integer(
        self, section: dict, key: str, path: str, *, default: None, minimum: int | None = 1, maximum: int | None = None
    ) -> int | None: ...

    def integer(
        self,
        section: dict,
        key: str,
        path: str,
        *,
        default: int | None,
        minimum: int | None = 1,
        maximum: int | None = None,
    ) -> int | None:
        value = section.get(key)
        where = _at(path, key)
        if value is None:
            return default
        # JSON clients (JavaScript) may send 5 as 5.0; a bool is an int to Python but not to a person.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(where, f"must be an integer, got {_kind(value)}")
            return default
        if minimum is not None and value < minimum:
            self.error(where, f"must be at least {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.error(where, f"must be at most {maximum:,}, got {value:,}")
            return default
        return value

    def number(
        self,
        section: dict,
        key: str,
        path: str,
        *,
        default: float | None,
        between: tuple[float, float] | None = None,
        positive: bool = False,
        maximum: float | None = None,
    ) -> Any:
        value = section.get(key)
        where = _at(path, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(where, f"must be a number, got {_kind(value)}")
            return default
        if not math.isfinite(value):
            self.error(where, f"must be a finite number, got {value}")
            return default
        if positive and value <= 0:
            self.error(where, f"must be greater than 0, got {value}")
            return default
        if between is not None and not between[0] <= value <= between[1]:
            self.error(where, f"must be between {between[0]:g} and {between[1]:g}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.error(where, f"must be at most {maximum:,}, got {value}")
            return default
        return value


# --- small helpers ----------------------------------------------------------------------


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text (a spec must stay JSON), refuses duplicate keys,
    which plain YAML silently resolves to the last one, and refuses aliases: a few nested
    `*name` references expand into gigabytes of JSON (the "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a spec: write the value out", mark
            )
        return super().compose_node(parent, index)


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _SpecLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _value_spec_to_raw(spec: ValueSpec) -> Any:
    """The spec notation of a value spec: a list, or {min, max[, step][, log]}."""
    if isinstance(spec, Choice):
        return copy.deepcopy(list(spec.values))
    raw: dict[str, Any] = {"min": spec.low, "max": spec.high}
    if isinstance(spec, Steps):
        raw["step"] = spec.step
    if spec.log:
        raw["log"] = True
    return raw


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _listing(names: Collection[Any]) -> str:
    return ", ".join(str(name) for name in names) or "none"


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages a spec author understands."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__

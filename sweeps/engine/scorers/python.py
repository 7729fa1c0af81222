"""Scorers the user writes in Python: a spec names a function, it never carries code.

`{type: python, function: "scorers.examples:label_matches", options: {...}}` calls
`label_matches(output, context)` for each sample. The function must live in a module the
deployment allows (configure(), from PROMPTLOOPER_SCORER_MODULES) or be published by an
installed package under the `promptlooper.scorers` entry point group: a spec may name only
functions its operator installed. The module is imported when the spec is validated, never
before its name is allowed, so a spec cannot make the server import `os` or anything else.

A sync function runs in a daemon thread of its own, an async one on the executor's loop; both
within `timeout` seconds, counted from when the function starts. A sync function that ignores
the limit keeps its thread until it returns or the process ends (a daemon thread never holds
up a worker's shutdown): the sample is scored 0 and the sweep goes on.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from sweeps.engine.scorers.base import Scorer, ScoreResult, Scoring, SpecOptions

ENTRY_POINT_GROUP = "promptlooper.scorers"
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ScorerContext:
    """What a scorer function gets besides the output."""

    row: Mapping[str, Any]  # the dataset row's columns
    stages: Mapping[str, str]  # every stage's output, by stage name, in pipeline order
    options: Mapping[str, Any]  # the spec entry's `options`
    vars: Mapping[str, Any] = field(default_factory=dict)  # what templates see: row and stages

    def __getitem__(self, key: str) -> Any:
        """promptfoo's get_assert(output, context) reads context["vars"] and context["config"]."""
        found = {"vars": self.vars, "config": self.options, "test": {"vars": self.vars}}.get(key)
        if found is None:
            raise KeyError(key)
        return found


_allowed_modules: tuple[str, ...] = ("scorers",)


def configure(modules: tuple[str, ...]) -> None:
    """The modules (and their submodules) specs may name functions from: the deployment's choice."""
    global _allowed_modules
    _allowed_modules = tuple(modules)


def allowed_modules() -> tuple[str, ...]:
    return _allowed_modules


def _is_allowed(module: str) -> bool:
    return any(module == allowed or module.startswith(allowed + ".") for allowed in _allowed_modules)


def _published(name: str) -> Any:
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    return next(iter(found), None)


def resolve_function(reference: Any) -> Callable[..., Any]:
    """The function a spec names ("module:function", or an entry point's name); ValueError says
    why it cannot be used."""
    if not isinstance(reference, str) or not reference:
        raise ValueError(f"must be module:function, e.g. scorers.examples:label_matches; got {reference!r}")
    if ":" not in reference:
        entry = _published(reference) if _FUNCTION.match(reference) else None
        if entry is None:
            raise ValueError(
                f"{reference!r} is not an installed scorer (entry point group {ENTRY_POINT_GROUP!r}); "
                "write module:function, e.g. scorers.examples:label_matches"
            )
        function = _loaded(lambda: entry.load(), reference)
    else:
        module_name, _, function_name = reference.partition(":")
        if not _MODULE.match(module_name) or not _FUNCTION.match(function_name):
            raise ValueError(f"must be module:function, e.g. scorers.examples:label_matches; got {reference!r}")
        if not _is_allowed(module_name):
            allowed = ", ".join(_allowed_modules) or "none"
            raise ValueError(
                f"module {module_name!r} is not allowed for scorers (PROMPTLOOPER_SCORER_MODULES: {allowed})"
            )
        module = _loaded(lambda: importlib.import_module(module_name), reference)
        function = getattr(module, function_name, None)
        if function is None:
            raise ValueError(f"module {module_name!r} has no function {function_name!r}")
        # Only what the module defines: `from subprocess import run` in a scorer module must not
        # make subprocess.run a function a spec can name.
        if callable(function) and getattr(function, "__module__", None) != module_name:
            raise ValueError(f"{reference!r} is not defined in {module_name!r} (it is imported there)")
    if not callable(function):
        raise ValueError(f"{reference!r} is not a function")
    _check_signature(function, reference)
    return function


def _loaded(load: Callable[[], Any], reference: str) -> Any:
    try:
        return load()
    except ModuleNotFoundError as exc:
        raise ValueError(f"cannot import {reference!r}: no module named {exc.name!r}") from None
    except Exception as exc:  # the module itself failed: say how, in one line
        raise ValueError(f"importing {reference!r} failed: {last_line(exc)}") from None


def _check_signature(function: Callable[..., Any], reference: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin or C function without one: calling it will tell
    try:
        signature.bind("output", ScorerContext(row={}, stages={}, options={}))
    except TypeError:
        raise ValueError(f"{reference!r} must accept (output, context); its signature is {signature}") from None


def last_line(exc: BaseException) -> str:
    """The traceback's last line, and where the error was raised when that is known."""
    message = traceback.format_exception_only(exc)[-1].strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        where = frames[-1]
        message += f" ({where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
    return message


def in_thread(function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """function(*args) in a daemon thread started for it, as a future of the running loop.
    (A pool's threads would be shared by a hung call and the next ones, and a pool's threads are
    joined at exit, so one hung function would keep a stopping worker alive.)"""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if not future.done():  # else it timed out and nobody waits
            future.set_exception(error) if error else future.set_result(value)

    def run() -> None:
        try:
            value, error = function(*args), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # the loop closed while the function ran

    threading.Thread(target=run, name="python-scorer", daemon=True).start()
    return future


def as_result(value: Any, threshold: float) -> ScoreResult:
    """A function's answer as a verdict: a number in 0..1, a bool, or (score, reason);
    ValueError says what else it returned."""
    reason = ""
    if isinstance(value, tuple | list) and len(value) == 2 and isinstance(value[1], str):
        value, reason = value
    elif isinstance(value, Mapping) and ("pass" in value or "score" in value):  # promptfoo's GradingResult
        reason, passed = str(value.get("reason") or ""), value.get("pass")
        value = value["score"] if "score" in value else bool(passed)
        if isinstance(passed, bool) and not isinstance(value, bool):
            found = as_result(value, threshold)  # the score, with the function's own pass or fail
            return ScoreResult(found.value, passed, reason or found.reason)
    if isinstance(value, bool):
        return ScoreResult(1.0 if value else 0.0, value, reason or ("passed" if value else "failed"))
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1:
        passed = value >= threshold
        return ScoreResult(float(value), passed, reason or f"scored {value:g}")
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:79] + "…"
    raise ValueError(f"returned {shown}; expected a number in 0..1, a bool or (score, reason)")


@dataclass(frozen=True, kw_only=True)
class PythonScorer(Scorer):
    """Calls a Python function the deployment allows (see the module's docstring)."""

    options = ("function", "options", "threshold", "timeout")
    function: Callable[..., Any]
    reference: str
    arguments: Mapping[str, Any]
    threshold: float
    timeout: float

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        reference = options.spec.get("function")
        function = None
        try:
            function = resolve_function(reference)
        except ValueError as exc:
            options.error("function", str(exc))
        arguments = options.spec.get("options", {})
        if not isinstance(arguments, Mapping):
            options.error("options", f"must be an object passed to the function, got {arguments!r}")
        threshold = options.number("threshold", 0.5)
        if threshold is not None and not 0 <= threshold <= 1:
            options.error("threshold", f"must be between 0 and 1, got {threshold:g}")
        timeout = options.number("timeout", DEFAULT_TIMEOUT)
        if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
            options.error("timeout", f"must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {timeout:g}")
        return {"function": function, "reference": reference, "arguments": arguments, "threshold": threshold,
                "timeout": timeout}  # fmt: skip

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        raise TypeError("a python scorer runs through ascore, with its time limit")

    async def ascore(self, output: str, variables: Mapping[str, Any], scoring: Scoring) -> ScoreResult:
        row = variables if scoring.sample is None else scoring.sample.row
        context = ScorerContext(
            row=row, stages={k: v for k, v in variables.items() if k not in row}, options=self.arguments,
            vars=variables,
        )  # fmt: skip
        try:
            if inspect.iscoroutinefunction(self.function):
                value = await asyncio.wait_for(self.function(output, context), self.timeout)
            else:
                value = await asyncio.wait_for(in_thread(self.function, output, context), self.timeout)
        except TimeoutError:
            return ScoreResult(0.0, False, f"{self.reference} timed out after {self.timeout:g} s")
        except Exception as exc:  # the user's code: its error is the sample's verdict, never the sweep's
            return ScoreResult(0.0, False, f"{self.reference} raised {last_line(exc)}")
        try:
            return as_result(value, self.threshold)
        except ValueError as exc:
            return ScoreResult(0.0, False, f"{self.reference} {exc}")

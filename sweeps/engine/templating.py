"""Jinja2 templates for prompts and scorer values, rendered in a bounded sandbox.

Templates come from users (experiment specs), so they run in Jinja's
SandboxedEnvironment: attribute access such as `''.__class__` is refused.
StrictUndefined turns a misspelt variable into an error instead of a silently
empty prompt. Variables (dataset columns, earlier stage outputs) are inserted
as plain data and never compiled, so a model's output cannot inject template code.

Every render is also bounded (TemplateLimits, set once by the app with `configure`):
- steps: the code generator puts a tick at the start of every block body (each loop
  iteration, `if` branch, macro call, ...) and the sandbox ticks on every call; past
  `max_steps`, or past `max_seconds` of wall clock, the render stops with a TemplateError;
- size: every way of building a long string or list from short input (`*`, `+`, `~`, `%`,
  `str.format`, `ljust`/`center`/..., the `center`/`indent`/`replace`/`join`/`format`/...
  filters, printing a container, the output itself) is checked against `max_chars`
  BEFORE the value is built, so `'{:>999999999}'.format('a')` costs nothing.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter

# Kept for callers that name the default; the limit in force is `limits().max_chars`.
MAX_RENDERED_CHARS = 1_000_000
# A number in a template may have this many bits (10**30000 or so): `x * x` in a loop must stay cheap.
MAX_INT_BITS = 100_000


@dataclass(frozen=True)
class TemplateLimits:
    """What one render may spend: steps (loop iterations, calls), wall-clock seconds, characters."""

    max_steps: int = 1_000_000
    max_seconds: float = 2.0
    max_chars: int = MAX_RENDERED_CHARS


_limits = TemplateLimits()


def configure(new: TemplateLimits) -> None:
    """Set the limits of every later render (the app passes its settings at start)."""
    global _limits
    _limits = new


def limits() -> TemplateLimits:
    return _limits


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; the message says why."""


class TemplateLimitError(SecurityError):
    """A render went over its step, time or size limit (inside Jinja)."""


class TemplateLimitExceeded(TemplateError):
    """What render_template raises for a TemplateLimitError: the template, not its input, is at fault."""


class _Budget:
    __slots__ = ("steps", "deadline", "max_steps", "max_seconds")

    def __init__(self, lim: TemplateLimits) -> None:
        self.steps, self.max_steps, self.max_seconds = 0, lim.max_steps, lim.max_seconds
        self.deadline = time.monotonic() + lim.max_seconds

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise TemplateLimitError(f"the template ran more than {self.max_steps:,} steps (loop iterations and calls)")
        if not self.steps & 255 and time.monotonic() > self.deadline:
            raise TemplateLimitError(f"the template took longer than {self.max_seconds:g} s to render")


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


@contextlib.contextmanager
def render_budget() -> Iterator[None]:
    """Renders inside share one budget: a page that renders many prompts stays bounded as a whole."""
    if _budget.get() is not None:
        yield
        return
    token = _budget.set(_Budget(_limits))
    try:
        yield
    finally:
        _budget.reset(token)


def _too_long(what: str, size: int) -> TemplateLimitError:
    return TemplateLimitError(f"{what} of {size:,} characters is too large (limit {_limits.max_chars:,})")


def _check(what: str, size: int) -> None:
    if size > _limits.max_chars:
        raise _too_long(what, size)


def _size(value: Any, limit: int | None = None, _depth: int = 0) -> int:
    """About how many characters str(value) has; counting stops once past `limit` (cheap)."""
    limit = _limits.max_chars if limit is None else limit
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool | float | None):
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 1
    if _depth > 20:
        return limit + 1
    if isinstance(value, Mapping):
        items: Iterable[Any] = (x for kv in value.items() for x in kv)
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        return 16
    total = 2
    for item in items:
        total += _size(item, limit, _depth + 1) + 4
        if total > limit:
            break
    return total


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# `%` conversions: flags, width and precision, which may be `*` (taken from the arguments).
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent(fmt: str, args: Any) -> None:
    """`fmt % args` is refused when a width, precision or the arguments would make it too long."""
    values = list(args.values()) if isinstance(args, Mapping) else list(args) if isinstance(args, tuple) else [args]
    widths = 0
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for n in (width, precision):
            if n == "*":
                widths += sum(abs(v) for v in values if isinstance(v, int) and not isinstance(v, bool))
            elif n:
                widths += int(n)
    _check("a %-formatted string", len(fmt) + widths + _size(args))


class _BoundedFormatter(SandboxedFormatter):
    """str.format in the sandbox, refusing a width, a precision or a total that is too large."""

    def __init__(self, env: jinja2.Environment) -> None:
        super().__init__(env)
        self._total = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        width = sum(int(n) for n in re.findall(r"\d+", format_spec))  # width and precision, whatever the spec
        self._total += max(width, _size(value))
        _check("a str.format result", self._total)
        return super().format_field(value, format_spec)


_STR_WIDTH_METHODS = frozenset(["ljust", "rjust", "center", "zfill"])


def _check_method_call(obj: Any, args: tuple[Any, ...]) -> None:
    """Refuse a str method whose result would be too large, before it runs."""
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if not isinstance(owner, str) or not args:
        return
    if name in _STR_WIDTH_METHODS:
        _check(f"str.{name}()", _int(args[0]))
    elif name == "expandtabs":
        _check("str.expandtabs()", len(owner) + owner.count("\t") * _int(args[0]))
    elif name == "replace" and len(args) >= 2:
        _check("str.replace()", _replaced_size(owner, args[0], args[1], args[2] if len(args) > 2 else -1))
    elif name == "join":
        _check("str.join()", _joined_size(args[0], owner))


def _replaced_size(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    s, old, new = str(s), str(old), str(new)
    n = len(s) + 1 if old == "" else s.count(old)
    if count is not None and _int(count) >= 0:
        n = min(n, _int(count))
    return len(s) + n * (len(new) - len(old))


def _joined_size(items: Any, sep: Any) -> int:
    limit = _limits.max_chars
    total = 0
    for item in items:
        total += _size(item, limit) + len(str(sep))
        if total > limit:
            break
    return total


def _bounded_filters() -> dict[str, Any]:
    """Jinja's filters, those that can amplify their input checked first."""

    def checked(name: str, size: Any) -> Any:
        original = FILTERS[name]

        @wraps(original)  # keeps jinja's pass_context/pass_eval_context marker
        def filter_(*args: Any, **kwargs: Any) -> Any:
            passed = 1 if getattr(original, "jinja_pass_arg", None) else 0
            if name == "join" and isinstance(args[passed], Iterator):  # `xs|map(...)|join`: measured as a list
                args = (*args[:passed], list(args[passed]), *args[passed + 1 :])
            value_args = args[passed:]
            _check(f"the result of |{name}", size(*value_args, **kwargs))
            return original(*args, **kwargs)

        return filter_

    def indent_size(s: Any, width: Any = 4, *_: Any, **__: Any) -> int:
        pad = len(width) if isinstance(width, str) else _int(width)
        return _size(s) + (str(s).count("\n") + 1) * pad

    def format_size(value: Any, *args: Any, **kwargs: Any) -> int:
        _check_percent(str(value), kwargs or args)
        return 0

    def slice_size(value: Any, slices: Any, *_: Any, **__: Any) -> int:
        return _int(slices)  # the number of lists it builds

    def wordwrap_size(s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, **_: Any) -> int:
        return _size(s) * (1 + len(wrapstring or "\n"))

    overrides = {
        "center": lambda value, width=80: max(_size(value), _int(width)),
        "indent": indent_size,
        "replace": lambda s, old, new, count=None: _replaced_size(s, old, new, count),
        "join": lambda value, d="", attribute=None: _joined_size(value, d),
        "format": format_size,
        "slice": slice_size,
        "wordwrap": wordwrap_size,
        "string": lambda value: _size(value),
        "pprint": lambda value: _size(value),
        "tojson": lambda value, indent=None: _size(value) * (1 + _int(indent)),
        "urlencode": lambda value: 3 * _size(value),
        "xmlattr": lambda d, autospace=True: _size(d) * 2,
    }
    filters = dict(FILTERS)
    filters.update({name: checked(name, size) for name, size in overrides.items()})
    return filters


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    from jinja2.utils import generate_lorem_ipsum

    _check("lipsum()", _int(n) * _int(max) * 12)
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


class _CountingCodeGenerator(CodeGenerator):
    """Jinja's code generator, plus `environment.tick()` at the start of every block body."""

    def blockvisit(self, nodes: Any, frame: Any) -> None:
        self.writeline("environment.tick()")
        super().blockvisit(nodes, frame)

    def visit_Concat(self, node: Any, frame: Any) -> None:  # `a ~ b ~ c`: sizes checked before joining
        self.write("environment.concat_operands((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, plus a step/time budget and a size check on every way of building a large value."""

    code_generator_class = _CountingCodeGenerator
    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = _bounded_filters()
        self.globals["lipsum"] = _bounded_lipsum
        self.finalize = self._finalize_output

    @staticmethod
    def tick() -> None:
        budget = _budget.get()
        if budget is not None:
            budget.tick()

    @staticmethod
    def concat(pieces: Iterable[Any]) -> str:  # the output, a macro's, a `{% set %}` block's
        parts, total = [], 0
        for piece in pieces:
            total += len(piece)
            if total > _limits.max_chars:
                raise _too_long("the rendered text", total)
            parts.append(piece)
        return "".join(parts)

    @staticmethod
    def concat_operands(operands: tuple[Any, ...]) -> str:
        _check("a ~ concatenation", sum(_size(x) for x in operands))
        return "".join(str(x) for x in operands)

    @staticmethod
    def _finalize_output(value: Any) -> Any:  # `{{ value }}`: a container is measured before it is printed
        if not isinstance(value, str):
            _check("a printed value", _size(value))
        return value

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError(f"exponent {right} is too large")
        if (
            operator == "**" and isinstance(left, int) and isinstance(right, int)
            and left.bit_length() * abs(right) > MAX_INT_BITS
        ):  # fmt: skip
            raise SecurityError(f"a power of {left.bit_length() * right:,} bits is too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > _limits.max_chars:
                    raise SecurityError(f"a repetition of {len(seq) * n:,} items is too large")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                raise SecurityError("a product of that many digits is too large")
        if operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _check("a + concatenation", len(left) + len(right))
        if operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner, is_format_map = value.__self__, value.__name__ == "format_map"

        @wraps(value)
        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                return wrapped(*args, **kwargs)  # type/arity errors as Jinja words them
            _check("a str.format pattern", len(owner))
            return type(owner)(_BoundedFormatter(self).vformat(owner, args, kwargs))

        return bounded_format

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        __self.tick()
        if getattr(__obj, "__name__", "") == "join" and args and isinstance(args[0], Iterator):
            args = (list(args[0]), *args[1:])  # measured as a list
        _check_method_call(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)


# One shared environment: building one per call would throw away Jinja's caches.
_ENVIRONMENT = _BoundedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # prompts are plain text, not HTML
    keep_trailing_newline=False,
)


@lru_cache(maxsize=1024)
def compile_template(source: str) -> jinja2.Template:
    """Compile `source` once; later calls with the same text hit the cache (hot path)."""
    try:
        return _ENVIRONMENT.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(exc) from exc


def render_template(template: jinja2.Template, variables: Mapping[str, Any]) -> str:
    """Render an already compiled template within the limits, turning every failure into a TemplateError."""
    try:
        with render_budget():
            return template.render(variables)
    except TemplateLimitError as exc:
        raise TemplateLimitExceeded(f"template limit: {exc}") from exc
    except SecurityError as exc:
        raise TemplateError(f"unsafe template: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(str(exc)) from exc
    except RecursionError as exc:
        raise TemplateLimitExceeded("template limit: recursion too deep") from exc
    except MemoryError as exc:
        raise TemplateLimitExceeded("template limit: out of memory") from exc
    except Exception as exc:
        # A template is user code: `{{ 1 / 0 }}` or `{{ 'a' + 1 }}` must fail the row, not the sweep.
        raise TemplateError(f"{type(exc).__name__}: {exc}") from exc


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render template text with `variables` (compiled once, then cached)."""
    return render_template(compile_template(source), variables)


def limit_error(template: jinja2.Template) -> str | None:
    """At validation: the message if rendering without variables already hits a limit (a bomb), else None.

    Most templates stop at their first variable, which is undefined here; that is no error."""
    try:
        render_template(template, {})
    except TemplateLimitExceeded as exc:
        return str(exc)
    except TemplateError:
        pass
    return None


def template_variables(source: str) -> set[str]:
    """Names the template reads but does not define itself, i.e. what the caller must supply."""
    try:
        parsed = _ENVIRONMENT.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(exc) from exc
    return set(meta.find_undeclared_variables(parsed))


def _syntax_error(exc: jinja2.TemplateSyntaxError) -> TemplateError:
    return TemplateError(f"line {exc.lineno}: {exc.message}")

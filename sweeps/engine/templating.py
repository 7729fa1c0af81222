"""Jinja2 templates for prompts and scorer values, rendered in a sandbox.

Templates come from users (experiment specs), so they run in Jinja's
SandboxedEnvironment: attribute access such as `''.__class__` is refused.
StrictUndefined turns a misspelt variable into an error instead of a silently
empty prompt. Variables (dataset columns, earlier stage outputs) are inserted
as plain data and never compiled, so a model's output cannot inject template code.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

# Rendered text longer than this is refused: `{{ 'a' * 10**10 }}` must not exhaust the worker's memory.
MAX_RENDERED_CHARS = 1_000_000


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, plus limits on the two operators that can build huge values from tiny input."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_RENDERED_CHARS:
                    raise SecurityError(f"a repetition of {len(seq) * n:,} items is too large")
        return super().call_binop(context, operator, left, right)


# One shared environment: building one per call would throw away Jinja's caches.
_ENVIRONMENT = _BoundedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # prompts are plain text, not HTML
    keep_trailing_newline=False,
)


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; the message says why."""


@lru_cache(maxsize=1024)
def compile_template(source: str) -> jinja2.Template:
    """Compile `source` once; later calls with the same text hit the cache (hot path)."""
    try:
        return _ENVIRONMENT.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(exc) from exc


def render_template(template: jinja2.Template, variables: Mapping[str, Any]) -> str:
    """Render an already compiled template, turning every failure into a TemplateError."""
    try:
        return template.render(variables)
    except SecurityError as exc:
        raise TemplateError(f"unsafe template: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(str(exc)) from exc
    except Exception as exc:
        # A template is user code: `{{ 1 / 0 }}` or `{{ 'a' + 1 }}` must fail the row, not the sweep.
        raise TemplateError(f"{type(exc).__name__}: {exc}") from exc


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render template text with `variables` (compiled once, then cached)."""
    return render_template(compile_template(source), variables)


def template_variables(source: str) -> set[str]:
    """Names the template reads but does not define itself, i.e. what the caller must supply."""
    try:
        parsed = _ENVIRONMENT.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(exc) from exc
    return set(meta.find_undeclared_variables(parsed))


def _syntax_error(exc: jinja2.TemplateSyntaxError) -> TemplateError:
    return TemplateError(f"line {exc.lineno}: {exc.message}")

"""Values no database, template or provider can take, refused wherever they appear.

A spec is JSON from anyone: before any field is read, one pass over every key and value
refuses what would otherwise fail later with a database error (a 500) or a provider error
mid-sweep: NUL characters and lone surrogates in text, NaN and infinities, integers beyond
64 bits. Query parameters go through `text_problem` too.
"""

from __future__ import annotations

import math
from typing import Any

from sweeps.engine.errors import FieldError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 64  # deeper nesting is no spec anyone writes; stops a recursion bomb early


def text_problem(text: str) -> str | None:
    """Why this text cannot be stored (PostgreSQL refuses NUL, UTF-8 refuses lone surrogates), or None."""
    if "\x00" in text:
        return "must not contain the NUL character (\\u0000)"
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "must not contain a lone surrogate (\\ud800-\\udfff): it is not valid Unicode text"
    return None


def number_problem(value: Any) -> str | None:
    """Why this number cannot be stored, or None (booleans and non-numbers are not judged here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return f"must fit in 64 bits (between {INT64_MIN} and {INT64_MAX}), got an integer of {len(str(abs(value)))} digits"
    return None


def value_problems(data: Any, path: str = "") -> list[FieldError]:
    """Every key and value in `data` (nested lists and objects) that cannot be stored, by its path."""
    errors: list[FieldError] = []
    _walk(data, path, errors, 0)
    return errors


def _walk(value: Any, path: str, errors: list[FieldError], depth: int) -> None:
    if depth > MAX_DEPTH:
        errors.append(FieldError(path, f"is nested more than {MAX_DEPTH} levels deep"))
        return
    if isinstance(value, str):
        problem = text_problem(value)
    elif isinstance(value, (int, float)):
        problem = number_problem(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (problem := text_problem(key)):
                errors.append(FieldError(path, f"a key {problem}"))
                continue
            _walk(item, where, errors, depth + 1)
        return
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", errors, depth + 1)
        return
    else:
        return
    if problem:
        errors.append(FieldError(path, problem))

"""Two scorers to copy from. Each takes the final output and a context (`context.row`: the
dataset row, `context.stages`: every stage's output by name, `context.options`: the spec
entry's options) and returns a number in 0..1, a bool, or (score, reason)."""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"[\w-]+")


def label_matches(output: str, context: Any) -> tuple[bool, str]:
    """A classifier's answer is the row's label: the first word of the output, compared without
    case or punctuation, against the column named by `options.column` (default `expected`).
    `options.aliases` maps other words to labels, e.g. {"bill": "billing"}."""
    column = context.options.get("column", "expected")
    expected = str(context.row.get(column, "")).strip().lower()
    words = _WORD.findall(output.lower())
    if not words:
        return False, "the output has no word to read a label from"
    label = context.options.get("aliases", {}).get(words[0], words[0])
    if label == expected:
        return True, f"label {label!r} matches"
    return False, f"label {label!r}, expected {expected!r}"


def keyword_coverage(output: str, context: Any) -> tuple[float, str]:
    """The share of required keywords the output mentions (whole words, any case). Keywords come
    from `options.keywords` (a list) or from the row's `keywords` column, separated by commas."""
    keywords = context.options.get("keywords") or str(context.row.get("keywords", "")).split(",")
    wanted = [k.strip().lower() for k in keywords if k.strip()]
    if not wanted:
        return 1.0, "no keywords to look for"
    words = set(_WORD.findall(output.lower()))
    missing = [k for k in wanted if not set(_WORD.findall(k)) <= words]
    share = 1 - len(missing) / len(wanted)
    return share, f"mentions {len(wanted) - len(missing)} of {len(wanted)}" + (
        f"; missing {', '.join(missing)}" if missing else ""
    )

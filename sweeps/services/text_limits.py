"""How much of a sample's texts is stored, and how much a page or an API response shows.

A model (or a template) can produce megabytes: a stage stores at most
PROMPTLOOPER_STORED_TEXT_MAX_CHARS of each text (the rest is dropped, and the text says so),
and pages and API responses show at most PROMPTLOOPER_SHOWN_TEXT_CHARS of each, naming the
texts they cut; the full stored text is one request away (`full_text`).

A text is named by its part: `output`, `inputs.<column>`, `stages.<i>.system|prompt|output`.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from django.conf import settings
from django.urls import reverse

STAGE_TEXTS = ("system", "prompt", "output")


def stored(text: str) -> str:
    """`text` as a stage stores it: cut past the limit, with a note saying how much was dropped."""
    limit = settings.PROMPTLOOPER_STORED_TEXT_MAX_CHARS
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[… {len(text) - limit:,} more characters were not stored]"


def stored_stage(stage: dict[str, Any]) -> dict[str, Any]:
    for key in STAGE_TEXTS:
        if isinstance(stage.get(key), str):
            stage[key] = stored(stage[key])
    return stage


class ShownText(str):
    """The shown start of a longer text; `total` is its full length, `full_url` where to read it."""

    total: int
    full_url: str


def _slots(inputs: Any, stages: Any) -> Iterator[tuple[str, MutableMapping[str, Any], str]]:
    """(part, container, key) of every text of a sample but its output."""
    if isinstance(inputs, dict):
        for key in inputs:
            yield f"inputs.{key}", inputs, key
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        if isinstance(stage, dict):
            for key in STAGE_TEXTS:
                yield f"stages.{i}.{key}", stage, key


def cut_for_showing(sample: Any, full_url: str = "") -> list[str]:
    """Shorten a sample's long texts in place (a RunSample or a dict of its fields), returning the
    parts cut. Texts become ShownText, whose `full_url` is `full_url` + `?part=<part>`."""
    limit = settings.PROMPTLOOPER_SHOWN_TEXT_CHARS
    is_dict = isinstance(sample, dict)
    get = sample.get if is_dict else lambda name: getattr(sample, name, None)
    cut: list[str] = []

    def shorten(part: str, text: Any) -> Any:
        if not isinstance(text, str) or len(text) <= limit:
            return text
        cut.append(part)
        shown = ShownText(text[:limit])
        shown.total, shown.full_url = len(text), f"{full_url}?part={part}" if full_url else ""
        return shown

    for part, container, key in _slots(get("inputs"), get("stages")):
        container[key] = shorten(part, container[key])
    output = shorten("output", get("output"))
    if is_dict:
        sample["output"] = output
    else:
        sample.output = output
    return cut


def full_text(sample: Any, part: str) -> str | None:
    """The stored text of one part of a sample, or None when there is no such part."""
    if part == "output":
        return sample.output
    for name, container, key in _slots(sample.inputs, sample.stages):
        if name == part:
            value = container[key]
            return value if isinstance(value, str) else None if value is None else str(value)
    return None


def page_text_url(sample_id: int) -> str:
    return reverse("sample_text", args=[sample_id])

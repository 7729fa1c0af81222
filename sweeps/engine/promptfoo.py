"""A promptfoo suite (promptfooconfig.yaml) as a PromptLooper spec whose sweep is the grid of its
prompts × providers. What has a counterpart is mapped; everything else is listed with its path
in the config, never dropped in silence.

    prompts      strings and file:// (text files)       -> the stage's prompt, swept when several
    providers    openai:…, anthropic:…, echo, with config -> the swept model; shared config -> params
    tests        vars; file:// CSV (__expected columns)  -> dataset rows
    defaultTest  vars and assert                         -> every row's vars, and scorers
    assert       see ASSERTIONS                          -> scorers (an assertion every test has,
                                                           with a value per test, reads it from
                                                           a column of the row)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.engine.datasets import DatasetError, read_dataset

JUDGE_MODEL = "openai/gpt-4o-mini"  # promptfoo grades with an OpenAI model by default, too
EMBEDDING_MODEL = "openai/text-embedding-3-small"
PROVIDER_KINDS = {"openai": "openai", "anthropic": "anthropic"}
PARAMS = ("temperature", "max_tokens", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty")


@dataclass
class Imported:
    spec: dict[str, Any]
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # (path in the config, why)
    files: list[str] = field(default_factory=list)  # read, relative to the config
    python_files: list[tuple[Path, str]] = field(default_factory=list)  # (file, the module it becomes)
    max_bytes: int = 5 * 1024 * 1024  # the largest file the config may name

    def skip(self, path: str, why: str) -> None:
        self.unmapped.append((path, why))

    def read(self, file: Path) -> bytes:
        """A file the config names; OSError when it is missing or over `max_bytes`."""
        size = file.stat().st_size
        if size > self.max_bytes:
            raise OSError(f"{size:,} bytes, more than the limit of {self.max_bytes:,} (PROMPTLOOPER_MAX_BODY_BYTES)")
        return file.read_bytes()


class ConfigError(ValueError):
    """The config cannot be imported at all (not a mapping, no prompt, no provider)."""


# promptfoo type -> (our type, how its value maps). `value_key` None: no value.
@dataclass(frozen=True)
class Counterpart:
    kind: str
    value_key: str | None = "value"
    extra: Callable[[dict], dict[str, Any]] = lambda assertion: {}


ASSERTIONS: dict[str, Counterpart] = {
    "equals": Counterpart("exact_match"),
    "contains": Counterpart("contains"),
    "icontains": Counterpart("icontains"),
    "not-contains": Counterpart("not_contains"),
    "regex": Counterpart("regex"),
    "starts-with": Counterpart("starts_with"),
    "is-json": Counterpart("json_valid", None),
    "contains-json": Counterpart("json_valid", None),
    "similar": Counterpart(
        "similarity",
        extra=lambda a: {"method": "embedding", "model": EMBEDDING_MODEL, "threshold": a.get("threshold", 0.75)},
    ),  # fmt: skip
    "llm-rubric": Counterpart(
        "llm_judge",
        "rubric",
        extra=lambda a: {"model": JUDGE_MODEL, "scale": "score", "threshold": a.get("threshold", 0.5)},
    ),  # fmt: skip
    "latency": Counterpart("latency", None, extra=lambda a: {"threshold": a.get("threshold")}),
    "cost": Counterpart("cost", None, extra=lambda a: {"threshold": a.get("threshold")}),
    "python": Counterpart("python", None),
}


def import_config(config: Any, folder: Path, *, name: str, max_bytes: int = 5 * 1024 * 1024) -> Imported:
    if not isinstance(config, Mapping):
        raise ConfigError("the config must be a mapping with prompts, providers and tests")
    result = Imported(spec={}, max_bytes=max_bytes)
    prompts = _prompts(config.get("prompts"), folder, result)
    models, params = _providers(config.get("providers"), result)
    if not prompts:
        raise ConfigError("prompts: no prompt could be imported")
    if not models:
        raise ConfigError("providers: no provider could be imported (openai:… or anthropic:…)")
    default = config.get("defaultTest") or {}
    tests = _tests(config.get("tests"), folder, result)
    default_vars = default.get("vars") or {} if isinstance(default, Mapping) else {}
    rows = [{**default_vars, **(test.get("vars") or {})} for _, test in tests]
    scorers = []
    for index, assertion in enumerate(default.get("assert") or [] if isinstance(default, Mapping) else []):
        if (scorer := _scorer(assertion, f"defaultTest.assert[{index}]", folder, result)) is not None:
            scorers.append(scorer)
    scorers += _per_test_scorers(tests, rows, folder, result)
    for key in sorted(set(config) - {"description", "prompts", "providers", "tests", "defaultTest"}):
        result.skip(key, "no counterpart: not imported")
    stage: dict[str, Any] = {"name": "answer", "prompt": prompts[0], "model": models[0]}
    if params:
        stage["params"] = params
    sweep_params: dict[str, Any] = {}
    if len(models) > 1:
        sweep_params["model"] = models
    if len(prompts) > 1:
        sweep_params["prompt"] = prompts
    result.spec = {
        "name": (str(config.get("description") or "") or name)[:200],
        "pipeline": [stage],
        "dataset": rows,
        "scorers": scorers,
        **({"sweep": {"type": "grid", "params": sweep_params}} if sweep_params else {}),
    }
    return result


def _text_file(reference: str, folder: Path, result: Imported, path: str) -> str | None:
    name = reference.removeprefix("file://")
    try:
        text = result.read(folder / name).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        result.skip(path, f"{name}: cannot be read ({getattr(e, 'strerror', None) or e})")
        return None
    result.files.append(name)
    return text


def _prompts(raw: Any, folder: Path, result: Imported) -> list[str]:
    prompts = []
    for index, item in enumerate(raw if isinstance(raw, list) else [raw] if raw else []):
        path = f"prompts[{index}]"
        if isinstance(item, Mapping):  # {id: file://..., label: ...} or {raw: ...}
            item = item.get("raw") or item.get("id")
        if not isinstance(item, str):
            result.skip(path, "not a prompt text or file")
        elif item.startswith("file://"):
            if not item.endswith((".txt", ".md", ".j2", ".prompt")) and "." in item.rsplit("/", 1)[-1]:
                result.skip(path, f"{item}: only text prompts are imported (not chat JSON, scripts or globs)")
            elif (text := _text_file(item, folder, result, path)) is not None:
                prompts.append(text.strip())
        else:
            prompts.append(item)
    return prompts


def _providers(raw: Any, result: Imported) -> tuple[list[str], dict[str, Any]]:
    models: list[str] = []
    configs: list[dict[str, Any]] = []
    for index, item in enumerate(raw if isinstance(raw, list) else [raw] if raw else []):
        path = f"providers[{index}]"
        ident, config = (item.get("id"), item.get("config") or {}) if isinstance(item, Mapping) else (item, {})
        if ident == "echo":  # promptfoo's offline provider that answers with the prompt
            models.append("mock/echo")
            configs.append(dict(config))
            continue
        if not isinstance(ident, str) or ":" not in ident:
            result.skip(path, f"{ident!r}: only openai:… and anthropic:… providers have a counterpart")
            continue
        parts = ident.split(":")
        kind, model = parts[0], parts[-1]
        if kind not in PROVIDER_KINDS or not model:
            result.skip(path, f"{ident}: only openai:… and anthropic:… providers have a counterpart")
            continue
        models.append(f"{PROVIDER_KINDS[kind]}/{model}")
        configs.append(dict(config))
        for key in sorted(set(config) - set(PARAMS)):
            result.skip(f"{path}.config.{key}", "not a sampling parameter: not imported")
    shared = {k: v for k, v in (configs[0] if configs else {}).items()
              if k in PARAMS and all(c.get(k, object()) == v for c in configs)}  # fmt: skip
    for index, config in enumerate(configs):
        for key in sorted(k for k in config if k in PARAMS and k not in shared):
            result.skip(f"providers[{index}].config.{key}", "differs between providers: a grid sweeps parameters "
                                                            f"independently; sweep params.{key} instead")  # fmt: skip
    return models, shared


def _tests(raw: Any, folder: Path, result: Imported) -> list[tuple[str, dict]]:
    """(path, test) of every test, CSV files expanded."""
    tests: list[tuple[str, dict]] = []
    for index, item in enumerate(raw if isinstance(raw, list) else [raw] if raw else []):
        path = f"tests[{index}]"
        if isinstance(item, str) and item.startswith("file://") and item.endswith(".csv"):
            tests += _csv_tests(item, folder, result, path)
        elif isinstance(item, Mapping) and isinstance(item.get("vars") or {}, Mapping):
            tests.append((path, dict(item)))
            for key in sorted(set(item) - {"vars", "assert", "description"}):
                result.skip(f"{path}.{key}", "no counterpart: not imported")
        else:
            result.skip(path, "only tests with vars, and CSV files (file://…csv), are imported")
    return tests


def _csv_tests(reference: str, folder: Path, result: Imported, path: str) -> list[tuple[str, dict]]:
    name = reference.removeprefix("file://")
    try:
        dataset = read_dataset(name, result.read(folder / name))
    except (OSError, DatasetError) as e:
        result.skip(path, f"{name}: {getattr(e, 'strerror', None) or e}")
        return []
    result.files.append(name)
    tests = []
    for line, row in enumerate(dataset.rows, 2):
        asserts = [_expected(value) for key, value in row.items() if key.startswith("__expected") and value]
        tests.append((f"{name} line {line}", {
            "vars": {k: v for k, v in row.items() if not k.startswith("__")},
            "assert": asserts,
        }))  # fmt: skip
    return tests


_EXPECTED = re.compile(r"^(?P<negated>not-)?(?P<type>[a-z-]+)(\((?P<threshold>[0-9.]+)\))?:\s?(?P<value>.*)$", re.S)


def _expected(text: str) -> dict[str, Any]:
    """A CSV `__expected` cell as the assertion it stands for ("contains: x", "similar(0.8): y"; a
    bare value means equals), as promptfoo reads it."""
    match = _EXPECTED.match(text)
    if not match or (match["negated"] or "") + match["type"] not in (*ASSERTIONS, "javascript", "python"):
        return {"type": "equals", "value": text}
    assertion: dict[str, Any] = {"type": (match["negated"] or "") + match["type"], "value": match["value"]}
    if match["threshold"]:
        assertion["threshold"] = float(match["threshold"])
    return assertion


def _scorer(assertion: Any, path: str, folder: Path, result: Imported) -> dict[str, Any] | None:
    if not isinstance(assertion, Mapping) or not isinstance(assertion.get("type"), str):
        result.skip(path, "not an assertion with a type")
        return None
    kind = assertion["type"]
    mapping = ASSERTIONS.get(kind)
    if mapping is None:
        result.skip(path, f"{kind}: no counterpart in PromptLooper")
        return None
    scorer: dict[str, Any] = {"type": mapping.kind, **mapping.extra(dict(assertion))}
    value = assertion.get("value")
    if kind == "python":
        if not (isinstance(value, str) and value.startswith("file://") and ".py" in value):
            result.skip(path, "python: only a file (file://assert.py) is imported; code in a spec is never run")
            return None
        file, _, function = value.removeprefix("file://").partition(":")
        module = "scorers.promptfoo_" + re.sub(r"\W", "_", Path(file).stem)
        result.python_files.append((folder / file, module))
        scorer["function"] = f"{module}:{function or 'get_assert'}"
    elif kind in ("is-json", "contains-json") and isinstance(value, Mapping):
        scorer = {"type": "json_schema", "schema": dict(value)}
    elif mapping.value_key:
        if value is None:
            result.skip(path, f"{kind}: no value")
            return None
        scorer[mapping.value_key] = value if isinstance(value, str) else str(value)
    if kind in ("latency", "cost") and scorer.get("threshold") is None:
        result.skip(path, f"{kind}: no threshold")
        return None
    if isinstance(assertion.get("weight"), int | float) and assertion["weight"] > 0:
        scorer["weight"] = assertion["weight"]
    if isinstance(assertion.get("metric"), str):
        scorer["name"] = assertion["metric"]
    return scorer


def _signature(assertion: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in assertion.items() if k != "value"))


def _per_test_scorers(
    tests: Sequence[tuple[str, dict]], rows: list[dict[str, Any]], folder: Path, result: Imported
) -> list[dict[str, Any]]:
    """One scorer per kind of assertion the tests make. PromptLooper's scorers apply to every row,
    so an assertion must be in every test; its value, when tests differ, comes from a column."""
    kinds: dict[tuple, list[tuple[int, int]]] = {}  # signature -> (test, assertion index), in order
    for test_index, (_, test) in enumerate(tests):
        for index, assertion in enumerate(test.get("assert") or []):
            if isinstance(assertion, Mapping):
                kinds.setdefault(_signature(assertion), []).append((test_index, index))
    scorers = []
    for number, places in enumerate(kinds.values(), 1):
        first_test, first_index = places[0]
        first_path = f"{tests[first_test][0]}.assert[{first_index}]"
        assertion = tests[first_test][1]["assert"][first_index]
        in_tests = {where for where, _ in places}
        if len(in_tests) != len(tests) or len(places) != len(tests):
            for where, index in places:
                result.skip(f"{tests[where][0]}.assert[{index}]", f"{assertion['type']}: in {len(in_tests)} of "
                            f"{len(tests)} tests; PromptLooper's scorers apply to every row")  # fmt: skip
            continue
        values = [tests[where][1]["assert"][index].get("value") for where, index in places]
        if all(v == values[0] for v in values) or not isinstance(values[0], str | int | float):
            scorer = _scorer(assertion, first_path, folder, result)
        else:
            column = f"expected_{number}"
            for (where, _), value in zip(places, values, strict=True):
                rows[where][column] = value
            scorer = _scorer({**assertion, "value": "{{ " + column + " }}"}, first_path, folder, result)
        if scorer is not None:
            scorers.append(scorer)
    return scorers

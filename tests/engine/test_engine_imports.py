"""The engine is plain Python that the rest of the app builds on: it imports no Django, and
nothing of the app outside sweeps/engine/ (the provider adapters implement the engine's
Provider, not the other way round). Read from the source, so a lazy import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "sweeps" / "engine"
SOURCES = sorted(ENGINE.rglob("*.py"))


def imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules


def test_the_engine_has_modules_to_check():
    assert len(SOURCES) > 10


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ENGINE)))
def test_engine_module_imports_only_the_engine_and_libraries(path):
    outside = [
        module for module in imported_modules(path)
        if module.split(".")[0] == "django"
        or (module.split(".")[0] == "sweeps" and not module.startswith("sweeps.engine"))
    ]  # fmt: skip
    assert outside == []

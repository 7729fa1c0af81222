"""The layers of docs/architecture.md hold: no import cycle, and a pure engine.

Only module-level imports count: an import inside a function (the runner's job imports the
executor in its body) or under TYPE_CHECKING runs once every module is loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def project_modules() -> dict[str, Path]:
    modules = {}
    for path in [*ROOT.glob("sweeps/**/*.py"), *ROOT.glob("promptlooper/*.py")]:
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return modules


def module_level_imports(path: Path) -> set[str]:
    """Every module named by an import that runs when `path` is imported."""
    names: set[str] = set()
    for statement in ast.parse(path.read_text()).body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: (module_level_imports(path) & modules.keys()) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for dependency in graph[module]:
            if dependency not in index:
                visit(dependency)
                low[module] = min(low[module], low[dependency])
            elif dependency in stack:
                low[module] = min(low[module], index[dependency])
        if low[module] == index[module]:
            component = []
            while (member := stack.pop()) != module:
                component.append(member)
            component.append(module)
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_among_the_projects_modules():
    graph = import_graph()
    assert "sweeps.runner.execution" in graph and graph["sweeps.services.sweeps"]  # the walk found the code
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_engine_imports_nothing_of_django_or_of_the_app_outside_it():
    for path in (ROOT / "sweeps" / "engine").rglob("*.py"):
        outside = {
            name for name in module_level_imports(path)
            if name.split(".")[0] in ("django", "promptlooper", "channels", "rq", "django_rq")
            or (name.startswith("sweeps.") and not name.startswith("sweeps.engine"))
        }  # fmt: skip
        assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"


def database_access(path: Path) -> list[str]:
    """Each `X.objects` and `x.save(...)` in the code of `path` (not in comments or strings)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "objects":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "save":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node.func)}()")
    return found


def test_only_services_and_selectors_touch_the_database():
    """Every write is a service and every read a selector, so each rule lives in one place."""
    allowed = ("sweeps/services/", "sweeps/selectors/", "sweeps/migrations/")
    outside = [
        access
        for path in [*ROOT.glob("sweeps/**/*.py"), *ROOT.glob("promptlooper/*.py")]
        if not str(path.relative_to(ROOT)).startswith(allowed)
        for access in database_access(path)
    ]
    assert outside == []
    assert database_access(ROOT / "sweeps" / "services" / "sweeps.py")  # the finder finds what is there

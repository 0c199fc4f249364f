"""The package's import graph: no cycle among martech modules, and Airflow only in the DAG glue.

Read from the source with ``ast`` (nothing is imported). Module-level imports and imports inside
functions both count: a cycle hidden behind a function-level import is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from martech import paths

# Where Airflow may be imported: the DAG glue, and the local tooling that drives Airflow itself
# (devtools: the demo loads the DagBag and runs dag.test(); airflow_env configures a local Airflow).
AIRFLOW_ALLOWED = ("martech.dagkit", "martech.devtools")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(paths.PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(paths.INCLUDE_DIR).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(name, path) if m in modules and m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_package_import(importer: str, imported: str) -> bool:
    """``martech.x`` importing its own submodule ``martech.x.y`` (a package's ``__init__`` re-exports)."""
    return imported.startswith(importer + ".")


def test_the_graph_sees_the_package() -> None:
    graph = _graph()
    assert len(graph) > 60
    assert "martech.campaigns.spec" in graph["martech.campaigns.runner"]
    assert "airflow.sdk" in _imports("martech.dagkit", _modules()["martech.dagkit"])


def test_no_import_cycle_among_martech_modules() -> None:
    graph = {k: {v for v in vs if not _is_package_import(k, v)} for k, vs in _graph().items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_library_module_imports_airflow() -> None:
    offenders = sorted(
        name for name, path in _modules().items()
        if not name.startswith(AIRFLOW_ALLOWED)
        and any(m == "airflow" or m.startswith("airflow.") for m in _imports(name, path)))
    assert offenders == []

"""The import picture: no module of the four packages imports itself back through others, and layering holds.

A static scan (``ast``) of every ``import`` in rainbench/, collection/, baselines/ and nlcl/,
including imports inside functions (a lazy import is still an edge: it only hides a circle until
the function runs). ``TYPE_CHECKING`` blocks are skipped: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rainbench", "collection", "baselines", "nlcl")
ALLOWED = {  # package -> packages it may import (docs/ARCHITECTURE.md)
    "rainbench": {"rainbench", "collection", "baselines", "nlcl"},
    "baselines": {"baselines", "nlcl"},
    "collection": {"collection"},
    "nlcl": {"nlcl"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from pkg import sub`` counts as pkg.sub when that is a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between modules (a package's __init__ importing its own submodules is not one)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def edges(module: str) -> set[str]:
        # a submodule importing its package's __init__, which imports that submodule, is how Python
        # packages work, not a circle between two ideas: leave __init__ edges out.
        return {m for m in graph[module] if not (module.startswith(m + ".") or m.startswith(module + "."))}

    def dfs(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges(module)):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = dfs(target)
                if found:
                    return found
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = dfs(module)
            if found:
                return found
    return None


def test_the_scan_finds_a_circle_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_scan_sees_lazy_imports():
    graph = _graph()
    assert "rainbench.weights" in graph["rainbench.metrics.metric"]  # imported inside create_metric


def test_no_import_circle():
    assert _cycle(_graph()) is None


def test_imports_go_downward_only():
    wrong = sorted(f"{module} imports {target}" for module, targets in _graph().items() for target in targets
                   if target.split(".")[0] not in ALLOWED[module.split(".")[0]])
    assert wrong == []

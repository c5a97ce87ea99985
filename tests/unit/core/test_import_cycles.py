"""``src/ragstream`` has no import cycle: every import counts, the ones inside functions too (a lazy
import hides a cycle from the interpreter, not from the reader), except those only for type checking.

A module importing its own package (``from . import steps``) is no cycle: the package is already
being imported when its module is.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3] / "src"
PACKAGE = ROOT / "ragstream"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            found += [n for child in node.orelse for n in _import_nodes(child)]
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        found += _import_nodes(node)
    return found


def _resolve(name: str) -> str | None:
    """The project module a dotted name lives in (``ragstream.index.Point`` -> ``ragstream.index``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{node.module}" if node.module else anchor
        names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    targets = {t for t in map(_resolve, names) if t}
    return {t for t in targets if t != module and not module.startswith(t + ".")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = {m: imports_of(m) for m in MODULES}
    assert cycles(graph) == []


def test_imports_are_read_whole() -> None:
    # relative, lazy and package imports all count; type-checking ones and the module's own package do not
    found = imports_of("ragstream.ingest.pipeline")
    assert {"ragstream.ingest.batch", "ragstream.ingest.observe", "ragstream.blobs"} <= found
    assert "ragstream.index" in found  # from ..index import VectorIndex
    assert "ragstream.extract.sandbox" in found  # imported inside from_settings
    assert "ragstream.ledger" in found and "ragstream.ingest" not in found


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]

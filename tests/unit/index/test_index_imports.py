"""The index seam holds: only a store's own module imports its client, and ``index/`` has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "ragstream"
#: client library -> the one module allowed to import it
CLIENTS = {
    "qdrant_client": "index/qdrant.py",
    "qdrant_edge": "index/edge.py",
    "faiss": "index/faiss.py",
    "chromadb": "index/chroma.py",
    "pymilvus": "index/milvus.py",
    "pinecone": "index/pinecone.py",
}


def imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved in the package)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                found.add(target)
                if not node.module:
                    found |= {f"{base}.{alias.name}" for alias in node.names}
            else:
                found.add(node.module or "")
    return found


def test_only_a_stores_module_imports_its_client() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        for name in imports(path):
            client = name.split(".")[0]
            if client in CLIENTS and CLIENTS[client] != rel:
                offenders.append(f"{rel} imports {name}")
    assert offenders == []


def test_langchain_is_imported_by_the_chunker_and_its_integration_only() -> None:
    # the query image carries no LangChain: its import was a tenth of the query function's cold start
    allowed = {"chunking.py", "integrations/langchain.py"}
    offenders = sorted(
        f"{path.relative_to(PACKAGE).as_posix()} imports {name}"
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).as_posix() not in allowed
        for name in imports(path)
        if name.split(".")[0].startswith(("langchain", "langsmith"))
    )
    assert offenders == []


def test_the_index_package_has_no_import_cycle() -> None:
    folder = PACKAGE / "index"
    graph = {
        f"ragstream.index.{p.stem}" if p.stem != "__init__" else "ragstream.index": {
            n for n in imports(p) if n.startswith("ragstream.index")
        }
        for p in folder.glob("*.py")
    }
    # a submodule importing its own package (`from . import embedded`) is not a cycle: the package's
    # __init__ never imports a store module
    assert not any(
        n.startswith(("ragstream.index.edge", "ragstream.index.qdrant")) for n in graph["ragstream.index"]
    )

    def visit(node: str, path: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt == "ragstream.index" and node != "ragstream.index":
                continue
            assert nxt not in path, f"import cycle: {' -> '.join([*path, nxt])}"
            visit(nxt, [*path, nxt])

    for start in graph:
        visit(start, [start])

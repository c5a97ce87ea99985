"""Which store runs is one setting, ``RAGSTREAM_INDEX``; its module is imported only when chosen.

Each store module exposes ``from_settings(settings) -> VectorIndex``. A store added later (Weaviate,
Pinecone) is one more line in :data:`BACKENDS` and one module.
"""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from .contract import Capabilities, Hit, LexicalQuery, Point, SearchFilter, VectorIndex

__all__ = ["BACKENDS", "FirstUseIndex", "open_index"]

#: RAGSTREAM_INDEX value -> (module under ragstream.index, the extra that installs its client).
BACKENDS: dict[str, tuple[str, str]] = {
    "edge": ("edge", "local"),
    "qdrant": ("qdrant", "query"),
    "faiss": ("faiss", "faiss"),
    "chroma": ("chroma", "chroma"),
    "milvus": ("milvus", "milvus"),
    "weaviate": ("weaviate", "weaviate"),
    "pinecone": ("pinecone", "pinecone"),
}


def open_index(settings: Settings) -> VectorIndex:
    """The index the settings point at (``settings.index_backend``), built by its store's module.

    Makes no network call and creates nothing on disk but the folder of an embedded store; within a
    process, every index opened on one embedded folder shares one handle.
    """
    name = settings.index_backend
    try:
        module_name, extra = BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"RAGSTREAM_INDEX={name!r} is not a known index; choose one of {', '.join(BACKENDS)}"
        ) from None
    module = importlib.import_module(f"{__package__}.{module_name}")
    try:
        return module.from_settings(settings)  # type: ignore[no-any-return]
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("ragstream"):
            raise
        raise ConfigError(
            f"RAGSTREAM_INDEX={name} needs {exc.name}: pip install 'ragstream[{extra}]'"
        ) from None


class FirstUseIndex:
    """The index the settings point at, opened (its store's module and client imported) when first
    used: a process that never touches the index (the query API's page, ledger and feedback routes)
    never pays for its client's import, a third of the query function's cold start with Qdrant's.

    Every member is the opened index's; a configuration error (an unknown store, a client that is not
    installed) is raised at that first use, as :func:`open_index` would raise it.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._index: VectorIndex | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        """Whether the index has been opened."""
        return self._index is not None

    def _get(self) -> VectorIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = open_index(self._settings)
        return self._index

    @property
    def collection(self) -> str:
        return self._get().collection

    @property
    def capabilities(self) -> Capabilities:
        return self._get().capabilities

    def ensure_collection(self, dim: int) -> None:
        self._get().ensure_collection(dim)

    def exists(self) -> bool:
        return self._get().exists()

    def upsert(self, points: Sequence[Point]) -> int:
        return self._get().upsert(points)

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        self._get().delete_source(source, keep_version=keep_version, only_version=only_version)

    def count(self, source: str | None = None, version: str | None = None) -> int:
        return self._get().count(source, version)

    def versions(self) -> Counter[tuple[str, str]]:
        return self._get().versions()

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        return self._get().search(vector, limit=limit, flt=flt, lexical=lexical)

    def ping(self) -> None:
        self._get().ping()

    def close(self) -> None:
        """Close the index if it was opened (closing never opens it)."""
        with self._lock:
            index, self._index = self._index, None
        if index is not None:
            index.close()

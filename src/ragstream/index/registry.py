"""Which store runs is one setting, ``RAGSTREAM_INDEX``; its module is imported only when chosen.

Each store module exposes ``from_settings(settings) -> VectorIndex``. A store added later (Weaviate,
Pinecone) is one more line in :data:`BACKENDS` and one module.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from .contract import Capabilities, Hit, LexicalQuery, Point, SearchFilter, VectorIndex

__all__ = ["BACKENDS", "IMAGE_CLIENTS", "FirstUseIndex", "IndexWrapper", "open_index"]

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

#: The server stores a Lambda image can be built for (template.yaml's VectorStore) -> the extra that
#: installs the store's thin client, its Dockerfile's STORE_CLIENTS (template.yaml's Mappings StoreClients).
IMAGE_CLIENTS: dict[str, str] = {
    "qdrant": "qdrant",
    "pinecone": "pinecone",
    "weaviate": "weaviate",
    "milvus": "milvus-client",
    "chroma": "chroma-client",
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
        raise ConfigError(_missing_client(name, exc.name or "its client", extra)) from None


def _missing_client(name: str, module: str, extra: str) -> str:
    """What to do when the store's client is not installed: pip on a laptop; in a Lambda, whose image
    carries the client of the one store it was built for, the build that matches the deployed store."""
    message = f"RAGSTREAM_INDEX={name} needs {module}: pip install 'ragstream[{extra}]'"
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return message
    if name not in IMAGE_CLIENTS:
        return (
            f"{message}; no Lambda image carries {name} (an embedded store): the stack's VectorStore is one "
            f"of {', '.join(IMAGE_CLIENTS)}"
        )
    return (
        f"RAGSTREAM_INDEX={name} needs {module}, which this Lambda image does not carry: it was built for "
        f"another VectorStore (an image carries the client of its build's store alone, here "
        f"ragstream[{IMAGE_CLIENTS[name]}]). Build and deploy with the same store: "
        f"`sam build --parameter-overrides VectorStore={name}`, then `sam deploy` with VectorStore={name}"
    )


class IndexWrapper:
    """A :class:`VectorIndex` that hands every call to another one, :meth:`_target`: the one way to
    wrap an index (open it late, record what passes), overriding only what the wrapper changes."""

    def _target(self) -> VectorIndex:
        raise NotImplementedError

    @property
    def collection(self) -> str:
        return self._target().collection

    @property
    def capabilities(self) -> Capabilities:
        return self._target().capabilities

    def ensure_collection(self, dim: int) -> None:
        self._target().ensure_collection(dim)

    def exists(self) -> bool:
        return self._target().exists()

    def upsert(self, points: Sequence[Point]) -> int:
        return self._target().upsert(points)

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        self._target().delete_source(source, keep_version=keep_version, only_version=only_version)

    def count(self, source: str | None = None, version: str | None = None) -> int:
        return self._target().count(source, version)

    def versions(self) -> Counter[tuple[str, str]]:
        return self._target().versions()

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        return self._target().search(vector, limit=limit, flt=flt, lexical=lexical)

    def ping(self) -> None:
        self._target().ping()

    def close(self) -> None:
        self._target().close()


class FirstUseIndex(IndexWrapper):
    """The index the settings point at, opened (its store's module and client imported) when first
    used: a process that never touches the index (the query API's page, ledger and feedback routes)
    never pays for its client's import, nearly half of the query function's cold start with Qdrant's.

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

    def _target(self) -> VectorIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = open_index(self._settings)
        return self._index

    def close(self) -> None:
        """Close the index if it was opened (closing never opens it)."""
        with self._lock:
            index, self._index = self._index, None
        if index is not None:
            index.close()

"""Which store runs is one setting, ``RAGSTREAM_INDEX``; its module is imported only when chosen.

Each store module exposes ``from_settings(settings) -> VectorIndex``. A store added later (Weaviate,
Pinecone) is one more line in :data:`BACKENDS` and one module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from .contract import VectorIndex

__all__ = ["BACKENDS", "open_index"]

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

"""The vector index: one contract (:class:`VectorIndex`), neutral types, one payload layout, and a
registry that opens the store ``RAGSTREAM_INDEX`` names (Qdrant Edge, Qdrant, FAISS, Chroma, Milvus).

Nothing here imports a store's client; each store's module does, and only when it is chosen.
"""

from __future__ import annotations

from .contract import Capabilities, Hit, LexicalQuery, Point, SearchFilter, SparseVector, VectorIndex
from .layout import chunk_metadata, folders_of, point_id
from .registry import BACKENDS, FirstUseIndex, IndexWrapper, open_index

__all__ = [
    "BACKENDS",
    "Capabilities",
    "FirstUseIndex",
    "Hit",
    "IndexWrapper",
    "LexicalQuery",
    "Point",
    "SearchFilter",
    "SparseVector",
    "VectorIndex",
    "chunk_metadata",
    "folders_of",
    "open_index",
    "point_id",
]

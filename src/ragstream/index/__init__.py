"""The vector index: Qdrant, embedded on disk, in memory, or a server / Qdrant Cloud."""

from __future__ import annotations

from .qdrant import Point, QdrantIndex, SearchFilter, open_index, point_id

__all__ = ["Point", "QdrantIndex", "SearchFilter", "open_index", "point_id"]

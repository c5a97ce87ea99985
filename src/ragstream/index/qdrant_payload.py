"""The payload layout both Qdrant flavours share (qdrant-client and Qdrant Edge), without either client.

Points carry LangChain's ``QdrantVectorStore`` layout, ``page_content`` and ``metadata``, with a named
dense vector ``dense``, so a LangChain user can open a collection as it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from .contract import Hit, Point, SearchFilter
from .layout import version_key

__all__ = [
    "KEYWORD_FIELDS",
    "NO_SPARSE",
    "SPARSE",
    "VECTOR",
    "filter_terms",
    "payload",
    "tally_versions",
    "to_hit",
]

VECTOR = "dense"
#: The named sparse vector of hybrid retrieval (BM25 term weights; Qdrant applies the IDF).
SPARSE = "sparse"

#: Why a collection without the sparse vector cannot take sparse points.
NO_SPARSE = (
    "collection {collection!r} was made without the sparse vector of hybrid retrieval (by an older "
    "ragstream, or with RAGSTREAM_RETRIEVAL=dense before it was created there): delete the collection "
    "and re-ingest, set RAGSTREAM_COLLECTION to a new name, or set RAGSTREAM_RETRIEVAL=dense"
)


#: Payload fields with a keyword index: the ones every replace, delete and filter uses.
KEYWORD_FIELDS = ("metadata.source", "metadata.version", "metadata.folders", "metadata.content_type")


def payload(point: Point) -> dict[str, Any]:
    """The payload of a point in LangChain's Qdrant layout."""
    return {"page_content": point.text, "metadata": point.metadata}


def to_hit(point_id: Any, score: float, body: dict[str, Any] | None) -> Hit:
    """A neutral hit from a scored point's id, score and payload."""
    body = body or {}
    return Hit(
        id=str(point_id),
        score=float(score),
        text=str(body.get("page_content", "")),
        metadata=dict(body.get("metadata") or {}),
    )


def tally_versions(records: Iterable[Any], counts: Counter[tuple[str, str]]) -> None:
    """Count scrolled points per (source, version) of their payload."""
    for r in records:
        counts[version_key((r.payload or {}).get("metadata", {}))] += 1


def filter_terms(flt: SearchFilter | None) -> list[list[tuple[str, str]]]:
    """The filter as an AND of ORs of (payload key, value) equalities, for either Qdrant flavour.

    Call only when ``flt.matches_nothing`` is false (an empty OR matches nothing; Qdrant's empty
    ``should`` matches everything).
    """
    if flt is None:
        return []
    terms: list[list[tuple[str, str]]] = [
        [("metadata.source" if kind == "source" else "metadata.folders", value) for kind, value in group]
        for group in flt.source_groups()
    ]
    if flt.content_type:
        terms.append([("metadata.content_type", flt.content_type)])
    for key, value in flt.metadata_terms().items():
        terms.append([(f"metadata.{key}", value)])
    return terms

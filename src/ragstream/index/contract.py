"""The index contract: what the pipeline and the query side need of a vector store, and the neutral
types that cross the seam.

Every store (Qdrant, Qdrant Edge, FAISS, Chroma, Milvus, ...) implements :class:`VectorIndex` in its
own module and passes one contract suite (``tests/integration/index/test_index_contract.py``). Nothing of a
store's client library crosses this seam: points go in as :class:`Point`, filters as
:class:`SearchFilter`, hits come out as :class:`Hit`. What legitimately differs between stores is
declared in :class:`Capabilities`, never discovered by ``isinstance``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

__all__ = [
    "RRF_K",
    "Capabilities",
    "Hit",
    "LexicalQuery",
    "Point",
    "SearchFilter",
    "SourceTerm",
    "SparseVector",
    "VectorIndex",
    "fusion_depth",
]

#: Reciprocal rank fusion's constant for every hybrid store: a hit scores ``sum(1 / (RRF_K + rank))``
#: over the dense and the lexical ranking.
RRF_K = 60


def fusion_depth(limit: int) -> int:
    """Candidates each side (dense, lexical) of a hybrid search brings to the fusion."""
    return max(2 * limit, 50)


class SparseVector(BaseModel):
    """A sparse (lexical) vector: term ids and their weights, ids ascending and unique.

    For a chunk, the weights are term frequencies saturated and length-normalised (BM25's document
    side); the store (or the engine, e.g. Qdrant's IDF modifier) supplies the inverse document
    frequency. For a query, each term present weighs 1.
    """

    indices: list[int]
    values: list[float]


class Point(BaseModel):
    """One chunk ready for the index: its id (see :func:`~ragstream.index.layout.point_id`), its dense
    vector, its own text and its metadata (built by :func:`~ragstream.index.layout.chunk_metadata`).

    ``sparse`` is the lexical vector of the chunk's embedded text (None when retrieval is dense-only);
    a store without ``capabilities.hybrid`` ignores it.
    """

    id: str
    vector: list[float]
    text: str
    metadata: dict[str, Any]
    sparse: SparseVector | None = None


@dataclass(frozen=True)
class LexicalQuery:
    """The lexical side of a hybrid search: the query's text (for stores whose engine runs its own
    BM25 over the stored text) and its sparse vector (for stores fed the chunks' sparse vectors)."""

    text: str
    sparse: SparseVector


@dataclass(frozen=True)
class Hit:
    """One search result: the point's id, its similarity to the query (cosine, higher is nearer), its
    text and its metadata as written (a store that drops null values returns them absent)."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))


#: One alternative of a source condition: the source is exactly this, or lies in this folder.
SourceTerm = tuple[Literal["source", "folder"], str]


class SearchFilter(BaseModel):
    """Restricts a search. Every field given must match (AND)."""

    model_config = {"extra": "forbid"}

    source_prefix: str | None = Field(
        default=None,
        description="A folder of sources, e.g. 's3://bucket/reports/' or 'file:///data/docs/', "
        "or one exact source.",
    )
    content_type: str | None = Field(default=None, description="MIME type, e.g. 'application/pdf'.")
    metadata: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="Equality on the object's user metadata (x-amz-meta-*, which S3 keeps as text: "
        "numbers and booleans match their text, e.g. 2024 matches '2024', true matches 'true').",
    )
    allowed_prefixes: list[str] | None = Field(
        default=None,
        description="The source must be under at least one of these prefixes (a prefix ending in '/' is "
        "a folder, otherwise an exact source or the folder of that name, as source_prefix); None: "
        "unrestricted; []: nothing matches. ANDed with the other fields (an access scope).",
    )

    # -- the filter as terms that each store translates -----------------------------------------------
    @property
    def matches_nothing(self) -> bool:
        """True when no point can pass (an empty ``allowed_prefixes``): stores answer [] without a call."""
        return self.allowed_prefixes is not None and not self.allowed_prefixes

    def source_groups(self) -> list[list[SourceTerm]]:
        """The source conditions as an AND of ORs of terms (empty: no source condition).

        ``("source", s)`` matches the source ``s``; ``("folder", f)`` matches every source whose
        folders (:func:`~ragstream.index.layout.folders_of`) include ``f``.
        """
        groups: list[list[SourceTerm]] = []
        if self.source_prefix:
            groups.append(prefix_terms(self.source_prefix))
        if self.allowed_prefixes is not None:
            groups.append([term for prefix in self.allowed_prefixes for term in prefix_terms(prefix)])
        return groups

    def metadata_terms(self) -> dict[str, str]:
        """User metadata equalities with the values as S3 keeps them (text; booleans lower case)."""
        return {
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in self.metadata.items()
        }

    def matches(self, metadata: dict[str, Any]) -> bool:
        """Whether a point with this metadata passes (the reference semantics, used by tests and by
        stores that evaluate a filter themselves)."""
        if self.matches_nothing:
            return False
        source = str(metadata.get("source", ""))
        folders = set(metadata.get("folders") or ())
        for group in self.source_groups():
            if not any(
                (kind == "source" and source == value) or (kind == "folder" and value in folders)
                for kind, value in group
            ):
                return False
        if self.content_type and metadata.get("content_type") != self.content_type:
            return False
        return all(str(metadata.get(key)) == value for key, value in self.metadata_terms().items())


def prefix_terms(prefix: str) -> list[SourceTerm]:
    """A prefix ending in '/' is a folder; otherwise it is one source, or the folder of that name."""
    if prefix.endswith("/"):
        return [("folder", prefix)]
    return [("source", prefix), ("folder", prefix + "/")]


@dataclass(frozen=True)
class Capabilities:
    """What a store declares about itself, so that callers adapt without knowing which store it is."""

    #: ``count`` and ``versions`` are exact (else approximate: reconcile does not trust missing points,
    #: ingest does not re-count after a replace).
    #:
    #: Where the pipeline checks it, and how each check behaves on a store that declares both False
    #: (Pinecone: eventually consistent reads, approximate statistics):
    #:
    #: - ``Pipeline.sync(repair=True)`` (reconcile) re-indexes an indexed document whose points the
    #:   tally lacks only with ``exact_counts``: on Pinecone a lagging tally forces nothing; a stray
    #:   version the tally does show is still deleted (a delete of what is gone is harmless).
    #: - the commit of a replaced document re-counts its new version and writes it again when points
    #:   vanished (a racing older run deleted them) only with ``exact_counts`` and
    #:   ``read_your_writes``: on Pinecone the replace is written once (a lagging count would look
    #:   like vanished points every time), so the rare race of an older run's commit deleting the
    #:   newer version's points is not repaired there, and reconcile cannot see it either (its tally
    #:   is approximate): those points come back when the document is written again.
    #: - counts taken only for traces (points deleted) may be off on Pinecone; nothing depends on them.
    exact_counts: bool = True
    #: An upsert or delete is visible to every read once it returns (else eventually consistent; the
    #: contract suite then polls its reads after writes: ``tests/integration/index/test_index_contract.py``).
    read_your_writes: bool = True
    #: The store lives in this process on local disk (one process at a time), not behind a server.
    embedded: bool = True
    #: Dense and lexical retrieval fused by the engine (hybrid search): ``search`` honours ``lexical``
    #: (else it is ignored and the search is dense only).
    hybrid: bool = False


@runtime_checkable
class VectorIndex(Protocol):
    """A collection of chunks of many sources in one vector store.

    Semantics every implementation keeps (the contract suite checks each of them):

    - Construction makes no network call and creates nothing; the collection is created by
      :meth:`ensure_collection`, and every read before it answers as an empty index.
    - Ids are the strings of :func:`~ragstream.index.layout.point_id` (uuid5); a store with integer ids
      derives them from the uuid deterministically.
    - Similarity is cosine; a hit's ``score`` is the cosine similarity (1.0 for the same direction).
    """

    @property
    def collection(self) -> str:
        """The collection (or index, or table) name within the store."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What this store declares about itself."""
        ...

    def ensure_collection(self, dim: int) -> None:
        """Create the collection for vectors of ``dim`` floats on first use; idempotent.

        A collection that exists with another dimension (or that ragstream did not make) is refused
        with :class:`~ragstream.errors.DimensionMismatch`, whose message says what to do.
        """
        ...

    def exists(self) -> bool:
        """Whether the collection exists; free once this instance made or checked it."""
        ...

    def upsert(self, points: Sequence[Point]) -> int:
        """Write ``points``, replacing any point of the same id (text, vector and metadata); returns how
        many. Idempotent by id. With ``read_your_writes``, every read sees them when this returns."""
        ...

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        """Delete the points of ``source``: all of them; all but those of ``keep_version``; or only
        those of ``only_version``. Other sources are untouched. A missing collection is a no-op."""
        ...

    def count(self, source: str | None = None, version: str | None = None) -> int:
        """Number of points, of one source (and version) when given; exact unless the store declares
        ``exact_counts=False``."""
        ...

    def versions(self) -> Counter[tuple[str, str]]:
        """Points per (source, version) in the whole collection, for reconcile."""
        ...

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        """The ``limit`` points nearest to ``vector`` among those passing ``flt``, nearest first.

        The filter restricts the candidates before the nearest are chosen: when at least ``limit``
        points pass it, ``limit`` hits come back (never a post-filtered short list).

        With ``lexical`` and ``capabilities.hybrid``, the engine fuses the dense ranking with the
        lexical one (e.g. reciprocal rank fusion) under the same filter, best first; a hit's ``score``
        is then the fused score (higher is better, not a cosine). Without ``capabilities.hybrid``,
        ``lexical`` is ignored.
        """
        ...

    def ping(self) -> None:
        """Raise :class:`~ragstream.errors.IndexUnavailable` when the store cannot be reached."""
        ...

    def close(self) -> None:
        """Release the client (and, embedded, the folder's lock); the instance is not used after."""
        ...

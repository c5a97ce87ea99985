"""Pinecone serverless through the ``pinecone`` SDK (REST, API version 2026-07).

The index
    One serverless index per collection (``RAGSTREAM_COLLECTION`` mapped to Pinecone's naming rules by
    :func:`index_name`), made on first use on ``RAGSTREAM_PINECONE_CLOUD`` /
    ``RAGSTREAM_PINECONE_REGION`` with a dense field of the embedder's dimension, metric
    **dotproduct**, and a sparse field (sparse-dense hybrid search needs both, and dotproduct). Every
    dense vector is scaled to unit length on the way in, so the dot product *is* the cosine
    similarity the contract promises (both embedders already give unit vectors). An index of metric
    cosine without a sparse field (made by hand, or for dense-only use) is accepted too, and searched
    dense only. Creation waits until the index is ready. An existing index of another dimension, or
    of another metric, is refused with :class:`~ragstream.errors.DimensionMismatch`. Points may live
    in one namespace (``RAGSTREAM_PINECONE_NAMESPACE``; empty: the default namespace).

The record
    The point's id (the uuid5), its vector, and flat metadata: the chunk's text under ``text`` (the key
    LangChain's ``PineconeVectorStore`` reads), then the layout's metadata with nulls dropped,
    ``folders`` kept as a list of strings (a folder filter is ``{"folders": {"$in": [f]}}``), any
    other list or dict as JSON text. Numbers come back as Pinecone stores them (float); integral ones
    are given back as int.

Pinecone's limits
    A record carries at most 40 KB of metadata. A chunk whose text would not fit keeps its vector (made
    of the whole text, so search still finds it) and the longest prefix of its text that fits, with
    ``text_truncated: true`` and ``text_chars`` (the whole text's length) in its metadata, and a
    warning in the log; the answer cites the source, whose full text stays in the bucket. Metadata
    that leaves less than 4 KB for the text (large extractor metadata; S3's user metadata is at most
    2 KB) loses its largest keys other than ragstream's own, named in ``metadata_dropped``, with a
    warning; ragstream's own keys are never dropped (they could not exceed the limit: an S3 key is at
    most 1 KB). Upserts are sent in requests of at most 1000 records and 1.5 MB (Pinecone refuses
    2 MB).

Consistency
    Pinecone's reads are eventually consistent and its statistics approximate, so the store declares
    ``Capabilities(read_your_writes=False, exact_counts=False)``: the pipeline then never re-counts
    after a replace, and reconcile does not take a lagging tally for lost points (see
    :class:`~ragstream.index.contract.Capabilities` and ``ingest/``).

Deletes and tallies
    Delete by metadata filter (serverless since the 2025-10 API) removes a source, a version, or all
    versions but one. ``count(source[, version])`` and ``versions()`` page through fetch-by-metadata
    (ids of ours are uuid5, so listing by id prefix cannot select a source); ``count()`` reads the
    namespace's record count from the index statistics.

Hybrid search
    A point's ``sparse`` vector is written as the record's sparse values. Pinecone fuses only by a
    weighted sum of the dense and sparse dot products, and our sparse weights carry no IDF (Pinecone
    adds none; see :class:`~ragstream.index.contract.SparseVector`): a sum lets a near-perfect dense
    match outweigh an exact term (a code, a ticker) whatever the weights, or every common word
    outweigh the meaning. So a search given ``lexical`` asks Pinecone for two rankings under the same
    filter, each :func:`fusion_depth` deep: the dense one, and the lexical one (the query's sparse
    vector, with the dense query shrunk by :data:`LEXICAL_DENSE_SCALE` so it only breaks ties; records
    holding none of the terms are left out of it). It fuses them by reciprocal rank with ``k = 60``, as
    the engines of the other hybrid stores do (a hit's score is the fused one). Two queries instead of
    one. On an index without a sparse field ``lexical`` is ignored and sparse values are not written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, DimensionMismatch, IndexUnavailable, TooLarge
from .contract import RRF_K, Capabilities, Hit, LexicalQuery, Point, SearchFilter, fusion_depth
from .kit import (
    Ready,
    all_of,
    any_of,
    check_dimension,
    failed,
    last_of_each,
    missing_collection,
    ping,
    unreachable,
    vector_refused,
)
from .layout import RESERVED, version_key

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["PineconeIndex", "from_settings", "index_name", "record_metadata", "to_pinecone_filter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The metadata key of the chunk's text (LangChain's ``PineconeVectorStore`` default).
TEXT_KEY = "text"
#: The dense field of a vectors-API index (what the SDK's ``dimension=`` sugar declares).
DENSE_FIELD = "_values"
#: Pinecone's limit of metadata per record, and what we allow ourselves (a margin for its own measure).
METADATA_LIMIT = 40 * 1024
METADATA_BUDGET = METADATA_LIMIT - 1024
#: Room kept for the text at least: larger extractor or user metadata is dropped (and named) first.
MIN_TEXT_BYTES = 4096
#: The metadata key that names what was dropped to fit.
DROPPED_KEY = "metadata_dropped"
#: One upsert request: Pinecone takes at most 1000 records and 2 MB.
MAX_RECORDS = 1000
MAX_REQUEST_BYTES = 1_500_000
#: The sparse field of a vectors-API index.
SPARSE_FIELD = "_sparse_values"
#: The dense query's scale in the lexical ranking's query: it only orders records of equal lexical score.
LEXICAL_DENSE_SCALE = 1e-6
#: A record of the lexical ranking scoring below this holds none of the query's terms.
LEXICAL_FLOOR = 1e-3
#: What the kit's messages call a collection here.
KIND = "Pinecone index"
#: Records per fetch-by-metadata page.
PAGE = 1000
#: Pinecone index names: 1-45 characters, lowercase alphanumerics and hyphens.
NAME_MAX = 45
_VALID_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


def index_name(collection: str) -> str:
    """The Pinecone index name of a collection, deterministically.

    A name already valid (lowercase alphanumerics and hyphens, at most 45 characters, no hyphen at
    either end) is used as is. Any other is lowercased, each run of other characters becomes one
    hyphen, and a hyphen and the first 8 hex digits of the collection's SHA-256 are appended (within
    45 characters), so that ``My_Docs`` and ``my-docs`` never share an index.
    """
    if len(collection) <= NAME_MAX and _VALID_NAME.match(collection):
        return collection
    digest = hashlib.sha256(collection.encode()).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9]+", "-", collection.lower()).strip("-")
    base = base[: NAME_MAX - len(digest) - 1].rstrip("-")
    return f"{base}-{digest}" if base else f"ragstream-{digest}"


def _size(meta: dict[str, Any]) -> int:
    """Bytes of metadata as JSON (UTF-8, compact): how Pinecone measures it."""
    return len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode())


def record_metadata(point: Point) -> dict[str, Any]:
    """The flat metadata of a point's record, its text included (truncated to fit, and flagged)."""
    meta: dict[str, Any] = {}
    for key, value in point.metadata.items():
        if value is None or key == TEXT_KEY:
            continue
        if isinstance(value, bool | int | str) or (isinstance(value, float) and value == value):
            meta[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            meta[key] = list(value)
        else:
            meta[key] = json.dumps(value, sort_keys=True, default=str)
    if point.metadata.get(TEXT_KEY) is not None:
        log.warning("metadata key %r of %s is the chunk's text in Pinecone: not kept", TEXT_KEY, point.id)
    dropped: list[str] = []
    while _size(meta) > METADATA_BUDGET - MIN_TEXT_BYTES:
        # extractor or user metadata too big for Pinecone: its largest keys go, named in the record
        extra = [k for k in meta if k not in RESERVED and k != DROPPED_KEY]
        if not extra:
            raise TooLarge(
                f"the metadata of a chunk of {meta.get('source', point.id)} takes {_size(meta)} bytes; "
                f"Pinecone keeps at most {METADATA_LIMIT} bytes per record"
            )
        largest = max(extra, key=lambda k: _size({k: meta[k]}))
        del meta[largest]
        dropped.append(largest)
        meta[DROPPED_KEY] = sorted(dropped)
    if dropped:
        log.warning(
            "chunk %s of %s: metadata %s dropped to fit Pinecone's 40 KB per record",
            meta.get("chunk_index", point.id),
            meta.get("source", "?"),
            ", ".join(sorted(dropped)),
        )
    full = {**meta, TEXT_KEY: point.text}
    if _size(full) <= METADATA_BUDGET:
        return full
    flagged = {**meta, "text_truncated": True, "text_chars": len(point.text)}
    text = point.text
    while True:  # shrink until it fits: JSON escapes make bytes and characters differ
        excess = _size({**flagged, TEXT_KEY: text}) - METADATA_BUDGET
        if excess <= 0:
            break
        text = text[: max(0, len(text) - max(excess // 4, 1))]
    log.warning(
        "chunk %s of %s: its text (%d characters) is over Pinecone's 40 KB of metadata; "
        "%d characters kept, flagged text_truncated",
        meta.get("chunk_index", point.id),
        meta.get("source", "?"),
        len(point.text),
        len(text),
    )
    return {**flagged, TEXT_KEY: text}


def _unit(vector: Sequence[float]) -> list[float]:
    """The vector scaled to unit length (its dot products are then cosines)."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def _restore(meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The text and the metadata of a record as read (integral floats back to int)."""
    meta = dict(meta)
    text = str(meta.pop(TEXT_KEY, ""))
    for key, value in meta.items():
        if isinstance(value, float) and value.is_integer():
            meta[key] = int(value)
    return text, meta


def to_pinecone_filter(flt: SearchFilter | None) -> dict[str, Any] | None:
    """Our filter in Pinecone's metadata filter language (None: no filter; call only when
    ``flt.matches_nothing`` is false)."""
    if flt is None:
        return None
    terms: list[dict[str, Any]] = []
    for group in flt.source_groups():
        ors: list[dict[str, Any]] = [
            {"source": {"$eq": value}} if kind == "source" else {"folders": {"$in": [value]}}
            for kind, value in group
        ]
        terms.append(any_of(ors, _or))
    if flt.content_type:
        terms.append({"content_type": {"$eq": flt.content_type}})
    for key, value in flt.metadata_terms().items():
        terms.append({key: {"$eq": value}})
    return all_of(terms, _and)


def _source_filter(source: str | None, version: str | None = None, *, not_version: str | None = None) -> Any:
    terms: list[dict[str, Any]] = [
        {"source": {"$eq": source}} if source is not None else {"source": {"$exists": True}}
    ]
    if version is not None:
        terms.append({"version": {"$eq": version}})
    if not_version is not None:
        terms.append({"version": {"$ne": not_version}})
    return all_of(terms, _and)


def _and(terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"$and": terms}


def _or(terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"$or": terms}


class PineconeIndex:
    """A serverless Pinecone index of chunks (eventually consistent reads, approximate counts)."""

    def __init__(
        self,
        client: Any,
        collection: str,
        *,
        cloud: str = "aws",
        region: str = "us-east-1",
        namespace: str = "",
    ):
        """``client`` is a ``pinecone.Pinecone`` (its construction makes no call)."""
        self.client = client
        self.collection = collection
        self.index_name = index_name(collection)
        self.cloud = cloud
        self.region = region
        self.namespace = namespace
        self.capabilities = Capabilities(
            exact_counts=False, read_your_writes=False, embedded=False, hybrid=True
        )
        self._data: Any = None
        self._ready = Ready()
        self._sparse = False  # the index has a sparse field (known once opened)

    # -- the index -----------------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        """Create the serverless index on first use (waiting until ready); refuse another dimension."""
        if self._ready.known(dim):
            return
        from pinecone.errors import ConflictError, NotFoundError

        try:
            model = self._call(self.client.indexes.describe, self.index_name)
        except NotFoundError:
            try:
                model = self._call(
                    self.client.indexes.create,
                    name=self.index_name,
                    schema={
                        "fields": {
                            DENSE_FIELD: {"type": "dense_vector", "dimension": dim, "metric": "dotproduct"},
                            SPARSE_FIELD: {"type": "sparse_vector"},
                        }
                    },
                    deployment={"deployment_type": "managed", "cloud": self.cloud, "region": self.region},
                    timeout=300,
                )
            except ConflictError:  # made meanwhile by another run: wait until it is ready
                model = self._call(self._wait_ready)
        field = model.schema.fields.get(DENSE_FIELD)
        size = getattr(field, "dimension", None)
        check_dimension(self.index_name, int(size) if size is not None else None, dim, kind=KIND)
        metric = str(getattr(field, "metric", "")).lower()
        if not (metric == "cosine" or (metric == "dotproduct" and SPARSE_FIELD in model.schema.fields)):
            raise DimensionMismatch(
                f"Pinecone index {self.index_name!r} uses metric {metric!r}, ragstream needs dotproduct "
                "with a sparse field, or cosine: set RAGSTREAM_COLLECTION to another name"
            )
        self._open(model)
        self._ready.remember(dim)

    def _wait_ready(self) -> Any:
        """Describe the index until it is ready (at most 5 minutes)."""
        import time

        deadline = time.monotonic() + 300
        while True:
            model = self.client.indexes.describe(self.index_name)
            if model.status.ready:
                return model
            if time.monotonic() > deadline:
                raise IndexUnavailable(f"Pinecone index {self.index_name!r} is not ready after 5 minutes")
            time.sleep(2)

    def _open(self, model: Any) -> Any:
        """The data-plane client of the index ``model`` describes; notes whether it has a sparse field."""
        if not model.host:
            raise IndexUnavailable(f"Pinecone index {self.index_name!r} has no host yet (still initializing)")
        if self._data is None:
            self._sparse = SPARSE_FIELD in model.schema.fields
            self._data = self.client.index(host=model.host)
        return self._data

    def exists(self) -> bool:
        """Whether the index exists (asked until it does, then known)."""
        return self._index() is not None

    def _index(self) -> Any:
        """The data-plane client of the index, or None when the index does not exist."""
        if self._data is None:
            from pinecone.errors import NotFoundError

            try:
                model = self._call(self.client.indexes.describe, self.index_name)
            except NotFoundError:
                return None
            self._open(model)
        return self._data

    # -- writes ---------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> int:
        """Write points in requests under Pinecone's limits; a record of an existing id is replaced."""
        index = self._index()
        if index is None:
            raise missing_collection(self.index_name, kind=KIND)
        last = last_of_each(points)
        batch: list[dict[str, Any]] = []
        size = 0
        for p in last:
            record: dict[str, Any] = {"id": p.id, "values": _unit(p.vector), "metadata": record_metadata(p)}
            if self._sparse and p.sparse is not None and p.sparse.indices:
                record["sparse_values"] = {"indices": p.sparse.indices, "values": p.sparse.values}
            n = len(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode())
            if batch and (len(batch) >= MAX_RECORDS or size + n > MAX_REQUEST_BYTES):
                self._send(index, batch)
                batch, size = [], 0
            batch.append(record)
            size += n
        if batch:
            self._send(index, batch)
        return len(points)

    def _send(self, index: Any, batch: list[dict[str, Any]]) -> None:
        self._call(index.upsert, vectors=batch, namespace=self.namespace, show_progress=False)

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        """Delete by metadata filter: all of ``source``, all but ``keep_version``, or ``only_version``."""
        index = self._index()
        if index is None:
            return
        from pinecone.errors import NotFoundError

        flt = _source_filter(source, only_version, not_version=keep_version)
        try:
            self._call(index.delete, filter=flt, namespace=self.namespace)
        except NotFoundError:  # the namespace holds no record (serverless: it does not exist yet)
            log.debug("nothing to delete for %s: namespace %r is empty", source, self.namespace)

    # -- reads ----------------------------------------------------------------------------------------
    def count(self, source: str | None = None, version: str | None = None) -> int:
        """Records (approximate: eventually consistent), of one source (and version) when given."""
        index = self._index()
        if index is None:
            return 0
        if source is None and version is None:
            stats = self._call(index.describe_index_stats)
            for key in (self.namespace, "__default__") if not self.namespace else (self.namespace,):
                if key in stats.namespaces:
                    return int(stats.namespaces[key].vector_count)
            return 0
        return sum(1 for _ in self._scan(index, _source_filter(source, version)))

    def versions(self) -> Counter[tuple[str, str]]:
        """Records per (source, version), paged through fetch-by-metadata."""
        counts: Counter[tuple[str, str]] = Counter()
        index = self._index()
        if index is None:
            return counts
        counts.update(version_key(meta) for meta in self._scan(index, _source_filter(None)))
        return counts

    def _scan(self, index: Any, flt: Any) -> Iterator[dict[str, Any]]:
        """The metadata of every record passing ``flt``, a page at a time."""
        token: str | None = None
        while True:
            page = self._call(
                index.fetch_by_metadata,
                filter=flt,
                namespace=self.namespace,
                limit=PAGE,
                pagination_token=token,
            )
            for vec in page.vectors.values():
                yield dict(vec.metadata or {})
            token = page.pagination.next if page.pagination else None
            if not token:
                return

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        """The ``limit`` nearest records that pass the filter (Pinecone filters before it ranks); with
        ``lexical`` on an index with a sparse field, ranked by the hybrid score (module doc)."""
        if flt is not None and flt.matches_nothing:
            return []
        index = self._index()
        if index is None:
            return []
        dense = _unit(vector)
        if lexical is None or not self._sparse or not lexical.sparse.indices:
            return self._query(index, dense, None, limit, flt)
        depth = fusion_depth(limit)
        by_dense = self._query(index, dense, None, depth, flt)
        sparse = {"indices": list(lexical.sparse.indices), "values": list(lexical.sparse.values)}
        shrunk = [x * LEXICAL_DENSE_SCALE for x in dense]
        by_terms = [h for h in self._query(index, shrunk, sparse, depth, flt) if h.score >= LEXICAL_FLOOR]
        return rrf([by_dense, by_terms], limit)

    def _query(
        self,
        index: Any,
        dense: list[float],
        sparse: dict[str, Any] | None,
        top_k: int,
        flt: SearchFilter | None,
    ) -> list[Hit]:
        result = self._call(
            index.query,
            vector=dense,
            sparse_vector=sparse,
            top_k=top_k,
            filter=to_pinecone_filter(flt),
            include_metadata=True,
            namespace=self.namespace,
        )
        hits = []
        for match in result.matches:
            text, meta = _restore(dict(match.metadata or {}))
            hits.append(Hit(id=str(match.id), score=float(match.score), text=text, metadata=meta))
        return hits

    def ping(self) -> None:
        """List the project's indexes; IndexUnavailable when Pinecone does not answer."""
        ping("Pinecone", lambda: self.client.indexes.list().to_list())  # the paginator alone calls nothing

    def close(self) -> None:
        """Close the data-plane and control-plane clients."""
        if self._data is not None:
            self._data.close()
            self._data = None
        self.client.close()
        self._ready.forget()

    # -- plumbing -------------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Pinecone; a dimension error becomes ours, throttling and outages transient.

        Not retried here: the pinecone SDK retries connection errors, 429 and 5xx itself (four
        tries, honouring Retry-After, control and data plane alike); see :mod:`ragstream.retry`."""
        from pinecone.errors import (
            ApiError,
            PineconeConnectionError,
            PineconeTimeoutError,
            RateLimitError,
            ServiceError,
        )

        try:
            return fn(*args, **kwargs)
        except (PineconeConnectionError, PineconeTimeoutError) as exc:
            raise unreachable("Pinecone", exc) from exc
        except (RateLimitError, ServiceError) as exc:
            raise failed("Pinecone", exc) from exc
        except ApiError as exc:
            if exc.status_code == 400 and "dimension" in str(exc).lower():
                raise vector_refused(str(exc), self.index_name, kind=KIND) from exc
            raise


def from_settings(settings: Settings) -> PineconeIndex:
    """Pinecone by ``RAGSTREAM_INDEX_API_KEY`` (``RAGSTREAM_INDEX_URL``: another control-plane host)."""
    from pinecone import Pinecone

    if settings.index_api_key is None or not settings.index_api_key.get_secret_value():
        raise ConfigError("RAGSTREAM_INDEX=pinecone needs RAGSTREAM_INDEX_API_KEY (or its _PARAMETER)")
    client = Pinecone(
        api_key=settings.index_api_key.get_secret_value(),
        host=settings.index_url or None,
        source_tag="ragstream",
    )
    return PineconeIndex(
        client,
        settings.collection,
        cloud=settings.pinecone_cloud,
        region=settings.pinecone_region,
        namespace=settings.pinecone_namespace,
    )


def rrf(rankings: Sequence[Sequence[Hit]], limit: int) -> list[Hit]:
    """Reciprocal rank fusion (ranks from 0): each hit scores ``sum(1 / (RRF_K + rank))`` over the
    rankings it is in; the best ``limit``, ties in the order of the first ranking."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(hit.id, hit)
    order = sorted(first, key=lambda i: -scores[i])  # sorted() is stable: ties keep their first order
    return [replace(first[i], score=scores[i]) for i in order[:limit]]

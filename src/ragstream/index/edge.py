"""The embedded index on Qdrant Edge: the Qdrant engine in-process, one shard per collection.

:class:`EdgeIndex` implements the :class:`~ragstream.index.contract.VectorIndex` contract with the
payload layout of the Qdrant store (``page_content`` + ``metadata``, see ``qdrant_payload``). It
replaces qdrant-client's local mode (``QdrantClient(path=...)``), a
Python re-implementation that searches by brute force; LangChain cannot open an Edge shard, so
LangChain compatibility stays with the client/server mode.

Edge has no background optimizer: segments are indexed (HNSW) only when :meth:`EdgeShard.optimize`
runs. :meth:`EdgeIndex.upsert` runs it once ``optimize_after`` points wait unindexed, so ingest pays
for indexing in a few large steps and search stays fast; below that, the waiting points are scanned
exactly (in Rust, a few milliseconds for tens of thousands of points).

A shard directory can be open in one process only (the engine locks its write-ahead log), like
qdrant-client's local mode; within a process, every :class:`EdgeIndex` of one :class:`EdgeStore`
shares its open shards, and reads may run from many threads.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, IndexUnavailable
from . import embedded
from .contract import RRF_K, Capabilities, Hit, LexicalQuery, Point, SearchFilter, fusion_depth
from .kit import Ready, batches, check_dimension, failed, missing_collection, vector_refused
from .qdrant_payload import (
    KEYWORD_FIELDS,
    NO_SPARSE,
    SPARSE,
    VECTOR,
    filter_terms,
    payload,
    tally_versions,
    to_hit,
)

if TYPE_CHECKING:
    import qdrant_edge as qe

    from ..config import Settings

__all__ = ["EdgeIndex", "EdgeStore", "from_settings"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Written by the engine into every shard directory; holds the vector configuration.
CONFIG_FILE = "edge_config.json"


@dataclass
class EdgeStore:
    """A folder of Qdrant Edge shards, one per collection.

    Opens each shard once per process and hands the same one to every index over this store.
    ``indexing_threshold_kb`` applies to shards this store creates: a segment bigger than that gets an
    HNSW index when optimized (None: Qdrant's default, 10,000 KB, about 6,500 vectors of 384 floats).
    """

    path: Path
    indexing_threshold_kb: int | None = None
    _shards: dict[str, qe.EdgeShard] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def shard_path(self, collection: str) -> Path:
        return self.path / collection

    def has(self, collection: str) -> bool:
        """Whether a shard of that name is open or on disk."""
        return collection in self._shards or (self.shard_path(collection) / CONFIG_FILE).is_file()

    def dimension(self, collection: str) -> int | None:
        """The size of the shard's dense vector, read from its config file (None: not ours)."""
        params = (self._config(collection).get("vectors") or {}).get(VECTOR)
        return int(params["size"]) if params else None

    def has_sparse(self, collection: str) -> bool:
        """Whether the shard has the sparse vector of hybrid retrieval (shards made before it do not)."""
        return SPARSE in (self._config(collection).get("sparse_vectors") or {})

    def _config(self, collection: str) -> dict[str, Any]:
        try:
            raw = json.loads((self.shard_path(collection) / CONFIG_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise IndexUnavailable(
                f"cannot read {self.shard_path(collection) / CONFIG_FILE}: {exc}; "
                "the folder is not a Qdrant Edge shard, or it is damaged"
            ) from exc
        return raw if isinstance(raw, dict) else {}

    def open(self, collection: str, *, create_dim: int | None = None) -> qe.EdgeShard | None:
        """The collection's shard: opened once, created with ``create_dim`` if given, else None if absent."""
        shard = self._shards.get(collection)
        if shard is not None:
            return shard
        import qdrant_edge as qe

        with self._lock:
            shard = self._shards.get(collection)
            if shard is not None:
                return shard
            path = self.shard_path(collection)
            if (path / CONFIG_FILE).is_file():
                shard = _translate(qe.EdgeShard.load, str(path), where=path)
            elif create_dim is not None:
                path.mkdir(parents=True, exist_ok=True)
                optimizers = None
                if self.indexing_threshold_kb is not None:
                    optimizers = qe.EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb)
                config = qe.EdgeConfig(
                    vectors={VECTOR: qe.EdgeVectorParams(size=create_dim, distance=qe.Distance.Cosine)},
                    sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                    optimizers=optimizers,
                )
                shard = _translate(qe.EdgeShard.create, str(path), config, where=path)
            else:
                return None
            missing = set(KEYWORD_FIELDS) - set(_translate(shard.info).payload_schema)
            for name in sorted(missing):  # all of them on creation; after a crash during it, the rest
                _translate(
                    shard.update, qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword)
                )
            if missing:
                _translate(shard.flush)
            self._shards[collection] = shard
            return shard

    def close(self) -> None:
        """Flush and close every open shard; a later call reopens them."""
        with self._lock:
            shards, self._shards = self._shards, {}
        for shard in shards.values():
            try:
                shard.flush()
            finally:
                shard.close()


class EdgeIndex:
    """A collection of chunks of many sources in a Qdrant Edge shard; every write is applied on return.

    Hybrid: each shard has a named sparse vector (BM25 weights, IDF applied by the engine's modifier);
    a search with ``lexical`` prefetches the dense and the sparse candidates under the same filter and
    fuses them by reciprocal rank. A shard made before hybrid retrieval has no sparse vector: it is
    searched dense, and sparse points are refused (:data:`~.qdrant_payload.NO_SPARSE` says what to do).
    """

    def __init__(
        self,
        store: EdgeStore,
        collection: str,
        *,
        batch_size: int = 1024,
        optimize_after: int = 50_000,
    ):
        self.store = store
        self.collection = collection
        self.batch_size = batch_size
        self.optimize_after = optimize_after
        self.capabilities = Capabilities(embedded=True, hybrid=True)
        self._ready = Ready()
        self._sparse: bool | None = None  # whether the shard has the sparse vector, once known

    # -- collection ----------------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        """Create the collection on first use; refuse a collection of another dimension."""
        if self._ready.known(dim):
            return
        if self.store.has(self.collection):
            check_dimension(self.collection, self.store.dimension(self.collection), dim)
        self.store.open(self.collection, create_dim=dim)
        self._ready.remember(dim)
        self._sparse = None

    def exists(self) -> bool:
        """Whether the collection exists (known without a look once this instance made or checked it)."""
        return self._ready.exists(lambda: self.store.has(self.collection))

    # -- writes ---------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> int:
        """Write points in batches, flush, and index them once enough wait unindexed; returns how many."""
        import qdrant_edge as qe

        shard = self._shard()
        if shard is None:
            raise missing_collection(self.collection)
        if any(p.sparse is not None for p in points) and not self._has_sparse():
            raise ConfigError(NO_SPARSE.format(collection=self.collection))
        for chunk in batches(points, self.batch_size):
            batch = [qe.Point(id=p.id, vector=_vectors(p), payload=payload(p)) for p in chunk]
            _translate(shard.update, qe.UpdateOperation.upsert_points(batch))
        _translate(shard.flush)
        info = _translate(shard.info)
        if info.points_count - info.indexed_vectors_count >= self.optimize_after:
            _translate(shard.optimize)
        return len(points)

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        """Delete the points of ``source``: all, all but ``keep_version``, or only ``only_version``."""
        shard = self._shard()
        if shard is None:
            return
        import qdrant_edge as qe

        must: list[Any] = [_match("metadata.source", source)]
        if only_version:
            must.append(_match("metadata.version", only_version))
        flt = qe.Filter(
            must=must, must_not=[_match("metadata.version", keep_version)] if keep_version else None
        )
        _translate(shard.update, qe.UpdateOperation.delete_points_by_filter(flt))
        _translate(shard.flush)

    # -- reads ----------------------------------------------------------------------------------------
    def count(self, source: str | None = None, version: str | None = None) -> int:
        """Exact number of points, of one source (and version) when given."""
        shard = self._shard()
        if shard is None:
            return 0
        import qdrant_edge as qe

        must: list[Any] = []
        if source is not None:
            must.append(_match("metadata.source", source))
        if version is not None:
            must.append(_match("metadata.version", version))
        request = qe.CountRequest(exact=True, filter=qe.Filter(must=must) if must else None)
        return int(_translate(shard.count, request))

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        """The ``limit`` nearest points to ``vector`` that pass the filter; with ``lexical``, the dense
        and the BM25 candidates (each under the filter) fused by reciprocal rank."""
        if flt is not None and flt.matches_nothing:
            return []
        shard = self._shard()
        if shard is None:
            return []
        import qdrant_edge as qe

        dense = qe.Query.Nearest(list(vector), using=VECTOR)
        if lexical is None or not lexical.sparse.indices or not self._has_sparse():
            request = qe.QueryRequest(limit=limit, query=dense, filter=to_edge_filter(flt), with_payload=True)
        else:
            sparse = qe.SparseVector(indices=lexical.sparse.indices, values=lexical.sparse.values)
            each = fusion_depth(limit)
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(limit=each, query=dense, filter=to_edge_filter(flt)),
                    qe.Prefetch(
                        limit=each, query=qe.Query.Nearest(sparse, using=SPARSE), filter=to_edge_filter(flt)
                    ),
                ],
                query=qe.Fusion.Rrf(k=RRF_K),  # type: ignore[arg-type]
                with_payload=True,
            )
        return [to_hit(p.id, p.score, p.payload) for p in _translate(shard.query, request)]

    def versions(self) -> Counter[tuple[str, str]]:
        """Points per (source, version) present in the index, for reconcile (scrolls everything)."""
        counts: Counter[tuple[str, str]] = Counter()
        shard = self._shard()
        if shard is None:
            return counts
        import qdrant_edge as qe

        offset = None
        while True:
            records, offset = _translate(
                shard.scroll,
                qe.ScrollRequest(
                    offset=offset,
                    limit=1000,
                    with_payload=["metadata.source", "metadata.version"],
                    with_vector=False,
                ),
            )
            tally_versions(records, counts)
            if offset is None:
                return counts

    def ping(self) -> None:
        """The folder is local: reachable while it can be read."""
        if not self.store.path.is_dir():
            raise IndexUnavailable(f"the Qdrant Edge folder {self.store.path} is gone")

    def close(self) -> None:
        """Close the store (shared by every index of this process on the folder)."""
        embedded.release(self.store)
        self.store.close()
        self._ready.forget()

    # -- plumbing -------------------------------------------------------------------------------------
    def _shard(self) -> qe.EdgeShard | None:
        return self.store.open(self.collection)

    def _has_sparse(self) -> bool:
        if self._sparse is None:
            self._sparse = self.store.has(self.collection) and self.store.has_sparse(self.collection)
            if not self._sparse and self.store.has(self.collection):
                log.warning(NO_SPARSE.format(collection=self.collection) + "; searching it dense")
        return self._sparse


def _vectors(point: Point) -> dict[str, Any]:
    """The named vectors of a point: the dense one, and the sparse one when it has terms."""
    import qdrant_edge as qe

    vectors: dict[str, Any] = {VECTOR: list(point.vector)}
    if point.sparse is not None and point.sparse.indices:
        vectors[SPARSE] = qe.SparseVector(indices=point.sparse.indices, values=point.sparse.values)
    return vectors


def _translate(fn: Callable[..., T], *args: Any, where: Path | None = None) -> T:
    """Call the engine; its storage errors (plain ``Exception`` with a message) become ours, with advice."""
    try:
        return fn(*args)
    except Exception as exc:
        if type(exc) is not Exception:  # a Python error of ours or of the bindings (TypeError, ...)
            raise
        message = str(exc)
        if "WouldBlock" in message:  # the engine locks its write-ahead log per process
            raise ConfigError(
                f"the index folder {where or ''} is open in another process: an embedded index serves one "
                "process; stop the other one, or run a Qdrant server and set RAGSTREAM_INDEX_URL"
            ) from exc
        if message.startswith("Vector dimension error"):
            raise vector_refused(message, None) from exc
        if message.startswith("Service runtime error"):  # storage: I/O, a full disk, a damaged segment
            raise failed("Qdrant Edge", message) from exc
        raise  # a wrong request is a bug of ours, as a 4xx is in QdrantIndex: let it show as it is


def _match(key: str, value: str) -> qe.FieldCondition:
    import qdrant_edge as qe

    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def to_edge_filter(flt: SearchFilter | None) -> qe.Filter | None:
    """Our filter model as a Qdrant Edge filter (the same terms as the Qdrant store's)."""
    terms = filter_terms(flt)
    if not terms:
        return None
    import qdrant_edge as qe

    if not all(terms):  # an empty OR (no allowed prefix) matches nothing
        return qe.Filter(must=[qe.HasIdCondition(set())])

    must: list[Any] = [
        _match(*any_of[0]) if len(any_of) == 1 else qe.Filter(should=[_match(k, v) for k, v in any_of])
        for any_of in terms
    ]
    return qe.Filter(must=must)


def _open_store(path: Path) -> EdgeStore:
    try:
        import qdrant_edge  # noqa: F401  (fail here, with advice, not at the first write)
    except ImportError:
        raise ConfigError(
            "the embedded Qdrant Edge index needs qdrant-edge-py: pip install 'ragstream[local]', "
            "or set RAGSTREAM_INDEX to another store"
        ) from None
    return EdgeStore(path)


def from_settings(settings: Settings) -> EdgeIndex:
    """The Edge folder ``index_path`` (default ``home/edge``), one store per folder and process."""
    store = embedded.acquire("edge", Path(settings.index_location), _open_store)
    return EdgeIndex(store, settings.collection, batch_size=max(settings.upsert_batch_size, 1024))

"""Qdrant through qdrant-client: Qdrant Cloud or a server (``RAGSTREAM_INDEX_URL``), or qdrant-client's
local mode (a folder, or ``:memory:``), in LangChain's ``QdrantVectorStore`` layout.

Points carry ``page_content`` and ``metadata`` (source, version, page, chunk_index, title, ...), and a
named dense vector ``dense``, so a LangChain user can open our collection with
``QdrantVectorStore(client, collection, embedding, vector_name="dense")`` and query it as it is.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, IndexUnavailable
from ..retry import STORES, retrying
from . import embedded
from .contract import RRF_K, Capabilities, Hit, LexicalQuery, Point, SearchFilter, fusion_depth
from .kit import Ready, batches, check_dimension, ping
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
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

    from ..config import Settings

__all__ = ["QdrantIndex", "from_settings", "to_qdrant_filter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVER = Capabilities(embedded=False, hybrid=True)
LOCAL = Capabilities(embedded=True, hybrid=True)


class QdrantIndex:
    """A collection of chunks of many sources; every write waits for Qdrant to apply it.

    Hybrid: the collection has a named sparse vector (BM25 weights, IDF applied by Qdrant's
    ``Modifier.IDF``); a search with ``lexical`` runs the Query API with two prefetches (dense,
    sparse), each under the filter, fused by reciprocal rank. A collection made before hybrid
    retrieval has no sparse vector: it is searched dense, and sparse points are refused.
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        *,
        batch_size: int = 256,
        retries: int = 4,
        embedded_client: bool | None = None,
    ):
        self.client = client
        self.collection = collection
        self.batch_size = batch_size
        self.retries = retries
        local = embedded_client if embedded_client is not None else _is_local(client)
        self.capabilities = LOCAL if local else SERVER
        self._ready = Ready()
        self._sparse: bool | None = None  # whether the collection has the sparse vector, once known

    # -- collection ----------------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        """Create the collection on first use; refuse a collection of another dimension."""
        if self._ready.known(dim):
            return
        from qdrant_client.http import models as qm

        if self._call(self.client.collection_exists, self.collection):
            info = self._call(self.client.get_collection, self.collection)
            vectors = info.config.params.vectors
            params = vectors.get(VECTOR) if isinstance(vectors, dict) else None
            check_dimension(self.collection, params.size if params else None, dim)
            self._sparse = SPARSE in (info.config.params.sparse_vectors or {})
        else:
            self._call(
                self.client.create_collection,
                self.collection,
                vectors_config={VECTOR: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            )
            self._sparse = True
            with warnings.catch_warnings():  # embedded Qdrant warns that it does not need them
                warnings.simplefilter("ignore", UserWarning)
                for field in KEYWORD_FIELDS:
                    self._call(
                        self.client.create_payload_index,
                        self.collection,
                        field_name=field,
                        field_schema=qm.PayloadSchemaType.KEYWORD,
                    )
        _tune_embedded(self.client)
        self._ready.remember(dim)

    def exists(self) -> bool:
        """Whether the collection exists; asked once, then known (Qdrant Cloud pays no round trip per
        query). A collection deleted behind this instance's back shows as an error, not as empty."""
        return self._ready.exists(lambda: self._call(self.client.collection_exists, self.collection))

    # -- writes ---------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> int:
        """Write points in batches (below Qdrant's request size limit); returns how many."""
        from qdrant_client.http import models as qm

        if any(p.sparse is not None for p in points) and not self._has_sparse():
            raise ConfigError(NO_SPARSE.format(collection=self.collection))
        for chunk in batches(points, self.batch_size):
            batch = [qm.PointStruct(id=p.id, vector=_vectors(p), payload=payload(p)) for p in chunk]
            self._call(self.client.upsert, self.collection, points=batch, wait=True)
        return len(points)

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        """Delete the points of ``source``: all, all but ``keep_version``, or only ``only_version``."""
        if not self.exists():
            return
        from qdrant_client.http import models as qm

        must: list[Any] = [_match("metadata.source", source)]
        if only_version:
            must.append(_match("metadata.version", only_version))
        flt = qm.Filter(
            must=must, must_not=[_match("metadata.version", keep_version)] if keep_version else None
        )
        self._call(
            self.client.delete, self.collection, points_selector=qm.FilterSelector(filter=flt), wait=True
        )

    # -- reads ----------------------------------------------------------------------------------------
    def count(self, source: str | None = None, version: str | None = None) -> int:
        """Exact number of points, of one source (and version) when given."""
        if not self.exists():
            return 0
        from qdrant_client.http import models as qm

        must: list[Any] = []
        if source is not None:
            must.append(_match("metadata.source", source))
        if version is not None:
            must.append(_match("metadata.version", version))
        result = self._call(
            self.client.count,
            self.collection,
            count_filter=qm.Filter(must=must) if must else None,
            exact=True,
        )
        return int(result.count)

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
        if (flt is not None and flt.matches_nothing) or not self.exists():
            return []
        if lexical is None or not lexical.sparse.indices or not self._has_sparse():
            response = self._call(
                self.client.query_points,
                self.collection,
                query=list(vector),
                using=VECTOR,
                limit=limit,
                query_filter=to_qdrant_filter(flt),
                with_payload=True,
            )
            return [to_hit(p.id, p.score, p.payload) for p in response.points]
        from qdrant_client.http import models as qm

        each = fusion_depth(limit)
        sparse = qm.SparseVector(indices=lexical.sparse.indices, values=lexical.sparse.values)
        response = self._call(
            self.client.query_points,
            self.collection,
            prefetch=[
                qm.Prefetch(query=list(vector), using=VECTOR, limit=each, filter=to_qdrant_filter(flt)),
                qm.Prefetch(query=sparse, using=SPARSE, limit=each, filter=to_qdrant_filter(flt)),
            ],
            query=qm.RrfQuery(rrf=qm.Rrf(k=RRF_K)),
            limit=limit,
            with_payload=True,
        )
        return [to_hit(p.id, p.score, p.payload) for p in response.points]

    def versions(self) -> Counter[tuple[str, str]]:
        """Points per (source, version) present in the index, for reconcile (scrolls everything)."""
        counts: Counter[tuple[str, str]] = Counter()
        if not self.exists():
            return counts
        offset = None
        while True:
            records, offset = self._call(
                self.client.scroll,
                self.collection,
                limit=1000,
                offset=offset,
                with_payload=["metadata.source", "metadata.version"],
                with_vectors=False,
            )
            tally_versions(records, counts)
            if offset is None:
                return counts

    def ping(self) -> None:
        """One cheap call (does the collection exist?); IndexUnavailable when Qdrant does not answer."""
        ping("Qdrant", lambda: self.client.collection_exists(self.collection))

    def close(self) -> None:
        """Close the client (for an embedded folder: for every index of this process sharing it)."""
        embedded.release(self.client)
        self.client.close()
        self._ready.forget()

    # -- plumbing -------------------------------------------------------------------------------------
    def _has_sparse(self) -> bool:
        """Whether the collection has the sparse vector (asked once; False while it does not exist)."""
        if self._sparse is None:
            if not self.exists():
                return False
            info = self._call(self.client.get_collection, self.collection)
            self._sparse = SPARSE in (info.config.params.sparse_vectors or {})
            if not self._sparse:
                log.warning(NO_SPARSE.format(collection=self.collection) + "; searching it dense")
        return self._sparse

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Qdrant; connection errors, timeouts, 429 and 5xx are retried with backoff (or after
        the server's Retry-After), then transient."""
        tries = self.retries + 1
        try:
            return retrying(
                lambda: fn(*args, **kwargs),
                attempts=tries,
                retry_on=_transient,
                backoff=STORES,
                what="qdrant call",
            )
        except Exception as exc:
            if not _transient(exc):
                raise
            raise IndexUnavailable(f"Qdrant did not answer after {tries} tries: {exc}") from exc


def _transient(exc: BaseException) -> bool:
    """Whether a qdrant-client error is worth another try: no answer, a 429 (with its Retry-After,
    ``ResourceExhaustedResponse``, or without) or a 5xx."""
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in (429, 500, 502, 503, 504)
    return isinstance(
        exc, (ResourceExhaustedResponse, ResponseHandlingException, ConnectionError, TimeoutError)
    )


def _vectors(point: Point) -> dict[str, Any]:
    """The named vectors of a point: the dense one, and the sparse one when it has terms."""
    from qdrant_client.http import models as qm

    vectors: dict[str, Any] = {VECTOR: list(point.vector)}
    if point.sparse is not None and point.sparse.indices:
        vectors[SPARSE] = qm.SparseVector(indices=point.sparse.indices, values=point.sparse.values)
    return vectors


def _is_local(client: Any) -> bool:
    """Whether a QdrantClient runs qdrant-client's local mode (in memory or a folder)."""
    inner = getattr(client, "_client", None)
    return type(inner).__name__ == "QdrantLocal"


def _tune_embedded(client: QdrantClient) -> None:
    """Embedded Qdrant (``path=``) commits its SQLite file once per point, with an fsync each time.

    WAL with ``synchronous=NORMAL`` keeps it crash-safe for the process (a power cut may lose the
    last writes, which ``ragstream reconcile`` repairs) and makes upserts about 8x faster here.
    Reaches into qdrant-client's local mode; does nothing where its internals differ.
    """
    collections = getattr(getattr(client, "_client", None), "collections", None)
    if not isinstance(collections, dict):
        return
    for collection in collections.values():
        connection = getattr(getattr(collection, "storage", None), "storage", None)
        if connection is not None:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
            except Exception:  # a read-only or closed storage: leave it as it is
                log.debug("could not tune embedded Qdrant storage", exc_info=True)


def _match(key: str, value: Any) -> qm.FieldCondition:
    from qdrant_client.http import models as qm

    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def to_qdrant_filter(flt: SearchFilter | None) -> qm.Filter | None:
    """Our filter model as a Qdrant filter."""
    terms = filter_terms(flt)
    if not terms:
        return None
    from qdrant_client.http import models as qm

    must: list[Any] = [
        _match(*any_of[0]) if len(any_of) == 1 else qm.Filter(should=[_match(k, v) for k, v in any_of])
        for any_of in terms
    ]
    return qm.Filter(must=must)


def _open_local(path: Path) -> QdrantClient:
    from qdrant_client import QdrantClient

    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:  # the folder is locked by another process
        raise ConfigError(
            f"embedded Qdrant at {path} is in use by another process (is `ragstream serve` or "
            "`ragstream dev` running?): stop it, use another RAGSTREAM_HOME, or a Qdrant server "
            f"(RAGSTREAM_INDEX_URL): {exc}"
        ) from None


def from_settings(settings: Settings) -> QdrantIndex:
    """Qdrant Cloud / a server by ``RAGSTREAM_INDEX_URL`` (as the other server stores); else
    qdrant-client's local mode in ``index_path`` (``:memory:`` for a throw-away index), one client per
    folder and process."""
    from qdrant_client import QdrantClient

    url = settings.index_url
    if url:
        secret = settings.index_api_key
        key = secret.get_secret_value() if secret else None
        # check_compatibility would ask the server its version while the client is made: a round trip
        # in every Lambda cold start (and open_index promises no network call)
        client = QdrantClient(
            url=url, api_key=key, timeout=settings.qdrant_timeout, check_compatibility=False
        )
        return QdrantIndex(client, settings.collection, batch_size=settings.upsert_batch_size)
    location = settings.index_location
    if location == ":memory:":
        return QdrantIndex(
            QdrantClient(":memory:"), settings.collection, batch_size=settings.upsert_batch_size
        )
    client = embedded.acquire("qdrant", Path(location), _open_local)
    return QdrantIndex(
        client, settings.collection, batch_size=settings.upsert_batch_size, embedded_client=True
    )

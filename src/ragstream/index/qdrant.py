"""Qdrant behind one small class, in the payload layout of LangChain's ``QdrantVectorStore``.

Points carry ``page_content`` and ``metadata`` (source, version, page, chunk_index, title, ...), and a
named dense vector ``dense``, so a LangChain user can open our collection with
``QdrantVectorStore(client, collection, embedding, vector_name="dense")`` and query it as it is.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field

from ..errors import ConfigError, DimensionMismatch, IndexUnavailable

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

    from ..config import Settings

__all__ = ["Point", "QdrantIndex", "SearchFilter", "open_index", "point_id"]

log = logging.getLogger(__name__)

#: Namespace of point ids: uuid5(NAMESPACE, f"{source}|{version}|{chunk_index}").
NAMESPACE = uuid.UUID("6f1c1a52-5d2e-4f8a-9a57-3c0b7e0e8d11")
VECTOR = "dense"
#: Payload fields with a keyword index: the ones every replace, delete and filter uses.
KEYWORD_FIELDS = ("metadata.source", "metadata.version", "metadata.folders", "metadata.content_type")

T = TypeVar("T")


def point_id(source: str, version: str, chunk_index: int) -> str:
    """The deterministic id of one chunk of one version of one source."""
    return str(uuid.uuid5(NAMESPACE, f"{source}|{version}|{chunk_index}"))


class Point(BaseModel):
    """One chunk ready for the index."""

    id: str
    vector: list[float]
    text: str
    metadata: dict[str, Any]

    @property
    def payload(self) -> dict[str, Any]:
        """The payload in LangChain's Qdrant layout."""
        return {"page_content": self.text, "metadata": self.metadata}


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
        description="The source must be under at least one of these prefixes (a prefix ending in '/' "
        "is a folder, otherwise an exact source or the folder of that name, the same rule as "
        "source_prefix); None = unrestricted; [] = nothing matches. Set by the server from the "
        "caller's scope, never taken from a request.",
    )


def folders_of(source: str) -> list[str]:
    """Every folder prefix of a source URI, for prefix filters: s3://b/a/c.pdf -> [s3://b/, s3://b/a/]."""
    scheme, sep, rest = source.partition("://")
    if not sep:
        return []
    parts = rest.split("/")[:-1]
    return [f"{scheme}://{'/'.join(parts[: i + 1])}/" for i in range(len(parts))]


class QdrantIndex:
    """A collection of chunks of many sources; every write waits for Qdrant to apply it."""

    def __init__(self, client: QdrantClient, collection: str, *, batch_size: int = 256, retries: int = 4):
        self.client = client
        self.collection = collection
        self.batch_size = batch_size
        self.retries = retries
        self._ready_dim: int | None = None

    # -- collection ----------------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        """Create the collection on first use; refuse a collection of another dimension."""
        if self._ready_dim == dim:
            return
        from qdrant_client.http import models as qm

        if self._call(self.client.collection_exists, self.collection):
            info = self._call(self.client.get_collection, self.collection)
            vectors = info.config.params.vectors
            params = vectors.get(VECTOR) if isinstance(vectors, dict) else None
            check_dimension(self.collection, params.size if params else None, dim)
        else:
            self._call(
                self.client.create_collection,
                self.collection,
                vectors_config={VECTOR: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
            )
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
        self._ready_dim = dim

    def exists(self) -> bool:
        """Whether the collection exists (known without a call once this instance made or checked it)."""
        return self._ready_dim is not None or bool(self._call(self.client.collection_exists, self.collection))

    # -- writes ---------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> int:
        """Write points in batches (below Qdrant's request size limit); returns how many."""
        from qdrant_client.http import models as qm

        for start in range(0, len(points), self.batch_size):
            batch = [
                qm.PointStruct(
                    id=p.id,
                    vector={VECTOR: p.vector},
                    payload=p.payload,
                )
                for p in points[start : start + self.batch_size]
            ]
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
        self, vector: list[float], *, limit: int, flt: SearchFilter | None = None
    ) -> list[qm.ScoredPoint]:
        """The ``limit`` nearest points to ``vector`` that pass the filter."""
        if not self.exists():
            return []
        response = self._call(
            self.client.query_points,
            self.collection,
            query=vector,
            using=VECTOR,
            limit=limit,
            query_filter=to_qdrant_filter(flt),
            with_payload=True,
        )
        return list(response.points)

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

    def close(self) -> None:
        """Close the client (for an embedded folder: for every index of this process sharing it)."""
        _release_embedded(self.client)
        self.client.close()

    # -- plumbing -------------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Qdrant; connection errors, timeouts and 5xx are retried with backoff, then transient."""
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except UnexpectedResponse as exc:
                transient = exc.status_code in (429, 500, 502, 503, 504)
                if not transient:
                    raise
                error: Exception = exc
            except (ResponseHandlingException, ConnectionError, TimeoutError) as exc:
                error = exc
            if attempt == self.retries:
                raise IndexUnavailable(f"Qdrant did not answer after {attempt + 1} tries: {error}") from error
            log.warning("qdrant call failed (%s), retrying in %.1fs", type(error).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0) * (0.5 + _jitter())
        raise AssertionError("unreachable")


def check_dimension(collection: str, size: int | None, dim: int) -> None:
    """Refuse a collection whose dense vector is missing or of another size than the embedder's."""
    if size is None:
        raise DimensionMismatch(
            f"collection {collection!r} has no vector named {VECTOR!r}: it was not made by "
            "ragstream; set RAGSTREAM_COLLECTION to another name"
        )
    if size != dim:
        raise DimensionMismatch(
            f"collection {collection!r} has dimension {size}, the embedder gives {dim}: "
            "set RAGSTREAM_COLLECTION to a new name, or delete the collection and re-ingest"
        )


def tally_versions(records: Any, counts: Counter[tuple[str, str]]) -> None:
    """Count scrolled points per (source, version) of their payload."""
    for r in records:
        meta = (r.payload or {}).get("metadata", {})
        counts[(meta.get("source", ""), meta.get("version", ""))] += 1


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


def _jitter() -> float:
    import random

    return random.random()


def _match(key: str, value: Any) -> qm.FieldCondition:
    from qdrant_client.http import models as qm

    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def filter_terms(flt: SearchFilter | None) -> list[list[tuple[str, str]]]:
    """The filter as an AND of ORs of (payload key, value) equalities, for either Qdrant flavour."""
    if flt is None:
        return []
    terms: list[list[tuple[str, str]]] = []
    if flt.source_prefix:
        terms.append(_prefix_terms(flt.source_prefix))
    if flt.allowed_prefixes is not None:  # one OR over every allowed prefix; [] matches nothing
        terms.append([term for prefix in flt.allowed_prefixes for term in _prefix_terms(prefix)])
    if flt.content_type:
        terms.append([("metadata.content_type", flt.content_type)])
    for key, value in flt.metadata.items():
        terms.append([(f"metadata.{key}", str(value).lower() if isinstance(value, bool) else str(value))])
    return terms


def _prefix_terms(prefix: str) -> list[tuple[str, str]]:
    """A folder (``.../``), or one exact source or the folder of that name."""
    if prefix.endswith("/"):
        return [("metadata.folders", prefix)]
    return [("metadata.source", prefix), ("metadata.folders", prefix + "/")]


def to_qdrant_filter(flt: SearchFilter | None) -> qm.Filter | None:
    """Our filter model as a Qdrant filter (an empty OR, e.g. no allowed prefix, matches nothing)."""
    terms = filter_terms(flt)
    if not terms:
        return None
    from qdrant_client.http import models as qm

    if not all(terms):
        return qm.Filter(must=[qm.HasIdCondition(has_id=[])])

    must: list[Any] = [
        _match(*any_of[0]) if len(any_of) == 1 else qm.Filter(should=[_match(k, v) for k, v in any_of])
        for any_of in terms
    ]
    return qm.Filter(must=must)


#: Embedded Qdrant allows one client per folder: every index of one process on a folder shares it.
_EMBEDDED: dict[Path, Any] = {}
_EMBEDDED_LOCK = threading.Lock()


def _embedded_client(path: Path, *, edge: bool = False) -> Any:
    """The process's one client of an embedded folder: a ``QdrantClient(path=)`` or an ``EdgeStore``."""
    key = path.resolve()
    with _EMBEDDED_LOCK:
        client = _EMBEDDED.get(key)
        if client is None:
            key.mkdir(parents=True, exist_ok=True)
            if edge:
                try:
                    import qdrant_edge  # noqa: F401  (fail here, with advice, not at the first write)

                    from .edge import EdgeStore
                except ImportError:
                    raise ConfigError(
                        "the embedded Qdrant Edge index needs qdrant-edge-py: pip install "
                        "'ragstream[local]', or set RAGSTREAM_LOCAL_INDEX=qdrant-local"
                    ) from None
                client = _EMBEDDED[key] = EdgeStore(key)
                return client
            from qdrant_client import QdrantClient

            try:
                client = QdrantClient(path=str(key))
            except RuntimeError as exc:  # the folder is locked by another process
                raise ConfigError(
                    f"embedded Qdrant at {key} is in use by another process (is `ragstream serve` or "
                    "`ragstream dev` running?): stop it, use another RAGSTREAM_HOME, or a Qdrant server "
                    f"(RAGSTREAM_QDRANT_URL): {exc}"
                ) from None
            _EMBEDDED[key] = client
        return client


def _release_embedded(client: Any) -> None:
    with _EMBEDDED_LOCK:
        for key, held in list(_EMBEDDED.items()):
            if held is client:
                del _EMBEDDED[key]


def open_index(settings: Settings, *, client: QdrantClient | None = None) -> QdrantIndex:
    """The index the settings point at: Qdrant Cloud / a server by URL, else embedded under ``home``
    (Qdrant Edge by default, or qdrant-client's local mode: ``RAGSTREAM_LOCAL_INDEX``).

    Embedded, every index that one process opens on the same folder shares one client (the folder
    is locked), e.g. the ingest and query handlers of ``ragstream dev``.
    """
    if client is None:
        if settings.qdrant_url:
            from qdrant_client import QdrantClient

            key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
            client = QdrantClient(url=settings.qdrant_url, api_key=key, timeout=settings.qdrant_timeout)
        elif settings.local_index == "edge":
            from .edge import EdgeIndex

            return EdgeIndex(  # type: ignore[return-value]  # the same public methods as QdrantIndex
                _embedded_client(settings.edge_path, edge=True),  # type: ignore[arg-type]
                settings.collection,
                batch_size=max(settings.upsert_batch_size, 1024),
            )
        else:
            client = _embedded_client(settings.qdrant_path)
    return QdrantIndex(client, settings.collection, batch_size=settings.upsert_batch_size)

"""Weaviate through weaviate-client v4 (REST for the schema, gRPC for data): a self-hosted server or
Weaviate Cloud, by ``RAGSTREAM_INDEX_URL`` (+ ``RAGSTREAM_WEAVIATE_GRPC_URL``, ``RAGSTREAM_INDEX_API_KEY``).

The collection (Weaviate's name: :func:`collection_name` of ``RAGSTREAM_COLLECTION``) holds our own
vectors in one named vector, ``default`` (no vectorizer module, HNSW, cosine), objects keyed by our
uuid5 point ids, and flat properties:

- ``text``: the chunk's text, word-tokenized and searchable (BM25, the lexical side of hybrid search);
- ``source``, ``version``, ``content_type``: text, ``field``-tokenized (whole value), filterable;
- ``folders``: text[], every folder of the source (a folder filter is one ``contains_any``);
- ``terms``: text[], ``key=value`` for every metadata value (user metadata equality is one
  ``contains_all``, with :meth:`SearchFilter.matches`' semantics: the value's text);
- ``metadata``: the whole metadata as JSON, neither filterable nor searchable: hits give it back as
  written.

Weaviate keeps no dimension in its schema (the first vector fixes it), so the collection's description
records it (``ragstream chunks, dim=N``); :meth:`WeaviateIndex.ensure_collection` refuses a collection
of another dimension, or one without that mark (not made by ragstream).

Consistency: a write is acknowledged once the object is stored and indexed (synchronous indexing, the
default; with ``ASYNC_INDEXING`` the vector index lags), and reads and writes go at ``QUORUM``, so a
replicated collection reads its writes too: ``read_your_writes``. Counts come from aggregate (a filtered
count over the inverted index; unfiltered, the objects bucket's count, which Weaviate keeps exact) and
the tally from a cursor over every object: ``exact_counts``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ..errors import ConfigError, IndexUnavailable
from ..retry import STORES, retrying
from .contract import Capabilities, Hit, LexicalQuery, Point, SearchFilter
from .kit import (
    Ready,
    all_of,
    any_of,
    batches,
    check_dimension,
    failed,
    last_of_each,
    missing_collection,
    ping,
    translate_http_status,
    unreachable,
    vector_refused,
)
from .layout import filter_fields, version_key

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["WeaviateIndex", "collection_name", "from_settings", "grpc_address", "to_weaviate_filter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The named vector holding our embeddings.
VECTOR = "default"
#: The description that marks a collection as ragstream's, with its dimension.
MARK = "ragstream chunks, dim="
#: Properties a search returns (the rest serve filters).
RETURNED = ["text", "metadata"]
#: Objects per page of the tally's cursor.
PAGE = 1000
#: Deletes repeated at most this many times (each removes up to the server's QUERY_MAXIMUM_RESULTS).
MAX_DELETE_ROUNDS = 10_000


def collection_name(name: str) -> str:
    """Weaviate's name for ``RAGSTREAM_COLLECTION``: a class name (``[A-Z][_0-9A-Za-z]*``).

    Every other character becomes ``_``, the first letter is capitalised, and a name that does not
    start with a letter gets a ``C`` in front: ``ragstream`` -> ``Ragstream``, ``my-docs.v2`` ->
    ``My_docs_v2``, ``2024`` -> ``C2024``. Deterministic; names differing only there collide.
    """
    if not name:
        raise ConfigError("RAGSTREAM_COLLECTION is empty")
    safe = re.sub(r"[^_0-9A-Za-z]", "_", name)
    if not safe[0].isalpha():
        safe = "C" + safe
    return safe[0].upper() + safe[1:]


def grpc_address(url: str, grpc_url: str | None) -> tuple[str, int, bool]:
    """The gRPC (host, port, secure) for the REST ``url``: ``grpc_url`` (``host:port``) when given,
    else Weaviate Cloud's ``grpc-<host>:443`` for https, the same host on 50051 for http."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    if grpc_url:
        target = grpc_url.split("://", 1)[-1].rstrip("/")
        host, sep, port = target.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"RAGSTREAM_WEAVIATE_GRPC_URL must be host:port, got {grpc_url!r}")
        return host, int(port), secure or int(port) == 443
    host = parts.hostname or ""
    if secure:
        return (host if host.startswith("grpc-") else f"grpc-{host}"), 443, True
    return host, 50051, False


def _terms(metadata: dict[str, Any]) -> list[str]:
    """``key=value`` of every metadata value, as :meth:`SearchFilter.matches` compares it (its text)."""
    return [
        f"{key}={value}"
        for key, value in metadata.items()
        if value is not None and key != "folders" and isinstance(value, str | int | float | bool)
    ]


def _properties(point: Point) -> dict[str, Any]:
    meta = point.metadata
    return {
        "text": point.text,
        **filter_fields(meta),
        "terms": _terms(meta),
        "metadata": json.dumps(meta, default=str, ensure_ascii=False),
    }


def to_weaviate_filter(flt: SearchFilter | None) -> Any:
    """Our filter as a weaviate-client filter (None for none; call only when it can match)."""
    if flt is None:
        return None
    from weaviate.classes.query import Filter

    terms: list[Any] = []
    for group in flt.source_groups():
        sources = [value for kind, value in group if kind == "source"]
        folders = [value for kind, value in group if kind == "folder"]
        ors = []
        if sources:
            ors.append(Filter.by_property("source").contains_any(sources))
        if folders:
            ors.append(Filter.by_property("folders").contains_any(folders))
        terms.append(any_of(ors, Filter.any_of))
    if flt.content_type:
        terms.append(Filter.by_property("content_type").equal(flt.content_type))
    wanted = [f"{key}={value}" for key, value in flt.metadata_terms().items()]
    if wanted:
        terms.append(Filter.by_property("terms").contains_all(wanted))
    return all_of(terms, Filter.all_of)


def _source_filter(source: str | None, version: str | None, *, not_version: str | None = None) -> Any:
    from weaviate.classes.query import Filter

    terms = []
    if source is not None:
        terms.append(Filter.by_property("source").equal(source))
    if version is not None:
        terms.append(Filter.by_property("version").equal(version))
    if not_version is not None:
        terms.append(Filter.by_property("version").not_equal(not_version))
    return all_of(terms, Filter.all_of)


class WeaviateIndex:
    """A collection of chunks in Weaviate (see the module's docstring for the layout)."""

    def __init__(self, client: Any, collection: str, *, batch_size: int = 256, retries: int = 4):
        self.client = client
        #: Our collection name (RAGSTREAM_COLLECTION); Weaviate's is :attr:`name`.
        self.collection = collection
        self.retries = retries
        self.name = collection_name(collection)
        self.batch_size = batch_size
        self.capabilities = Capabilities(embedded=False, hybrid=True)
        self._ready = Ready()
        self._connecting = threading.Lock()

    # -- collection ----------------------------------------------------------------------------------
    def _handle(self) -> Any:
        """The collection handle (connects the client on first use), reads and writes at QUORUM."""
        from weaviate.classes.config import ConsistencyLevel

        if not self.client.is_connected():
            with self._connecting:  # one connect, whichever thread comes first
                if not self.client.is_connected():
                    self._call(self.client.connect)
        return self.client.collections.get(self.name).with_consistency_level(ConsistencyLevel.QUORUM)

    def ensure_collection(self, dim: int) -> None:
        """Create the collection on first use; refuse one of another dimension or not made by us."""
        if self._ready.known(dim):
            return
        handle = self._handle()
        if self._call(self.client.collections.exists, self.name):
            config = self._call(handle.config.get, simple=True)
            description = config.description or ""
            size = int(description[len(MARK) :]) if description.startswith(MARK) else None
            check_dimension(self.collection, size, dim)
        else:
            self._create(dim)
        self._ready.remember(dim)

    def _create(self, dim: int) -> None:
        from weaviate.classes.config import (
            Configure,
            DataType,
            Property,
            Tokenization,
            VectorDistances,
        )

        def keyword(name: str, data_type: Any = DataType.TEXT) -> Any:
            return Property(
                name=name,
                data_type=data_type,
                tokenization=Tokenization.FIELD,
                index_filterable=True,
                index_searchable=False,
            )

        self._call(
            self.client.collections.create,
            self.name,
            description=f"{MARK}{dim}",
            vector_config=Configure.Vectors.self_provided(
                name=VECTOR,
                vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE),
            ),
            properties=[
                Property(
                    name="text",
                    data_type=DataType.TEXT,
                    tokenization=Tokenization.WORD,
                    index_filterable=False,
                    index_searchable=True,
                ),
                keyword("source"),
                keyword("version"),
                keyword("content_type"),
                keyword("folders", DataType.TEXT_ARRAY),
                keyword("terms", DataType.TEXT_ARRAY),
                Property(
                    name="metadata",
                    data_type=DataType.TEXT,
                    index_filterable=False,
                    index_searchable=False,
                ),
            ],
        )

    def exists(self) -> bool:
        """Whether the collection exists (asked once, then known)."""
        return self._ready.exists(self._ask_exists)

    def _ask_exists(self) -> bool:
        self._handle()
        return bool(self._call(self.client.collections.exists, self.name))

    # -- writes ---------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> int:
        """Write points in batches (a batch object replaces the object of the same uuid)."""
        from weaviate.classes.data import DataObject

        if not self.exists():
            raise missing_collection(self.collection)
        handle = self._handle()
        for batch in batches(last_of_each(points), self.batch_size):
            objects = [
                DataObject(properties=_properties(p), uuid=p.id, vector={VECTOR: list(p.vector)})
                for p in batch
            ]
            result = self._call(handle.data.insert_many, objects)
            if result.errors:
                self._raise_batch_errors([e.message for e in result.errors.values()])
        return len(points)

    def _raise_batch_errors(self, messages: list[str]) -> None:
        first = messages[0]
        if "length" in first.lower() and "vector" in first.lower():
            raise vector_refused(first, self.collection)
        raise IndexUnavailable(f"Weaviate refused {len(messages)} objects of a batch: {first}")

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        """Delete the points of ``source``: all, all but ``keep_version``, or only ``only_version``.

        One delete removes at most the server's QUERY_MAXIMUM_RESULTS objects of all it matches:
        repeated while it deletes fewer than it matched."""
        if not self.exists():
            return
        handle = self._handle()
        where = _source_filter(source, only_version, not_version=keep_version)
        for _ in range(MAX_DELETE_ROUNDS):
            result = self._call(handle.data.delete_many, where=where)
            if result.failed:
                raise IndexUnavailable(
                    f"Weaviate failed to delete {result.failed} of {result.matches} objects of {source!r}"
                )
            if result.successful >= result.matches:
                return
            if result.successful == 0:
                raise IndexUnavailable(f"Weaviate deleted none of {result.matches} objects of {source!r}")
        raise IndexUnavailable(
            f"Weaviate still holds objects of {source!r} after {MAX_DELETE_ROUNDS} deletes"
        )

    # -- reads ----------------------------------------------------------------------------------------
    def count(self, source: str | None = None, version: str | None = None) -> int:
        """Exact number of objects (aggregate), of one source (and version) when given."""
        if not self.exists():
            return 0
        result = self._call(
            self._handle().aggregate.over_all, total_count=True, filters=_source_filter(source, version)
        )
        return int(result.total_count or 0)

    def versions(self) -> Counter[tuple[str, str]]:
        """Objects per (source, version), read with a cursor over every object."""
        counts: Counter[tuple[str, str]] = Counter()
        if not self.exists():
            return counts
        iterator = self._handle().iterator(return_properties=["source", "version"], cache_size=PAGE)
        objects: list[Any] = self._call(list, iterator)
        counts.update(version_key(obj.properties) for obj in objects)
        return counts

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        """The ``limit`` nearest objects that pass the filter (Weaviate filters before it ranks).

        With ``lexical``: Weaviate's hybrid search, BM25 over ``text`` fused with the vector search by
        reciprocal rank fusion (``rankedFusion``, equal weights); the score is the fused one."""
        from weaviate.classes.query import HybridFusion, MetadataQuery

        if (flt is not None and flt.matches_nothing) or not self.exists():
            return []
        handle = self._handle()
        filters = to_weaviate_filter(flt)
        if lexical is not None and lexical.text.strip():
            result = self._call(
                handle.query.hybrid,
                query=lexical.text,
                vector=list(vector),
                alpha=0.5,
                fusion_type=HybridFusion.RANKED,
                query_properties=["text"],
                target_vector=VECTOR,
                limit=limit,
                filters=filters,
                return_properties=RETURNED,
                return_metadata=MetadataQuery(score=True),
            )
            scores = [float(o.metadata.score or 0.0) for o in result.objects]
        else:
            result = self._call(
                handle.query.near_vector,
                near_vector=list(vector),
                target_vector=VECTOR,
                limit=limit,
                filters=filters,
                return_properties=RETURNED,
                return_metadata=MetadataQuery(distance=True),
            )
            scores = [1.0 - float(o.metadata.distance or 0.0) for o in result.objects]
        return [
            Hit(
                id=str(o.uuid),
                score=score,
                text=str(o.properties.get("text") or ""),
                metadata=json.loads(o.properties.get("metadata") or "{}"),
            )
            for o, score in zip(result.objects, scores, strict=True)
        ]

    def ping(self) -> None:
        """Weaviate's readiness; IndexUnavailable when it does not answer or is not ready."""
        if not ping("Weaviate", self._is_ready):
            raise IndexUnavailable("Weaviate is not ready")

    def _is_ready(self) -> bool:
        self._handle()
        return bool(self.client.is_ready())

    def close(self) -> None:
        """Close the client's HTTP and gRPC connections."""
        self.client.close()
        self._ready.forget()

    # -- plumbing -------------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Weaviate, tried again while it is unreachable or answers 429/5xx (IndexUnavailable),
        except where the client's own gRPC retries are already spent (``WeaviateRetryError``)."""
        return retrying(
            lambda: self._call_once(fn, *args, **kwargs),
            attempts=self.retries + 1,
            retry_on=_worth_retrying,
            backoff=STORES,
            what="weaviate call",
        )

    def _call_once(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Weaviate: an unreachable or failing server is transient (IndexUnavailable), refused
        credentials or a refused request are configuration (ConfigError), a vector of another length
        is a DimensionMismatch."""
        from weaviate.exceptions import (
            UnexpectedStatusCodeError,
            WeaviateBaseError,
            WeaviateClosedClientError,
            WeaviateConnectionError,
            WeaviateGRPCUnavailableError,
            WeaviateRetryError,
            WeaviateStartUpError,
            WeaviateTimeoutError,
        )

        try:
            return fn(*args, **kwargs)
        except (
            WeaviateConnectionError,
            WeaviateStartUpError,
            WeaviateGRPCUnavailableError,
            WeaviateTimeoutError,
            WeaviateClosedClientError,
            WeaviateRetryError,
        ) as exc:
            raise unreachable("Weaviate", exc) from exc
        except UnexpectedStatusCodeError as exc:
            raise translate_http_status(exc.status_code, "Weaviate", exc) from exc
        except WeaviateBaseError as exc:
            message = str(exc)
            lower = message.lower()
            if "length" in lower and "vector" in lower:
                raise vector_refused(message, self.collection) from exc
            if "unauthenticated" in lower or "permission_denied" in lower or "api key" in lower:
                raise ConfigError(f"Weaviate refused the credentials: {message}") from exc
            raise failed("Weaviate", message) from exc


def _worth_retrying(exc: BaseException) -> bool:
    """A transient failure the weaviate client has not retried itself."""
    from weaviate.exceptions import WeaviateRetryError

    return isinstance(exc, IndexUnavailable) and not isinstance(exc.__cause__, WeaviateRetryError)


def from_settings(settings: Settings) -> WeaviateIndex:
    """A Weaviate server or Weaviate Cloud by ``RAGSTREAM_INDEX_URL`` (connects on first use)."""
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout
    from weaviate.connect import ConnectionParams

    if not settings.index_url:
        raise ConfigError(
            "RAGSTREAM_INDEX=weaviate needs RAGSTREAM_INDEX_URL (http://host:8080, or "
            "https://<cluster>.weaviate.cloud): Weaviate has no embedded mode here"
        )
    parts = urlsplit(settings.index_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"RAGSTREAM_INDEX_URL must be an http(s) URL for Weaviate, got {settings.index_url!r}"
        )
    secure = parts.scheme == "https"
    grpc_host, grpc_port, grpc_secure = grpc_address(settings.index_url, settings.weaviate_grpc_url)
    key = settings.index_api_key.get_secret_value() if settings.index_api_key else ""
    client = weaviate.WeaviateClient(
        connection_params=ConnectionParams.from_params(
            http_host=parts.hostname,
            http_port=parts.port or (443 if secure else 80),
            http_secure=secure,
            grpc_host=grpc_host,
            grpc_port=grpc_port,
            grpc_secure=grpc_secure,
        ),
        auth_client_secret=Auth.api_key(key) if key else None,
        additional_config=AdditionalConfig(timeout=Timeout(init=10, query=60, insert=120)),
        # no pypi.org version check and no OIDC discovery at connect (an API key needs none)
        skip_init_checks=True,
    )
    return WeaviateIndex(client, settings.collection)

"""Chroma: embedded (``PersistentClient`` on a folder), a ``chroma run`` server, or Chroma Cloud
(``HttpClient`` with a URL; a token, tenant and database for the cloud).

- Chroma never embeds anything here: collections are made with ``embedding_function=None`` (its
  default function would download a model at run time), and its telemetry is off.
- Chroma's metadata is flat (str, int, float, bool; no lists, no nulls), so points keep the layout's
  :func:`~ragstream.index.layout.flatten`: nulls dropped, the folders of a source as one key per
  depth (``folder_0 = "s3://bucket/"``, ``folder_1 = "s3://bucket/reports/"``), so that a folder
  filter is one equality on the key of that folder's depth, which Chroma's metadata index answers.
- Cosine space; a hit's score is ``1 - distance``. The dimension is kept in the collection's
  metadata (``ragstream_dim``), since Chroma learns it only from the first write.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from ..errors import ConfigError, IndexUnavailable
from ..retry import STORES, retrying
from .contract import Capabilities, Hit, LexicalQuery, Point, SearchFilter
from .kit import (
    Ready,
    all_of,
    any_of,
    batches,
    check_dimension,
    last_of_each,
    missing_collection,
    ping,
    transient_status,
    translate_http_status,
    unreachable,
    vector_refused,
)
from .layout import flatten, folder_key, unflatten, version_key

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["ChromaIndex", "from_settings"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DIM_KEY = "ragstream_dim"
PAGE = 1000


class ChromaIndex:
    """A collection of chunks in Chroma; writes are visible to reads on return."""

    def __init__(
        self, client: Any, collection: str, *, embedded: bool, batch_size: int = 1000, retries: int = 4
    ):
        """``client`` is a Chroma client, or a function that makes one on first use (``HttpClient``
        asks the server for its tenant and database when made: no call before the first request)."""
        self._client = client
        self.collection = collection
        self.retries = 0 if embedded else retries  # an embedded store has no network to wait for
        self.batch_size = batch_size
        self.capabilities = Capabilities(embedded=embedded)
        self._col: Any = None
        self._ready = Ready()

    @property
    def client(self) -> Any:
        """The Chroma client (made now if it was given as a function)."""
        if callable(self._client) and not hasattr(self._client, "heartbeat"):
            self._client = self._call(self._client)
        return self._client

    # -- collection ----------------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        """Create the collection on first use; refuse a collection of another dimension."""
        if self._ready.known(dim):
            return
        col = self._call(
            self.client.get_or_create_collection,
            self.collection,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={DIM_KEY: dim},
        )
        size = (col.metadata or {}).get(DIM_KEY)
        check_dimension(self.collection, int(size) if size is not None else None, dim)
        self._col = col
        self._ready.remember(dim)

    def exists(self) -> bool:
        """Whether the collection exists (asked once, then known)."""
        return self._collection() is not None

    def _collection(self) -> Any:
        if self._col is None:
            from chromadb.errors import NotFoundError

            try:
                self._col = self._call(self.client.get_collection, self.collection, embedding_function=None)
            except NotFoundError:
                return None
        return self._col

    # -- writes ---------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> int:
        """Write points in batches; a point with an existing id is replaced."""
        col = self._collection()
        if col is None:
            raise missing_collection(self.collection)
        for batch in batches(last_of_each(points), self.batch_size):  # no duplicate ids in one call
            self._call(
                col.upsert,
                ids=[p.id for p in batch],
                embeddings=[list(p.vector) for p in batch],
                documents=[p.text for p in batch],
                metadatas=[flatten(p.metadata) for p in batch],
            )
        return len(points)

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        """Delete the points of ``source``: all, all but ``keep_version``, or only ``only_version``."""
        col = self._collection()
        if col is None:
            return
        terms: list[dict[str, Any]] = [{"source": source}]
        if only_version:
            terms.append({"version": only_version})
        if keep_version:
            terms.append({"version": {"$ne": keep_version}})
        self._call(col.delete, where=_all(terms))

    # -- reads ----------------------------------------------------------------------------------------
    def count(self, source: str | None = None, version: str | None = None) -> int:
        """Exact number of points, of one source (and version) when given."""
        col = self._collection()
        if col is None:
            return 0
        if source is None and version is None:
            return int(self._call(col.count))
        terms: list[dict[str, Any]] = []
        if source is not None:
            terms.append({"source": source})
        if version is not None:
            terms.append({"version": version})
        return sum(1 for _ in self._scan(col, _all(terms)))

    def versions(self) -> Counter[tuple[str, str]]:
        """Points per (source, version), read a page at a time."""
        counts: Counter[tuple[str, str]] = Counter()
        col = self._collection()
        if col is None:
            return counts
        counts.update(version_key(meta) for meta in self._scan(col, None, metadatas=True))
        return counts

    def _scan(self, col: Any, where: dict[str, Any] | None, *, metadatas: bool = False) -> Any:
        offset = 0
        while True:
            page = self._call(
                col.get,
                where=where,
                limit=PAGE,
                offset=offset,
                include=["metadatas"] if metadatas else [],
            )
            ids = page["ids"]
            yield from (page["metadatas"] if metadatas else ids)
            if len(ids) < PAGE:
                return
            offset += PAGE

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        """The ``limit`` nearest points that pass the filter (Chroma filters before it ranks)."""
        if flt is not None and flt.matches_nothing:
            return []
        col = self._collection()
        if col is None:
            return []
        result = self._call(
            col.query,
            query_embeddings=[list(vector)],
            n_results=limit,
            where=to_chroma_where(flt),
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(id=str(i), score=1.0 - float(d), text=doc or "", metadata=unflatten(meta or {}))
            for i, d, doc, meta in zip(
                result["ids"][0],
                result["distances"][0],
                result["documents"][0],
                result["metadatas"][0],
                strict=True,
            )
        ]

    def ping(self) -> None:
        """Chroma's heartbeat; IndexUnavailable when it does not answer."""
        ping("Chroma", lambda: self.client.heartbeat())

    def close(self) -> None:
        """Drop the collection handle; Chroma's client holds no lock that needs releasing."""
        self._col = None
        self._ready.forget()

    # -- plumbing -------------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Chroma, tried again while it is unreachable or answers 429/5xx (IndexUnavailable)."""
        return retrying(
            lambda: self._call_once(fn, *args, **kwargs),
            attempts=self.retries + 1,
            retry_on=IndexUnavailable,
            backoff=STORES,
            what="chroma call",
        )

    def _call_once(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Chroma; a dimension error becomes ours, a connection failure transient."""
        from chromadb.errors import ChromaError, InvalidArgumentError, NotFoundError

        try:
            return fn(*args, **kwargs)
        except NotFoundError:
            raise
        except InvalidArgumentError as exc:
            if "dimension" in str(exc):
                raise vector_refused(str(exc), self.collection) from exc
            raise
        except ChromaError as exc:
            if transient_status(exc.code()):  # others (a refused request) stay Chroma's, as raised
                raise translate_http_status(exc.code(), "Chroma", exc) from exc
            raise
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise unreachable("Chroma", exc) from exc
        except Exception as exc:  # httpx's transport errors, without importing httpx here
            if type(exc).__module__.startswith("httpx"):
                raise unreachable("Chroma", exc) from exc
            raise


def _all(terms: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Chroma's $and wants two terms or more: one term stands alone, none is no filter."""
    return all_of(terms, lambda t: {"$and": t})


def _any(terms: list[dict[str, Any]]) -> dict[str, Any]:
    return any_of(terms, lambda t: {"$or": t})


def to_chroma_where(flt: SearchFilter | None) -> dict[str, Any] | None:
    """Our filter as a Chroma ``where`` on the flat layout (call only when it can match)."""
    if flt is None:
        return None
    terms: list[dict[str, Any]] = []
    for group in flt.source_groups():
        terms.append(
            _any(
                [
                    {"source": value} if kind == "source" else {folder_key(value): value}
                    for kind, value in group
                ]
            )
        )
    if flt.content_type:
        terms.append({"content_type": flt.content_type})
    for key, value in flt.metadata_terms().items():
        terms.append({key: value})
    return _all(terms)


def from_settings(settings: Settings) -> ChromaIndex:
    """Chroma Cloud or a server by ``RAGSTREAM_INDEX_URL``, else embedded in ``index_path``."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    options = ChromaSettings(anonymized_telemetry=False)
    if settings.index_url:
        url = urlparse(settings.index_url)
        if not url.hostname:
            raise ConfigError(f"RAGSTREAM_INDEX_URL={settings.index_url!r} is not a URL (https://host:port)")
        headers = {}
        if settings.index_api_key is not None:
            headers["x-chroma-token"] = settings.index_api_key.get_secret_value()
        kwargs: dict[str, Any] = {}
        if settings.chroma_tenant:
            kwargs["tenant"] = settings.chroma_tenant
        if settings.chroma_database:
            kwargs["database"] = settings.chroma_database
        ssl = url.scheme == "https"
        host, port = url.hostname, url.port or (443 if ssl else 8000)

        def connect() -> Any:
            return chromadb.HttpClient(
                host=host, port=port, ssl=ssl, headers=headers, settings=options, **kwargs
            )

        return ChromaIndex(connect, settings.collection, embedded=False)
    client = chromadb.PersistentClient(path=settings.index_location, settings=options)
    return ChromaIndex(client, settings.collection, embedded=True)

"""Milvus through pymilvus' ``MilvusClient``: Milvus Lite embedded (a ``.db`` file), or a Milvus server /
Zilliz Cloud (``RAGSTREAM_INDEX_URL`` and a token).

The collection has a fixed schema: ``id`` (the uuid5, primary key), ``vector`` (cosine),
``text``, ``source``, ``version`` and ``content_type`` as scalar fields, ``folders`` as an array field
(``ARRAY_CONTAINS`` answers folder filters) and the rest of the metadata as one JSON field. It is
created with ``Strong`` consistency, so a write is visible to the next read and counts are exact.

Hybrid: ``sparse`` is the output of Milvus' own BM25 function over ``text`` (its English analyzer,
its IDF), so the engine keeps the lexical index itself and a search with ``lexical`` sends the query's
text: ``hybrid_search`` fuses the dense and the BM25 candidates (each under the filter) with
``RRFRanker``. Its lexical side reads the chunk's own text, not the document context (which the
dense side has): a point's ``sparse`` (ragstream's encoder) is not used, as Milvus' sparse inner
product would apply no IDF to it. A collection made before hybrid retrieval has no ``sparse`` field
and is searched dense.

Milvus Lite is pinned to 2.5.1: the 2.x wheels ship the Milvus engine itself (the ``milvus`` binary and
knowhere, ~175 MB); the 3.x line is a pure-Python re-implementation.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, IndexUnavailable
from ..retry import STORES, retrying
from .contract import RRF_K, Capabilities, Hit, LexicalQuery, Point, SearchFilter, fusion_depth
from .kit import (
    Ready,
    batches,
    check_dimension,
    failed,
    last_of_each,
    missing_collection,
    ping,
    unreachable,
    vector_refused,
)
from .layout import filter_fields, version_key

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["MilvusIndex", "from_settings", "to_milvus_filter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Scalar fields of the schema; the metadata keeps them too (the JSON field holds all of it).
SCALARS = ("source", "version", "content_type")
MAX_FOLDERS = 64
MAX_STRING = 4096
PAGE = 1000


class MilvusIndex:
    """A collection of chunks in Milvus (Strong consistency: writes visible on return)."""

    def __init__(
        self, client: Any, collection: str, *, embedded: bool, batch_size: int = 512, retries: int = 4
    ):
        self.client = client
        self.collection = collection
        self.retries = 0 if embedded else retries  # Milvus Lite has no network to wait for
        self.batch_size = batch_size
        self.capabilities = Capabilities(embedded=embedded, hybrid=True)
        self._ready = Ready()
        self._sparse: bool | None = None  # whether the collection has the BM25 field, once known

    # -- collection ----------------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        """Create the collection on first use; refuse a collection of another dimension."""
        if self._ready.known(dim):
            return
        if self._call(self.client.has_collection, self.collection):
            info = self._call(self.client.describe_collection, self.collection)
            size = next(
                (int(f["params"]["dim"]) for f in info.get("fields", []) if f.get("name") == "vector"), None
            )
            check_dimension(self.collection, size, dim)
            self._sparse = any(f.get("name") == "sparse" for f in info.get("fields", []))
        else:
            self._create(dim)
            self._sparse = True
        self._ready.remember(dim)

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(
            "text",
            DataType.VARCHAR,
            max_length=65535,
            enable_analyzer=True,
            analyzer_params={"type": "english"},
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        for name in SCALARS:
            schema.add_field(name, DataType.VARCHAR, max_length=MAX_STRING)
        schema.add_field(
            "folders",
            DataType.ARRAY,
            element_type=DataType.VARCHAR,
            max_capacity=MAX_FOLDERS,
            max_length=MAX_STRING,
        )
        schema.add_field("metadata", DataType.JSON)
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        for name in ("source", "version"):
            index.add_index(field_name=name, index_type="INVERTED")
        self._call(
            self.client.create_collection,
            self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
        )

    def exists(self) -> bool:
        """Whether the collection exists (asked once, then known)."""
        return self._ready.exists(lambda: self._call(self.client.has_collection, self.collection))

    # -- writes ---------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> int:
        """Write points in batches; a point with an existing id is replaced."""
        if not self.exists():
            raise missing_collection(self.collection)
        for batch in batches(last_of_each(points), self.batch_size):
            self._call(self.client.upsert, self.collection, [_row(p) for p in batch])
        return len(points)

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        """Delete the points of ``source``: all, all but ``keep_version``, or only ``only_version``."""
        if not self.exists():
            return
        terms = [f"source == {_lit(source)}"]
        if only_version:
            terms.append(f"version == {_lit(only_version)}")
        if keep_version:
            terms.append(f"version != {_lit(keep_version)}")
        self._call(self.client.delete, self.collection, filter=" and ".join(terms))

    # -- reads ----------------------------------------------------------------------------------------
    def count(self, source: str | None = None, version: str | None = None) -> int:
        """Exact number of points (Strong consistency), of one source (and version) when given."""
        if not self.exists():
            return 0
        terms = []
        if source is not None:
            terms.append(f"source == {_lit(source)}")
        if version is not None:
            terms.append(f"version == {_lit(version)}")
        rows = self._call(
            self.client.query, self.collection, filter=" and ".join(terms), output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def versions(self) -> Counter[tuple[str, str]]:
        """Points per (source, version), read with a query iterator."""
        counts: Counter[tuple[str, str]] = Counter()
        if not self.exists():
            return counts
        iterator = self._call(
            self.client.query_iterator, self.collection, batch_size=PAGE, output_fields=["source", "version"]
        )
        try:
            while True:
                rows = self._call(iterator.next)
                if not rows:
                    return counts
                counts.update(version_key(row) for row in rows)
        finally:
            iterator.close()

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        """The ``limit`` nearest points that pass the filter (Milvus filters before it ranks); with
        ``lexical``, the dense and the BM25 candidates (each under the filter) fused by reciprocal rank."""
        if (flt is not None and flt.matches_nothing) or not self.exists():
            return []
        expr = to_milvus_filter(flt)
        if lexical is not None and lexical.text.strip() and self._has_sparse():
            from pymilvus import AnnSearchRequest, RRFRanker

            each = fusion_depth(limit)
            result = self._call(
                self.client.hybrid_search,
                self.collection,
                [
                    AnnSearchRequest([list(vector)], "vector", {"metric_type": "COSINE"}, each, expr=expr),
                    AnnSearchRequest([lexical.text], "sparse", {"metric_type": "BM25"}, each, expr=expr),
                ],
                RRFRanker(RRF_K),
                limit=limit,
                output_fields=["text", "metadata"],
            )
        else:
            result = self._call(
                self.client.search,
                self.collection,
                data=[list(vector)],
                anns_field="vector",
                limit=limit,
                filter=expr,
                output_fields=["text", "metadata"],
                search_params={"metric_type": "COSINE"},
            )
        return [
            Hit(
                id=str(r["id"]),
                score=float(r["distance"]),
                text=r["entity"].get("text", ""),
                metadata=dict(r["entity"].get("metadata") or {}),
            )
            for r in result[0]
        ]

    def ping(self) -> None:
        """One cheap call; IndexUnavailable when Milvus does not answer."""
        ping("Milvus", lambda: self.client.has_collection(self.collection))

    def close(self) -> None:
        """Close the client (Milvus Lite stops its engine when its last client closes)."""
        self.client.close()
        self._ready.forget()

    # -- plumbing -------------------------------------------------------------------------------------
    def _has_sparse(self) -> bool:
        """Whether the collection has the BM25 field (collections made before hybrid retrieval do not)."""
        if self._sparse is None:
            info = self._call(self.client.describe_collection, self.collection)
            self._sparse = any(f.get("name") == "sparse" for f in info.get("fields", []))
            if not self._sparse:
                log.warning(
                    "collection %r was made before hybrid retrieval (no BM25 field): searching it dense; "
                    "delete it and re-ingest, or set RAGSTREAM_COLLECTION to a new name, for hybrid search",
                    self.collection,
                )
        return self._sparse

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Milvus, tried again while it is unreachable or a call timed out (IndexUnavailable),
        except where pymilvus has retried the call itself already (its message says so)."""
        return retrying(
            lambda: self._call_once(fn, *args, **kwargs),
            attempts=self.retries + 1,
            retry_on=_worth_retrying,
            backoff=STORES,
            what="milvus call",
        )

    def _call_once(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call Milvus; a dimension error becomes ours, an unreachable server transient."""
        from pymilvus.exceptions import MilvusException, MilvusUnavailableException

        try:
            return fn(*args, **kwargs)
        except MilvusUnavailableException as exc:
            raise unreachable("Milvus", exc) from exc
        except MilvusException as exc:
            message = str(exc)
            if "should divide the dim" in message or "dimension" in message.lower():
                raise vector_refused(message, self.collection) from exc
            if "unavailable" in message.lower() or "deadline" in message.lower():
                raise failed("Milvus", message) from exc
            raise


def _worth_retrying(exc: BaseException) -> bool:
    """A transient failure pymilvus has not retried itself: its retry decorator retries a failed RPC
    (up to 75 times) and then says "Retry run out of" or "Retry timeout"; a deadline it does not retry."""
    if not isinstance(exc, IndexUnavailable):
        return False
    return not any(spent in str(exc.__cause__) for spent in ("Retry run out of", "Retry timeout"))


def _row(p: Point) -> dict[str, Any]:
    fields = filter_fields(p.metadata)
    return {
        "id": p.id,
        "vector": list(p.vector),
        "text": p.text,
        **fields,
        "folders": fields["folders"][:MAX_FOLDERS],
        "metadata": json.loads(json.dumps(p.metadata, default=str)),
    }


def _lit(value: str) -> str:
    """A string literal of Milvus' expression language."""
    return json.dumps(value, ensure_ascii=False)


def to_milvus_filter(flt: SearchFilter | None) -> str:
    """Our filter as a Milvus boolean expression ('' for none; call only when it can match)."""
    if flt is None:
        return ""
    terms: list[str] = []
    for group in flt.source_groups():
        ors = [
            f"source == {_lit(value)}" if kind == "source" else f"ARRAY_CONTAINS(folders, {_lit(value)})"
            for kind, value in group
        ]
        terms.append("(" + " or ".join(ors) + ")")
    if flt.content_type:
        terms.append(f"content_type == {_lit(flt.content_type)}")
    for key, value in flt.metadata_terms().items():
        terms.append(f"metadata[{_lit(key)}] == {_lit(value)}")
    return " and ".join(terms)


def from_settings(settings: Settings) -> MilvusIndex:
    """A Milvus server / Zilliz Cloud by ``RAGSTREAM_INDEX_URL``, else Milvus Lite in ``index_path``."""
    from pymilvus import MilvusClient

    if settings.index_url:
        token = settings.index_api_key.get_secret_value() if settings.index_api_key else ""
        return MilvusIndex(
            MilvusClient(uri=settings.index_url, token=token), settings.collection, embedded=False
        )
    path = Path(settings.index_location)
    if path.suffix != ".db":
        raise ConfigError(f"Milvus Lite needs a file ending in .db: RAGSTREAM_INDEX_PATH={path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return MilvusIndex(MilvusClient(uri=str(path)), settings.collection, embedded=True)

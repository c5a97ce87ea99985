"""A local Pinecone peer for tests: the REST control plane and the data plane subset the ``pinecone``
SDK (10.x, API version 2026-07) calls, with real storage and real filter semantics.

Control plane (``url``, the SDK's ``host=``):

- ``GET /indexes``, ``POST /indexes``, ``GET /indexes/{name}``, ``DELETE /indexes/{name}``

Data plane (each index's ``host``, ``url + /_data/{name}``, as ``describe`` hands it out):

- ``POST /vectors/upsert`` (dense and sparse values), ``POST /query`` (dense, sparse-dense),
  ``GET /vectors/fetch``, ``POST /vectors/fetch_by_metadata``,
  ``POST /vectors/delete`` (ids, filter, deleteAll), ``GET /vectors/list`` (prefix, limit,
  paginationToken), ``POST /describe_index_stats``

What it implements as Pinecone documents it: the ``Api-Key`` header (401 otherwise); index names of
1-45 lowercase alphanumerics and hyphens; indexes of one ``_values`` dense field, metric cosine,
dotproduct or euclidean (score: cosine similarity, dot product, or squared distance ascending), and
optionally a ``_sparse_values`` field (records then may carry sparse values; a query with a sparse
vector needs metric dotproduct, and scores the dense plus the sparse dot product);
namespaces (``""`` and ``__default__`` are the default one); the metadata filter language
(``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`` and the implicit ``{"key": value}``; on a
list-of-strings field ``$eq``/``$in`` match when any element matches, ``$ne``/``$nin`` when none
does; an absent field passes ``$ne``/``$nin``); metadata values only strings, numbers, booleans and
lists of strings (nulls and objects are refused), at most 40 KB (40960 bytes, compact UTF-8 JSON) per
record; at most 1000 records and 2 MB per upsert request; vectors of the index's dimension; numbers
stored as 64-bit floats. Errors come back as Pinecone's: ``{"error": {"code", "message"}, "status"}``
on the control plane, ``{"code", "message", "details"}`` (gRPC status codes) on the data plane.

``unavailable`` answers the next so many data-plane requests 503, as an outage would.

``lag`` (seconds) makes the data plane eventually consistent: a write is visible to reads (query,
fetch, list, stats, fetch-by-metadata) only ``lag`` seconds after it was acknowledged, in order.

Where Pinecone's documentation is silent the peer takes a side, which only a live run confirms: a
delete in a namespace never written to answers 404 "Namespace not found" (as serverless indexes have
been seen to), and a delete by filter applies in order after the writes acknowledged before it; an
absent field passes ``$ne``/``$nin``; metadata size is its compact JSON.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .served import HTTPPeer, JSONHandler

__all__ = ["PineconeServer", "matches_filter"]

METADATA_LIMIT = 40960
REQUEST_LIMIT = 2 * 1024 * 1024
MAX_UPSERT = 1000
DEFAULT_NAMESPACE = "__default__"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?$")


class ApiFailure(Exception):
    """An error answer: HTTP status, Pinecone's code and message."""

    def __init__(self, status: int, code: str | int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- the filter language ---------------------------------------------------------------------------------


def _cmp(op: str, have: Any, want: Any) -> bool:
    """One operator against one stored value that is present (a list field: see the module doc)."""
    if op in ("$eq", "$in"):
        wanted = want if op == "$in" else [want]
        if isinstance(have, list):
            return any(h == w for h in have for w in wanted)
        return any(_same(have, w) for w in wanted)
    if op in ("$ne", "$nin"):
        return not _cmp("$in", have, want if op == "$nin" else [want])
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(have, bool) or not isinstance(have, int | float) or not isinstance(want, int | float):
            return False
        return {"$gt": have > want, "$gte": have >= want, "$lt": have < want, "$lte": have <= want}[op]
    raise ApiFailure(400, 3, f"Unsupported filter operator: {op}")


def _same(have: Any, want: Any) -> bool:
    """Equality as Pinecone keeps values: numbers as floats, booleans apart from numbers."""
    if isinstance(have, bool) or isinstance(want, bool):
        return isinstance(have, bool) and isinstance(want, bool) and have == want
    if isinstance(have, int | float) and isinstance(want, int | float):
        return float(have) == float(want)
    return bool(have == want)


def matches_filter(flt: dict[str, Any] | None, meta: dict[str, Any]) -> bool:
    """Whether a record's metadata passes a Pinecone metadata filter."""
    if not flt:
        return True
    if not isinstance(flt, dict):
        raise ApiFailure(400, 3, "Invalid filter: expected an object")
    for key, cond in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise ApiFailure(400, 3, f"Invalid filter: {key} needs a non-empty array")
            parts = [matches_filter(c, meta) for c in cond]
            if not (all(parts) if key == "$and" else any(parts)):
                return False
            continue
        if key.startswith("$"):
            raise ApiFailure(400, 3, f"Unsupported filter operator: {key}")
        ops = cond if isinstance(cond, dict) else {"$eq": cond}
        for op, want in ops.items():
            if op == "$exists":
                if not isinstance(want, bool):
                    raise ApiFailure(400, 3, "$exists takes a boolean")
                if (key in meta) != want:
                    return False
                continue
            if op in ("$in", "$nin") and not isinstance(want, list):
                raise ApiFailure(400, 3, f"{op} takes an array")
            if key not in meta:
                if op in ("$ne", "$nin"):
                    continue
                return False
            if not _cmp(op, meta[key], want):
                return False
    return True


# -- storage ---------------------------------------------------------------------------------------------


@dataclass
class _Record:
    id: str
    values: list[float]
    metadata: dict[str, Any]
    sparse: dict[str, Any] | None = None


@dataclass
class _Index:
    name: str
    dimension: int
    metric: str
    cloud: str
    region: str
    deletion_protection: str = "disabled"
    tags: dict[str, str] | None = None
    sparse: bool = False  # a ``_sparse_values`` field: records may carry sparse values (hybrid)
    #: namespace -> id -> record, as reads see it
    visible: dict[str, dict[str, _Record]] = field(default_factory=dict)
    #: namespaces written to (acknowledged, visible or not)
    namespaces: set[str] = field(default_factory=set)
    #: writes acknowledged but not yet visible: (time visible, function applying it)
    pending: list[tuple[float, Callable[[], None]]] = field(default_factory=list)


def _namespace(value: Any) -> str:
    name = str(value or "")
    return DEFAULT_NAMESPACE if name in ("", DEFAULT_NAMESPACE) else name


def _check_metadata(meta: Any, vid: str) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ApiFailure(400, 3, f"Metadata of vector {vid} must be an object")
    stored: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, bool | str):
            stored[key] = value
        elif isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise ApiFailure(400, 3, f"Metadata value for field {key} must be a finite number")
            stored[key] = float(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            stored[key] = list(value)
        else:
            kind = "null" if value is None else type(value).__name__
            raise ApiFailure(
                400,
                3,
                f"Metadata value must be a string, number, boolean or list of strings, got '{kind}' "
                f"for field '{key}'",
            )
    size = len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode())
    if size > METADATA_LIMIT:
        raise ApiFailure(
            400,
            3,
            f"Metadata size is {size} bytes, which exceeds the limit of {METADATA_LIMIT} bytes per vector",
        )
    return stored


def _score(metric: str, a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    if metric == "dotproduct":
        return dot
    if metric == "euclidean":
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last}).encode()).decode()


def _after(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return str(json.loads(base64.urlsafe_b64decode(token.encode()))["after"])
    except Exception:
        raise ApiFailure(400, 3, "Invalid pagination token") from None


@dataclass
class PineconeServer(HTTPPeer):
    """Pinecone's REST API enough for the ``pinecone`` SDK. Use as a context manager, or
    ``start()``/``stop()``; ``url`` is the control plane."""

    _name = "pinecone-peer"

    api_key: str = "pcsk-peer-key"
    lag: float = 0.0
    unavailable: int = 0  # answer 503 to this many data-plane requests (an outage), then serve again
    cloud_regions: frozenset[tuple[str, str]] = frozenset(
        {
            ("aws", "us-east-1"),
            ("aws", "us-west-2"),
            ("aws", "eu-west-1"),
            ("gcp", "us-central1"),
            ("gcp", "europe-west4"),
            ("azure", "eastus2"),
        }
    )

    requests: list[tuple[str, str]] = field(default_factory=list, init=False)
    _indexes: dict[str, _Index] = field(default_factory=dict, init=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    # -- control ------------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def settle(self) -> None:
        """Make every acknowledged write visible now (the end of the lag)."""
        with self._lock:
            for index in self._indexes.values():
                for _, apply in index.pending:
                    apply()
                index.pending.clear()

    def stored(self, name: str, namespace: str = "") -> dict[str, dict[str, Any]]:
        """What an index holds (visible writes), id -> metadata, for assertions."""
        with self._lock:
            index = self._indexes[name]
            self._apply_due(index)
            return {r.id: dict(r.metadata) for r in index.visible.get(_namespace(namespace), {}).values()}

    # -- control plane ------------------------------------------------------------------------------
    def _model(self, index: _Index) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "_values": {"type": "dense_vector", "dimension": index.dimension, "metric": index.metric}
        }
        if index.sparse:
            fields["_sparse_values"] = {"type": "sparse_vector"}
        return {
            "name": index.name,
            "host": f"{self.url}/_data/{index.name}",
            "status": {"ready": True, "state": "Ready"},
            "schema": {"fields": fields},
            "deployment": {"deployment_type": "managed", "cloud": index.cloud, "region": index.region},
            "deletion_protection": index.deletion_protection,
            "tags": index.tags,
        }

    def control(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        with self._lock:
            if parts == ["indexes"] and method == "GET":
                return 200, {"indexes": [self._model(i) for i in self._indexes.values()]}
            if parts == ["indexes"] and method == "POST":
                return 201, self._model(self._create(body))
            if len(parts) == 2 and parts[0] == "indexes":
                index = self._indexes.get(parts[1])
                if index is None:
                    raise ApiFailure(404, "NOT_FOUND", f"Resource {parts[1]} not found")
                if method == "GET":
                    return 200, self._model(index)
                if method == "DELETE":
                    if index.deletion_protection == "enabled":
                        raise ApiFailure(403, "FORBIDDEN", f"Deletion protection is enabled for {index.name}")
                    del self._indexes[index.name]
                    return 202, None
        raise ApiFailure(404, "NOT_FOUND", "Not found")

    def _create(self, body: Any) -> _Index:
        if not isinstance(body, dict):
            raise ApiFailure(400, "INVALID_ARGUMENT", "Request body must be an object")
        name = str(body.get("name") or "")
        if not _NAME.match(name):
            raise ApiFailure(
                400,
                "INVALID_ARGUMENT",
                f"Name {name!r} is invalid: it must consist of lower case alphanumeric characters or '-', "
                "and be 1-45 characters long",
            )
        if name in self._indexes:
            raise ApiFailure(409, "ALREADY_EXISTS", f"Resource {name} already exists")
        fields = (body.get("schema") or {}).get("fields") or {}
        dense = fields.get("_values")
        if not isinstance(dense, dict) or dense.get("type") != "dense_vector":
            raise ApiFailure(
                400, "INVALID_ARGUMENT", "The peer serves vectors-API indexes: one _values field"
            )
        sparse = fields.get("_sparse_values")
        if set(fields) - {"_values", "_sparse_values"} or (
            sparse is not None and (not isinstance(sparse, dict) or sparse.get("type") != "sparse_vector")
        ):
            raise ApiFailure(
                400, "INVALID_ARGUMENT", "The peer serves vectors-API indexes: _values and _sparse_values"
            )
        dimension, metric = dense.get("dimension"), str(dense.get("metric") or "cosine")
        if not isinstance(dimension, int) or not 1 <= dimension <= 20000:
            raise ApiFailure(400, "INVALID_ARGUMENT", "Dimension must be an integer from 1 to 20000")
        if metric not in ("cosine", "dotproduct", "euclidean"):
            raise ApiFailure(400, "INVALID_ARGUMENT", f"Unknown metric {metric}")
        deployment = body.get("deployment") or {
            "deployment_type": "managed",
            "cloud": "aws",
            "region": "us-east-1",
        }
        cloud, region = str(deployment.get("cloud")), str(deployment.get("region"))
        if deployment.get("deployment_type") != "managed" or (cloud, region) not in self.cloud_regions:
            raise ApiFailure(400, "INVALID_ARGUMENT", f"Invalid cloud/region: {cloud}/{region}")
        index = _Index(
            name=name,
            dimension=dimension,
            metric=metric,
            cloud=cloud,
            region=region,
            deletion_protection=str(body.get("deletion_protection") or "disabled"),
            tags=body.get("tags"),
            sparse=sparse is not None,
        )
        self._indexes[name] = index
        return index

    # -- data plane ----------------------------------------------------------------------------------
    def _apply_due(self, index: _Index) -> None:
        now = time.monotonic()
        while index.pending and index.pending[0][0] <= now:
            index.pending.pop(0)[1]()

    def _write(self, index: _Index, apply: Callable[[], None]) -> None:
        if self.lag <= 0:
            self._apply_due(index)
            apply()
        else:
            index.pending.append((time.monotonic() + self.lag, apply))

    def data(self, name: str, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        with self._lock:
            index = self._indexes.get(name)
            if index is None:
                raise ApiFailure(404, 5, f"Index {name} not found")
            self._apply_due(index)
            body = body if isinstance(body, dict) else {}
            if method == "POST" and path == "/vectors/upsert":
                return self._upsert(index, body)
            if method == "POST" and path == "/query":
                return self._query(index, body)
            if method == "GET" and path == "/vectors/fetch":
                ns = _namespace((query.get("namespace") or [""])[0])
                space = index.visible.get(ns, {})
                found = {i: _out(space[i]) for i in query.get("ids", []) if i in space}
                return {"vectors": found, "namespace": ns, "usage": {"readUnits": 1}}
            if method == "POST" and path == "/vectors/fetch_by_metadata":
                return self._fetch_by_metadata(index, body)
            if method == "POST" and path == "/vectors/delete":
                return self._delete(index, body)
            if method == "GET" and path == "/vectors/list":
                return self._list(index, query)
            if method == "POST" and path == "/describe_index_stats":
                if body.get("filter"):
                    raise ApiFailure(
                        400,
                        3,
                        "Serverless and starter indexes do not support describing index stats with "
                        "metadata filtering",
                    )
                namespaces = {ns: {"vectorCount": len(recs)} for ns, recs in index.visible.items() if recs}
                return {
                    "namespaces": namespaces,
                    "dimension": index.dimension,
                    "indexFullness": 0.0,
                    "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
                    "metric": index.metric,
                    "vectorType": "dense",
                }
        raise ApiFailure(404, 5, f"Not found: {method} {path}")

    def _upsert(self, index: _Index, body: dict[str, Any]) -> Any:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise ApiFailure(400, 3, "Invalid request: vectors must be a non-empty array")
        if len(vectors) > MAX_UPSERT:
            raise ApiFailure(
                400, 3, f"Vector upsert request is limited to {MAX_UPSERT} vectors, got {len(vectors)}"
            )
        records = []
        for v in vectors:
            vid = str(v.get("id") or "")
            if not vid or len(vid) > 512:
                raise ApiFailure(400, 3, "Vector ID must be 1-512 characters")
            values = v.get("values") or []
            if len(values) != index.dimension:
                raise ApiFailure(
                    400,
                    3,
                    f"Vector dimension {len(values)} does not match the dimension of the index "
                    f"{index.dimension}",
                )
            sparse = v.get("sparseValues")
            if sparse is not None:
                if not index.sparse:
                    raise ApiFailure(
                        400, 3, "Sparse vectors are not supported by this index: it has no sparse field"
                    )
                sparse = _check_sparse(sparse)
            records.append(
                _Record(vid, [float(x) for x in values], _check_metadata(v.get("metadata"), vid), sparse)
            )
        ns = _namespace(body.get("namespace"))
        index.namespaces.add(ns)

        def apply() -> None:
            space = index.visible.setdefault(ns, {})
            for r in records:
                space[r.id] = r

        self._write(index, apply)
        return {"upsertedCount": len(records)}

    def _query(self, index: _Index, body: dict[str, Any]) -> Any:
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= 10000:
            raise ApiFailure(400, 3, "topK must be an integer from 1 to 10000")
        ns = _namespace(body.get("namespace"))
        space = index.visible.get(ns, {})
        if body.get("id"):
            base = space.get(str(body["id"]))
            vector = base.values if base else None
        else:
            vector = body.get("vector")
        if vector is None:
            return {"matches": [], "namespace": ns, "usage": {"readUnits": 1}}
        if len(vector) != index.dimension:
            raise ApiFailure(
                400,
                3,
                f"Vector dimension {len(vector)} does not match the dimension of the index {index.dimension}",
            )
        flt = body.get("filter")
        query_sparse = body.get("sparseVector")
        if query_sparse is not None:
            if index.metric != "dotproduct" or not index.sparse:
                raise ApiFailure(
                    400, 3, "Sparse-dense queries need an index of metric dotproduct with a sparse field"
                )
            query_sparse = _check_sparse(query_sparse)
        scored = [
            (_score(index.metric, vector, r.values) + _sparse_dot(query_sparse, r.sparse), r)
            for r in space.values()
            if matches_filter(flt, r.metadata)
        ]
        scored.sort(key=lambda sr: (sr[0] if index.metric == "euclidean" else -sr[0], sr[1].id))
        matches = []
        for score, r in scored[:top_k]:
            m: dict[str, Any] = {
                "id": r.id,
                "score": score,
                "values": r.values if body.get("includeValues") else [],
            }
            if body.get("includeMetadata"):
                m["metadata"] = r.metadata
            matches.append(m)
        return {
            "matches": matches,
            "namespace": ns if ns != DEFAULT_NAMESPACE else "",
            "usage": {"readUnits": 5},
        }

    def _fetch_by_metadata(self, index: _Index, body: dict[str, Any]) -> Any:
        flt = body.get("filter")
        if not flt:
            raise ApiFailure(400, 3, "Empty filter provided for fetch by metadata request")
        limit = body.get("limit", 100)
        if not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise ApiFailure(400, 3, "limit must be an integer from 1 to 10000")
        ns = _namespace(body.get("namespace"))
        after = _after(body.get("paginationToken"))
        chosen = [
            r
            for r in sorted(index.visible.get(ns, {}).values(), key=lambda r: r.id)
            if (after is None or r.id > after) and matches_filter(flt, r.metadata)
        ]
        page = chosen[:limit]
        result: dict[str, Any] = {
            "vectors": {r.id: _out(r) for r in page},
            "namespace": ns,
            "usage": {"readUnits": 1 + len(page) // 100},
        }
        if len(chosen) > limit:
            result["pagination"] = {"next": _token(page[-1].id)}
        return result

    def _delete(self, index: _Index, body: dict[str, Any]) -> Any:
        ns = _namespace(body.get("namespace"))
        ids, flt, everything = body.get("ids"), body.get("filter"), bool(body.get("deleteAll"))
        if sum(x is not None and x != [] and x is not False for x in (ids, flt, everything or None)) != 1:
            raise ApiFailure(400, 3, "Exactly one of ids, filter or deleteAll must be given")
        if flt is not None:
            matches_filter(flt, {})  # a malformed filter is refused now, not when it is applied
        if ns not in index.namespaces:  # serverless: a namespace exists from its first upsert on
            raise ApiFailure(404, 5, "Namespace not found")

        def apply() -> None:
            space = index.visible.get(ns, {})
            if everything:
                space.clear()
            elif ids is not None:
                for i in ids:
                    space.pop(str(i), None)
            else:
                for i in [i for i, r in space.items() if matches_filter(flt, r.metadata)]:
                    del space[i]

        self._write(index, apply)
        return {}

    def _list(self, index: _Index, query: dict[str, list[str]]) -> Any:
        ns = _namespace((query.get("namespace") or [""])[0])
        prefix = (query.get("prefix") or [""])[0]
        limit = int((query.get("limit") or ["100"])[0])
        if not 1 <= limit <= 100:
            raise ApiFailure(400, 3, "limit must be from 1 to 100")
        after = _after((query.get("paginationToken") or [None])[0])
        ids = sorted(
            i for i in index.visible.get(ns, {}) if i.startswith(prefix) and (after is None or i > after)
        )
        page = ids[:limit]
        result: dict[str, Any] = {
            "vectors": [{"id": i} for i in page],
            "namespace": ns,
            "usage": {"readUnits": 1},
        }
        if len(ids) > limit:
            result["pagination"] = {"next": _token(page[-1])}
        return result


def _out(r: _Record) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "values": r.values, "metadata": r.metadata}
    if r.sparse is not None:
        out["sparseValues"] = r.sparse
    return out


def _check_sparse(sparse: Any) -> dict[str, Any]:
    """A sparse vector as Pinecone takes it: indices and values of one length, indices unique."""
    if not isinstance(sparse, dict):
        raise ApiFailure(400, 3, "Sparse values must be an object with indices and values")
    indices, values = sparse.get("indices"), sparse.get("values")
    if not isinstance(indices, list) or not isinstance(values, list) or len(indices) != len(values):
        raise ApiFailure(400, 3, "Sparse vector indices and values must be arrays of the same length")
    if not indices:
        raise ApiFailure(400, 3, "Sparse vector must contain at least one value")
    if len(set(indices)) != len(indices) or not all(isinstance(i, int) and 0 <= i < 2**32 for i in indices):
        raise ApiFailure(400, 3, "Sparse vector indices must be unique unsigned 32-bit integers")
    return {"indices": [int(i) for i in indices], "values": [float(v) for v in values]}


def _sparse_dot(query: dict[str, Any] | None, record: dict[str, Any] | None) -> float:
    if query is None or record is None:
        return 0.0
    weights = dict(zip(record["indices"], record["values"], strict=True))
    return sum(v * weights.get(i, 0.0) for i, v in zip(query["indices"], query["values"], strict=True))


class _Handler(JSONHandler):
    owner: PineconeServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        owner = self.owner
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.strip("/").split("/") if p]
        data_plane = len(parts) >= 2 and parts[0] == "_data"
        length = int(self.headers.get("Content-Length") or 0)
        with owner._lock:
            owner.requests.append((self.command, split.path))
        try:
            if length > REQUEST_LIMIT:
                self.rfile.read(length)
                raise ApiFailure(
                    400 if data_plane else 413,
                    3 if data_plane else "INVALID_ARGUMENT",
                    f"Request size {length} bytes exceeds the maximum supported size of "
                    f"{REQUEST_LIMIT} bytes",
                )
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                raise ApiFailure(400, 3, "Invalid JSON body") from None
            if self.headers.get("Api-Key") != owner.api_key:
                raise ApiFailure(401, "UNAUTHENTICATED" if not data_plane else 16, "Invalid API Key")
            if data_plane:
                with owner._lock:
                    outage, owner.unavailable = owner.unavailable > 0, max(0, owner.unavailable - 1)
                if outage:
                    raise ApiFailure(503, 14, "Service is unavailable, retry later")
                sub = "/" + "/".join(parts[2:])
                answer = owner.data(parts[1], self.command, sub, parse_qs(split.query), body)
                self._json(200, answer)
            else:
                status, answer = owner.control(self.command, parts, body)
                self._json(status, answer)
        except ApiFailure as exc:
            if data_plane:
                self._json(exc.status, {"code": exc.code, "message": exc.message, "details": []})
            else:
                self._json(
                    exc.status, {"error": {"code": exc.code, "message": exc.message}, "status": exc.status}
                )

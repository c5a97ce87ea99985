"""A small, real Weaviate peer for tests: the REST and gRPC subset weaviate-client v4 calls for
ragstream's Weaviate backend, with storage, filters, cosine search, BM25 and hybrid fusion of its own.

REST (HTTP on an ephemeral 127.0.0.1 port): ``GET /v1/meta``, ``GET /v1/.well-known/ready`` and
``/live``, ``GET /v1/.well-known/openid-configuration`` (404: no OIDC), ``GET /v1/schema``,
``GET|DELETE /v1/schema/{Class}``, ``POST /v1/schema``. gRPC (``weaviate.v1.Weaviate``, served with
the generated modules the client wheel ships, on another ephemeral port): ``Search`` (near vector,
BM25, hybrid with rankedFusion / relativeScoreFusion, fetch with the ``after`` cursor, filters, limit,
offset), ``BatchObjects``, ``BatchDelete`` (at most ``query_maximum_results`` objects per call, like
the server's QUERY_MAXIMUM_RESULTS), ``Aggregate`` (object count, optionally filtered), and
``grpc.health.v1.Health/Check``.

Semantics follow Weaviate's: class names are capitalised, an object replaces the one of the same
uuid, the first vector of a named vector fixes its length (a longer or shorter one is refused per
object), filters on text compare whole values (``field`` tokenization) or words (``word``), ``equal``
on an array matches any element, ``notEqual`` is the complement of ``equal``, distances are cosine
(``1 - cos``), BM25 is Okapi BM25 (k1 1.2, b 0.75) over the word-tokenized properties with the ``en``
stopwords left out of the query, and ranked fusion sums ``weight / (60 + rank)`` over the best
``hybrid_maximum_results`` of each side (vector weight ``alpha``, keyword weight ``1 - alpha``). A
batch delete counts every match and deletes at most ``query_maximum_results`` of them. An
``api_key`` makes it require ``Authorization: Bearer`` on REST and the ``authorization`` metadata on
gRPC.
"""

from __future__ import annotations

import json
import math
import re
import struct
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import struct_pb2
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

from .served import JSONHandler, Peer, ServedHTTP

__all__ = ["WeaviateServer"]

VERSION = "1.32.0"
#: Lucene's English stopwords, Weaviate's ``en`` preset.
# fmt: off
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
    "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
    "to", "was", "will", "with",
))
# fmt: on
K1, B = 1.2, 0.75
RRF_K = 60
HNSW_DEFAULTS: dict[str, Any] = {
    "skip": False,
    "cleanupIntervalSeconds": 300,
    "maxConnections": 32,
    "efConstruction": 128,
    "ef": -1,
    "dynamicEfMin": 100,
    "dynamicEfMax": 500,
    "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1000000000000,
    "flatSearchCutoff": 40000,
    "distance": "cosine",
    "filterStrategy": "sweeping",
    "pq": {"enabled": False},
    "bq": {"enabled": False},
    "sq": {"enabled": False},
    "rq": {"enabled": False},
    "multivector": {"enabled": False},
}
_CLASS_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]{0,254}$")
_PROPERTY_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")


def words(text: str) -> list[str]:
    """Weaviate's ``word`` tokenization: runs of letters and digits, lower case."""
    return re.findall(r"[^\W_]+", text.lower())


class PeerError(Exception):
    """An error the peer answers with (HTTP status / gRPC code and message)."""

    def __init__(self, status: int, message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class Obj:
    """One stored object."""

    id: str
    properties: dict[str, Any]
    vectors: dict[str, list[float]]
    created: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass
class Collection:
    """One class: its schema (as the server answers it) and its objects by uuid."""

    schema: dict[str, Any]
    objects: dict[str, Obj] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)

    def prop(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.schema.get("properties", []) if p["name"] == name), None)

    def tokenization(self, name: str) -> str:
        p = self.prop(name)
        return str((p or {}).get("tokenization") or "word")


class WeaviateServer(Peer):
    """The peer: ``start()`` (or ``with``) serves REST and gRPC; ``url`` and ``grpc_address`` say where."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        query_maximum_results: int = 10_000,
        hybrid_maximum_results: int = 100,
    ):
        self.api_key = api_key
        self.query_maximum_results = query_maximum_results
        #: Candidates of each side of a hybrid search (QUERY_HYBRID_MAXIMUM_RESULTS).
        self.hybrid_maximum_results = hybrid_maximum_results
        self.collections: dict[str, Collection] = {}
        self.lock = threading.RLock()
        #: (transport, call) of every request, e.g. ("grpc", "BatchDelete"), ("rest", "POST /v1/schema").
        self.calls: list[tuple[str, str]] = []
        self._http: ServedHTTP | None = None
        self._grpc: grpc.Server | None = None
        self.grpc_port = 0

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._http is not None, "start() the server first"
        return self._http.url

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> WeaviateServer:
        server = self

        class Handler(_RestHandler):
            peer = server

        self._http = ServedHTTP(Handler, name="weaviate-peer-rest")
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Grpc(self), self._grpc)
        self._grpc.add_generic_rpc_handlers([_health_handler(self)])
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait(5)
            self._grpc = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def authorized(self, header: str | None) -> bool:
        return self.api_key is None or header == f"Bearer {self.api_key}"

    # -- schema ---------------------------------------------------------------------------------------
    def collection(self, name: str) -> Collection:
        found = self.collections.get(_capitalise(name))
        if found is None:
            raise PeerError(422, f"could not find class {name} in schema", grpc.StatusCode.NOT_FOUND)
        return found

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _capitalise(str(body.get("class") or ""))
        if not _CLASS_NAME.match(name):
            raise PeerError(422, f"'{name}' is not a valid class name")
        if name in self.collections:
            raise PeerError(422, f"class name {name!r} already exists")
        properties = []
        for p in body.get("properties") or []:
            if not _PROPERTY_NAME.match(p.get("name", "")) or p["name"] in ("id", "_id", "_additional"):
                raise PeerError(422, f"'{p.get('name')}' is not a valid property name")
            data_type = p["dataType"][0]
            is_text = data_type in ("text", "text[]")
            properties.append(
                {
                    "dataType": p["dataType"],
                    "name": p["name"],
                    "description": p.get("description"),
                    "indexFilterable": p.get("indexFilterable", True),
                    "indexSearchable": p.get("indexSearchable", is_text),
                    "indexRangeFilters": p.get("indexRangeFilters", False),
                    "tokenization": p.get("tokenization", "word") if is_text else None,
                }
            )
        vector_config = {}
        for vname, vc in (body.get("vectorConfig") or {}).items():
            vector_config[vname] = {
                "vectorizer": vc.get("vectorizer") or {"none": {}},
                "vectorIndexType": vc.get("vectorIndexType", "hnsw"),
                "vectorIndexConfig": {**HNSW_DEFAULTS, **(vc.get("vectorIndexConfig") or {})},
            }
        if not vector_config:  # the legacy single vector
            vector_config = {
                "default": {
                    "vectorizer": {"none": {}},
                    "vectorIndexType": "hnsw",
                    "vectorIndexConfig": {**HNSW_DEFAULTS, **(body.get("vectorIndexConfig") or {})},
                }
            }
        schema = {
            "class": name,
            "description": body.get("description"),
            "properties": properties,
            "vectorConfig": vector_config,
            "invertedIndexConfig": {
                "bm25": {"b": B, "k1": K1},
                "cleanupIntervalSeconds": 60,
                "stopwords": {"preset": "en", "additions": None, "removals": None},
            },
            "multiTenancyConfig": {"enabled": False},
            "replicationConfig": {"factor": 1, "deletionStrategy": "NoAutomatedResolution"},
            "shardingConfig": {
                "virtualPerPhysical": 128,
                "desiredCount": 1,
                "actualCount": 1,
                "desiredVirtualCount": 128,
                "actualVirtualCount": 128,
                "key": "_id",
                "strategy": "hash",
                "function": "murmur3",
            },
        }
        self.collections[name] = Collection(schema)
        return schema

    # -- objects --------------------------------------------------------------------------------------
    def put(self, col: Collection, obj: Obj) -> None:
        for name, vector in obj.vectors.items():
            if name not in col.schema["vectorConfig"]:
                raise PeerError(422, f"collection {col.schema['class']} has no vector named {name!r}")
            expected = col.dims.get(name)
            if expected is not None and expected != len(vector):
                raise PeerError(
                    422,
                    f"new node has a vector with length {len(vector)}. "
                    f"Existing nodes have vectors with length {expected}",
                )
        for key in obj.properties:
            if col.prop(key) is None:
                raise PeerError(422, f"no such prop with name '{key}' found in class '{col.schema['class']}'")
        for name, vector in obj.vectors.items():
            col.dims.setdefault(name, len(vector))
        col.objects[obj.id] = obj

    def matching(self, col: Collection, flt: base_pb2.Filters | None) -> list[Obj]:
        """The objects passing ``flt``, by uuid."""
        objs = sorted(col.objects.values(), key=lambda o: o.id)
        if flt is None:
            return objs
        return [o for o in objs if _passes(col, o, flt)]


# -- filters -------------------------------------------------------------------------------------------


def _capitalise(name: str) -> str:
    return name[:1].upper() + name[1:]


def _filter_property(flt: base_pb2.Filters) -> str:
    if flt.HasField("target"):
        if not flt.target.property:
            raise PeerError(422, "the peer filters on properties only", grpc.StatusCode.UNIMPLEMENTED)
        return flt.target.property
    if flt.on:
        return flt.on[-1]
    raise PeerError(422, "a filter without a property")


def _filter_values(flt: base_pb2.Filters) -> list[Any]:
    kind = flt.WhichOneof("test_value")
    if kind is None:
        raise PeerError(422, "a filter without a value")
    value = getattr(flt, kind)
    if kind.endswith("_array"):
        return list(value.values)
    return [value]


def _tokens(col: Collection, prop: str, value: Any) -> list[Any]:
    """What a value of a property indexes: its whole (trimmed) text for ``field``, its words for ``word``."""
    if not isinstance(value, str):
        return [value]
    tokenization = col.tokenization(prop)
    if tokenization == "field":
        return [value.strip()]
    if tokenization != "word":
        raise PeerError(422, f"the peer tokenizes word and field only, not {tokenization}")
    return words(value)


def _passes(col: Collection, obj: Obj, flt: base_pb2.Filters) -> bool:
    op = flt.operator
    F = base_pb2.Filters
    if op == F.OPERATOR_AND:
        return all(_passes(col, obj, f) for f in flt.filters)
    if op == F.OPERATOR_OR:
        return any(_passes(col, obj, f) for f in flt.filters)
    if op == F.OPERATOR_NOT:
        return not all(_passes(col, obj, f) for f in flt.filters)
    prop = _filter_property(flt)
    if col.prop(prop) is None and prop not in ("_id",):
        raise PeerError(422, f"no such prop with name '{prop}' found in class '{col.schema['class']}'")
    raw = str(uuid.UUID(obj.id)) if prop == "_id" else obj.properties.get(prop)
    stored = raw if isinstance(raw, list) else ([] if raw is None else [raw])
    have = {t for v in stored for t in _tokens(col, prop, v)}
    wanted = [t for v in _filter_values(flt) for t in _tokens(col, prop, v)]
    if op == F.OPERATOR_EQUAL:
        return bool(wanted) and all(t in have for t in wanted)
    if op == F.OPERATOR_NOT_EQUAL:
        return not (bool(wanted) and all(t in have for t in wanted))
    if op == F.OPERATOR_CONTAINS_ANY:
        return any(t in have for t in wanted)
    if op == F.OPERATOR_CONTAINS_ALL:
        return all(t in have for t in wanted)
    if op == F.OPERATOR_CONTAINS_NONE:
        return not any(t in have for t in wanted)
    raise PeerError(422, f"the peer does not implement filter operator {op}", grpc.StatusCode.UNIMPLEMENTED)


# -- vectors, BM25, fusion -----------------------------------------------------------------------------


def _floats(data: bytes) -> list[float]:
    return list(struct.unpack(f"{len(data) // 4}f", data))


def _query_vector(msg: Any) -> tuple[str | None, list[float]]:
    """The (target vector name, query vector) of a NearVector or Hybrid message, however the client
    encoded it (repeated floats, bytes, per-target bytes, ``vectors``)."""
    targets = list(msg.targets.target_vectors) if msg.HasField("targets") else list(msg.target_vectors)
    target = targets[0] if targets else None
    if len(targets) > 1:
        raise PeerError(422, "the peer searches one target vector", grpc.StatusCode.UNIMPLEMENTED)
    for vft in getattr(msg, "vector_for_targets", ()):
        if target is None or vft.name == target:
            if vft.vectors:
                return vft.name, _floats(vft.vectors[0].vector_bytes)
            return vft.name, _floats(vft.vector_bytes)
    per_target = getattr(msg, "vector_per_target", {})
    if per_target:
        name = target or next(iter(per_target))
        return name, _floats(per_target[name])
    if msg.vectors:
        return target or (msg.vectors[0].name or None), _floats(msg.vectors[0].vector_bytes)
    if msg.vector_bytes:
        return target, _floats(msg.vector_bytes)
    return target, list(msg.vector)


def _cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 1.0
    return 1.0 - dot / (na * nb)


def _vector_ranking(
    col: Collection, candidates: list[Obj], target: str | None, vector: list[float]
) -> list[tuple[Obj, float]]:
    name = target or next(iter(col.schema["vectorConfig"]))
    if name not in col.schema["vectorConfig"]:
        raise PeerError(422, f"target vector {name!r} not found")
    expected = col.dims.get(name)
    if expected is not None and expected != len(vector):
        raise PeerError(
            422,
            f"vector search: could not vectorize: vector lengths don't match: {len(vector)} vs {expected}",
            grpc.StatusCode.UNKNOWN,
        )
    scored = [(o, _cosine_distance(vector, o.vectors[name])) for o in candidates if name in o.vectors]
    return sorted(scored, key=lambda t: (t[1], t[0].id))


def _bm25_ranking(
    col: Collection, candidates: list[Obj], query: str, properties: Iterable[str]
) -> list[tuple[Obj, float]]:
    """Okapi BM25 of ``query`` over the searchable text properties (statistics over the whole class)."""
    props = list(properties) or [
        p["name"]
        for p in col.schema["properties"]
        if p.get("indexSearchable") and p["dataType"][0] in ("text", "text[]")
    ]
    terms = [t for t in dict.fromkeys(words(query)) if t not in STOPWORDS]
    if not terms or not props:
        return []

    def doc_tokens(o: Obj) -> list[str]:
        out: list[str] = []
        for p in props:
            value = o.properties.get(p)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str):
                    out.extend(words(v))
        return out

    everything = {o.id: doc_tokens(o) for o in col.objects.values()}
    n = len(everything)
    avgdl = sum(len(t) for t in everything.values()) / n if n else 0.0
    df = {t: sum(1 for toks in everything.values() if t in toks) for t in terms}
    scored = []
    for o in candidates:
        toks = everything[o.id]
        score = 0.0
        for t in terms:
            tf = toks.count(t)
            if tf:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(toks) / (avgdl or 1)))
        if score > 0:
            scored.append((o, score))
    return sorted(scored, key=lambda t: (-t[1], t[0].id))


def _fuse(
    dense: list[tuple[Obj, float]], sparse: list[tuple[Obj, float]], alpha: float, relative: bool
) -> list[tuple[Obj, float]]:
    """Weaviate's fusion: ranked (``w / (60 + rank)``) or relative score (min-max scaled, weighted)."""
    fused: dict[str, float] = {}
    objs: dict[str, Obj] = {}
    lists = [(dense, alpha, True), (sparse, 1.0 - alpha, False)]
    for ranking, weight, is_distance in lists:
        if not ranking:
            continue
        values = [-s if is_distance else s for _, s in ranking]
        lo, hi = min(values), max(values)
        for rank, ((o, _), v) in enumerate(zip(ranking, values, strict=True)):
            objs[o.id] = o
            part = (
                weight * ((v - lo) / (hi - lo) if hi > lo else 1.0) if relative else weight / (RRF_K + rank)
            )
            fused[o.id] = fused.get(o.id, 0.0) + part
    return sorted(((objs[i], s) for i, s in fused.items()), key=lambda t: (-t[1], t[0].id))


# -- gRPC ----------------------------------------------------------------------------------------------


def _value(v: Any) -> properties_pb2.Value:
    if isinstance(v, bool):
        return properties_pb2.Value(bool_value=v)
    if isinstance(v, int):
        return properties_pb2.Value(int_value=v)
    if isinstance(v, float):
        return properties_pb2.Value(number_value=v)
    if isinstance(v, str):
        return properties_pb2.Value(text_value=v)
    if isinstance(v, list):
        if all(isinstance(x, str) for x in v):
            return properties_pb2.Value(
                list_value=properties_pb2.ListValue(text_values=properties_pb2.TextValues(values=v))
            )
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            packed = struct.pack(f"<{len(v)}q", *v)
            return properties_pb2.Value(
                list_value=properties_pb2.ListValue(int_values=properties_pb2.IntValues(values=packed))
            )
        packed = struct.pack(f"<{len(v)}d", *v)
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(number_values=properties_pb2.NumberValues(values=packed))
        )
    return properties_pb2.Value(null_value=struct_pb2.NULL_VALUE)


def _batch_properties(props: batch_pb2.BatchObject.Properties) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in props.non_ref_properties.fields.items():
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            out[key] = value.string_value
        elif kind == "number_value":
            out[key] = int(value.number_value) if value.number_value.is_integer() else value.number_value
        elif kind == "bool_value":
            out[key] = value.bool_value
        elif kind == "null_value":
            continue
        else:
            raise PeerError(422, f"the peer stores no nested property {key!r}", grpc.StatusCode.UNIMPLEMENTED)
    for arr in props.text_array_properties:
        out[arr.prop_name] = list(arr.values)
    for arr in props.int_array_properties:
        out[arr.prop_name] = list(arr.values)
    for arr in props.number_array_properties:
        out[arr.prop_name] = _floats(arr.values_bytes) if arr.values_bytes else list(arr.values)
    for arr in props.boolean_array_properties:
        out[arr.prop_name] = list(arr.values)
    for name in props.empty_list_props:
        out[name] = []
    return out


def _batch_vectors(obj: batch_pb2.BatchObject, col: Collection) -> dict[str, list[float]]:
    vectors = {v.name or "default": _floats(v.vector_bytes) for v in obj.vectors}
    if obj.vector_bytes or obj.vector:
        legacy = _floats(obj.vector_bytes) if obj.vector_bytes else list(obj.vector)
        vectors[next(iter(col.schema["vectorConfig"]))] = legacy
    return vectors


class _Grpc(weaviate_pb2_grpc.WeaviateServicer):  # type: ignore[misc]
    def __init__(self, peer: WeaviateServer):
        self.peer = peer

    def _enter(self, context: grpc.ServicerContext, call: str) -> None:
        self.peer.calls.append(("grpc", call))
        header = dict(context.invocation_metadata()).get("authorization")
        if not self.peer.authorized(header):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "anonymous access not enabled, provide an API key")

    def _guard(self, context: grpc.ServicerContext, fn: Any) -> Any:
        try:
            with self.peer.lock:
                return fn()
        except PeerError as exc:
            context.abort(exc.code, str(exc))

    def BatchObjects(self, request: batch_pb2.BatchObjectsRequest, context: grpc.ServicerContext) -> Any:
        self._enter(context, "BatchObjects")
        started = time.perf_counter()

        def run() -> batch_pb2.BatchObjectsReply:
            errors = []
            for index, obj in enumerate(request.objects):
                try:
                    col = self.peer.collection(obj.collection)
                    self.peer.put(
                        col,
                        Obj(
                            id=str(uuid.UUID(obj.uuid)),
                            properties=_batch_properties(obj.properties),
                            vectors=_batch_vectors(obj, col),
                        ),
                    )
                except PeerError as exc:
                    errors.append(batch_pb2.BatchObjectsReply.BatchError(index=index, error=str(exc)))
            return batch_pb2.BatchObjectsReply(took=time.perf_counter() - started, errors=errors)

        return self._guard(context, run)

    def BatchDelete(self, request: batch_delete_pb2.BatchDeleteRequest, context: grpc.ServicerContext) -> Any:
        self._enter(context, "BatchDelete")
        started = time.perf_counter()

        def run() -> batch_delete_pb2.BatchDeleteReply:
            col = self.peer.collection(request.collection)
            if not request.HasField("filters"):
                raise PeerError(422, "a batch delete needs a filter")
            # like the server: every match is counted, at most QUERY_MAXIMUM_RESULTS of them deleted
            matched = self.peer.matching(col, request.filters)
            found = matched[: self.peer.query_maximum_results]
            if not request.dry_run:
                for o in found:
                    del col.objects[o.id]
            return batch_delete_pb2.BatchDeleteReply(
                took=time.perf_counter() - started,
                matches=len(matched),
                successful=0 if request.dry_run else len(found),
                failed=0,
                objects=[
                    batch_delete_pb2.BatchDeleteObject(
                        uuid=uuid.UUID(o.id).bytes, successful=not request.dry_run
                    )
                    for o in found
                ]
                if request.verbose
                else [],
            )

        return self._guard(context, run)

    def Aggregate(self, request: aggregate_pb2.AggregateRequest, context: grpc.ServicerContext) -> Any:
        self._enter(context, "Aggregate")
        started = time.perf_counter()

        def run() -> aggregate_pb2.AggregateReply:
            if request.aggregations or request.HasField("group_by") or request.WhichOneof("search"):
                raise PeerError(422, "the peer aggregates object counts only", grpc.StatusCode.UNIMPLEMENTED)
            col = self.peer.collection(request.collection)
            found = self.peer.matching(col, request.filters if request.HasField("filters") else None)
            return aggregate_pb2.AggregateReply(
                took=time.perf_counter() - started,
                single_result=aggregate_pb2.AggregateReply.Single(objects_count=len(found)),
            )

        return self._guard(context, run)

    def Search(self, request: search_get_pb2.SearchRequest, context: grpc.ServicerContext) -> Any:
        self._enter(context, "Search")
        started = time.perf_counter()
        return self._guard(context, lambda: self._search(request, started))

    def _search(self, request: search_get_pb2.SearchRequest, started: float) -> search_get_pb2.SearchReply:
        col = self.peer.collection(request.collection)
        if request.HasField("group_by") or request.sort_by or request.HasField("generative"):
            raise PeerError(422, "the peer does not group, sort or generate", grpc.StatusCode.UNIMPLEMENTED)
        candidates = self.peer.matching(col, request.filters if request.HasField("filters") else None)
        scored: list[tuple[Obj, float]]
        distance = score = False
        if request.HasField("near_vector"):
            target, vector = _query_vector(request.near_vector)
            scored = _vector_ranking(col, candidates, target, vector)
            distance = True
        elif request.HasField("bm25_search"):
            scored = _bm25_ranking(col, candidates, request.bm25_search.query, request.bm25_search.properties)
            score = True
        elif request.HasField("hybrid_search"):
            scored = self._hybrid(col, candidates, request.hybrid_search, request.limit)
            score = True
        elif any(request.HasField(f) for f in ("near_object", "near_text", "near_image", "near_audio")):
            raise PeerError(
                422, "the peer searches near vectors, BM25 and hybrid", grpc.StatusCode.UNIMPLEMENTED
            )
        else:  # fetch: by uuid, after the cursor
            scored = [(o, 0.0) for o in candidates if not request.after or o.id > request.after]
        limit = request.limit or 10
        if request.after and request.offset:
            raise PeerError(422, "cursor api: invalid 'after' parameter: offset cannot be set")
        page = scored[request.offset : request.offset + min(limit, self.peer.query_maximum_results)]
        return search_get_pb2.SearchReply(
            took=time.perf_counter() - started,
            results=[self._result(col, o, s, request, distance, score) for o, s in page],
        )

    def _hybrid(
        self, col: Collection, candidates: list[Obj], hybrid: base_search_pb2.Hybrid, limit: int
    ) -> list[tuple[Obj, float]]:
        alpha = hybrid.alpha_param if hybrid.use_alpha_param else hybrid.alpha
        if hybrid.HasField("near_vector"):
            target, vector = _query_vector(hybrid.near_vector)
        else:
            target, vector = _query_vector(hybrid)
        depth = self.peer.hybrid_maximum_results
        dense = _vector_ranking(col, candidates, target, vector)[:depth] if vector and alpha > 0 else []
        sparse = _bm25_ranking(col, candidates, hybrid.query, hybrid.properties)[:depth] if alpha < 1 else []
        relative = hybrid.fusion_type == base_search_pb2.Hybrid.FUSION_TYPE_RELATIVE_SCORE
        return _fuse(dense, sparse, alpha, relative)

    @staticmethod
    def _result(
        col: Collection, o: Obj, s: float, request: search_get_pb2.SearchRequest, distance: bool, score: bool
    ) -> search_get_pb2.SearchResult:
        wanted = request.properties
        names = (
            [p["name"] for p in col.schema["properties"]]
            if wanted.return_all_nonref_properties
            else list(wanted.non_ref_properties)
        )
        props = properties_pb2.Properties(
            fields={n: _value(o.properties[n]) for n in names if n in o.properties}
        )
        md = request.metadata
        meta = search_get_pb2.MetadataResult(id=o.id, id_as_bytes=uuid.UUID(o.id).bytes)
        if distance and md.distance:
            meta.distance, meta.distance_present = s, True
        if distance and md.certainty:
            meta.certainty, meta.certainty_present = 1.0 - s / 2.0, True
        if score and md.score:
            meta.score, meta.score_present = s, True
        if md.creation_time_unix:
            meta.creation_time_unix, meta.creation_time_unix_present = o.created, True
        if md.vector or md.vectors:
            meta.vectors.extend(
                base_pb2.Vectors(name=n, vector_bytes=struct.pack(f"{len(v)}f", *v))
                for n, v in o.vectors.items()
                if not md.vectors or n in md.vectors
            )
        return search_get_pb2.SearchResult(
            properties=search_get_pb2.PropertiesResult(
                non_ref_props=props, target_collection=col.schema["class"]
            ),
            metadata=meta,
        )


def _health_handler(peer: WeaviateServer) -> grpc.GenericRpcHandler:
    def check(request: health_weaviate_pb2.WeaviateHealthCheckRequest, context: grpc.ServicerContext) -> Any:
        peer.calls.append(("grpc", "Health/Check"))
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
        )

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
                response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
            )
        },
    )


# -- REST ----------------------------------------------------------------------------------------------


class _RestHandler(JSONHandler):
    peer: WeaviateServer

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0].rstrip("/")
        self.peer.calls.append(("rest", f"{method} {path}"))
        if path in ("/v1/.well-known/ready", "/v1/.well-known/live"):
            return self._json(200, None)
        if path == "/v1/.well-known/openid-configuration":
            return self._json(404, None)
        if not self.peer.authorized(self.headers.get("Authorization")):
            return self._error(401, "anonymous access not enabled, please provide an auth scheme")
        try:
            body = json.loads(raw) if raw else None
            with self.peer.lock:
                status, payload = self._route(method, path, body)
        except PeerError as exc:
            return self._error(exc.status, str(exc))
        self._json(status, payload)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        peer = self.peer
        if method == "GET" and path == "/v1/meta":
            return 200, {
                "hostname": "http://[::]:8080",
                "version": VERSION,
                "modules": {},
                "grpcMaxMessageSize": 104858000,
            }
        if method == "GET" and path == "/v1/schema":
            return 200, {"classes": [c.schema for c in peer.collections.values()]}
        if method == "POST" and path == "/v1/schema":
            return 200, peer.create(body or {})
        match = re.fullmatch(r"/v1/schema/([^/]+)", path)
        if match:
            name = _capitalise(match.group(1))
            if method == "GET":
                col = peer.collections.get(name)
                return (200, col.schema) if col else (404, None)
            if method == "DELETE":
                peer.collections.pop(name, None)
                return 200, None
        raise PeerError(404, f"the peer does not serve {method} {path}")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": [{"message": message}]})

"""What is Weaviate's own: hybrid search, the delete loop past the server's per-call cap, the dimension
mark, the collection's name, the gRPC address, credentials. Through weaviate-client, against the peer
(``tests/peers/weaviate_server.py``) and, for hybrid search, against a live Weaviate when
``RAGSTREAM_TEST_WEAVIATE_URL`` is set (``backends.py``)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragstream.config import Settings
from ragstream.errors import ConfigError, DimensionMismatch
from ragstream.index import (
    LexicalQuery,
    Point,
    SearchFilter,
    SparseVector,
    VectorIndex,
    chunk_metadata,
    open_index,
    point_id,
)
from ragstream.index.weaviate import collection_name, grpc_address
from tests.peers.weaviate_server import WeaviateServer
from tests.support.backends import Backend, backend_settings
from tests.support.points import DIM, points


def settings_for(
    peer: WeaviateServer, tmp_path: Path, collection: str | None = None, **extra: object
) -> Settings:
    values: dict[str, object] = {
        "home": tmp_path / "home",
        "index": "weaviate",
        "index_url": peer.url,
        "weaviate_grpc_url": peer.grpc_address,
        "index_api_key": peer.api_key,
        "collection": collection or f"t{uuid.uuid4().hex[:12]}",
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def capped() -> Iterator[WeaviateServer]:
    """A peer whose delete removes at most 3 objects per call (QUERY_MAXIMUM_RESULTS=3)."""
    with WeaviateServer(api_key="capped-key", query_maximum_results=3) as peer:
        yield peer


@pytest.fixture(params=["weaviate-peer", "weaviate-live"])
def weaviate(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Weaviate through the SDK: the peer, and a live service when its URL is set."""
    b = Backend(request.param, backend_settings(request.param, tmp_path, request))
    yield b
    b.close()


def direction(*weights: float) -> list[float]:
    """A unit vector of DIM floats with these leading components."""
    v = [*weights, *([0.0] * (DIM - len(weights)))]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def chunk(source: str, i: int, text: str, vector: list[float]) -> Point:
    return Point(
        id=point_id(source, "v1", i),
        vector=vector,
        text=text,
        metadata=chunk_metadata(source=source, version="v1", chunk_index=i, content_type="text/markdown"),
    )


NO_SPARSE = SparseVector(indices=[], values=[])


# -- hybrid search -------------------------------------------------------------------------------------


def test_hybrid_search_lets_a_lexical_match_beat_a_dense_near_miss(weaviate: Backend) -> None:
    index = weaviate.open()
    assert index.capabilities.hybrid and not index.capabilities.embedded
    index.ensure_collection(DIM)
    query = direction(1.0)
    near_miss = chunk("s3://docs/a/near.md", 0, "Travel is booked through the portal.", direction(1.0, 0.2))
    lexical = chunk(
        "s3://docs/b/match.md", 0, "Parental leave lasts sixteen weeks at full pay.", direction(1.0, 0.6)
    )
    others = [
        chunk(
            f"s3://docs/c/other{i}.md",
            0,
            f"Expense report number {i} is due monthly.",
            direction(0.2, 1.0, i),
        )
        for i in range(4)
    ]
    index.upsert([near_miss, lexical, *others])

    # GIVEN a dense search: the near miss is nearest
    dense = index.search(query, limit=3)
    assert [h.id for h in dense[:2]] == [near_miss.id, lexical.id]
    assert dense[0].score == pytest.approx(1 / math.sqrt(1.04), abs=1e-4)  # cosine

    # WHEN the same vector goes with the query's words, THEN the chunk that has them comes first
    words = LexicalQuery(text="how long is parental leave", sparse=NO_SPARSE)
    hybrid = index.search(query, limit=3, lexical=words)
    assert [h.id for h in hybrid[:2]] == [lexical.id, near_miss.id]
    assert hybrid[0].score > hybrid[1].score > 0
    assert hybrid[0].text == lexical.text and hybrid[0].source == "s3://docs/b/match.md"

    # AND the filter holds under hybrid search as under dense search
    only_a = SearchFilter(source_prefix="s3://docs/a/")
    assert [h.id for h in index.search(query, limit=3, flt=only_a, lexical=words)] == [near_miss.id]
    # AND a store without words in the query searches dense only
    blank = index.search(query, limit=3, lexical=LexicalQuery(text="  ", sparse=NO_SPARSE))
    assert [h.id for h in blank] == [h.id for h in dense]


# -- deletes past the server's cap ----------------------------------------------------------------------


def test_delete_repeats_until_the_servers_cap_leaves_nothing_behind(
    capped: WeaviateServer, tmp_path: Path
) -> None:
    index = open_index(settings_for(capped, tmp_path))
    try:
        index.ensure_collection(DIM)
        index.upsert(points("s3://docs/big.pdf", "v1", 10))
        index.upsert(points("s3://docs/big.pdf", "v2", 7))
        index.upsert(points("s3://docs/other.pdf", "v1", 4))
        capped.calls.clear()

        # WHEN every version but v2 goes (10 objects, 3 per call)
        index.delete_source("s3://docs/big.pdf", keep_version="v2")
        # THEN all 10 went, in 4 deletes (3, 3, 3, 1), and nothing else did
        assert capped.calls.count(("grpc", "BatchDelete")) == 4
        assert index.count("s3://docs/big.pdf", "v1") == 0
        assert index.count("s3://docs/big.pdf", "v2") == 7
        assert index.count("s3://docs/other.pdf") == 4

        index.delete_source("s3://docs/big.pdf")
        assert index.count() == 4
        assert set(index.versions()) == {("s3://docs/other.pdf", "v1")}
    finally:
        index.close()


# -- the collection ------------------------------------------------------------------------------------


def test_a_collection_not_made_by_ragstream_or_of_another_dimension_is_refused(
    weaviate_peer: WeaviateServer, tmp_path: Path
) -> None:
    import weaviate as client_lib
    from weaviate.classes.config import Configure

    settings = settings_for(weaviate_peer, tmp_path)
    # GIVEN a collection someone else made under our name
    with client_lib.connect_to_local(
        host="127.0.0.1",
        port=int(weaviate_peer.url.rsplit(":", 1)[1]),
        grpc_port=weaviate_peer.grpc_port,
        auth_credentials=client_lib.classes.init.Auth.api_key("peer-key"),
        skip_init_checks=True,
    ) as client:
        client.collections.create(
            collection_name(settings.collection), vector_config=Configure.Vectors.self_provided()
        )
    index = open_index(settings)
    try:
        with pytest.raises(DimensionMismatch, match="not made by ragstream"):
            index.ensure_collection(DIM)
    finally:
        index.close()

    # AND ours, written with vectors of DIM floats, refuses vectors of another length
    ours = open_index(settings_for(weaviate_peer, tmp_path))
    try:
        ours.ensure_collection(DIM)
        ours.upsert(points("s3://docs/a.pdf", "v1", 2))
        longer = [p.model_copy(update={"vector": p.vector * 2}) for p in points("s3://docs/b.pdf", "v1", 1)]
        with pytest.raises(DimensionMismatch, match="length 32"):
            ours.upsert(longer)
        assert ours.count() == 2
    finally:
        ours.close()


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("ragstream", "Ragstream"), ("my-docs.v2", "My_docs_v2"), ("2024", "C2024"), ("Team_A", "Team_A")],
)
def test_the_collection_name_maps_to_a_weaviate_class_name(
    weaviate_peer: WeaviateServer, tmp_path: Path, ours: str, theirs: str
) -> None:
    assert collection_name(ours) == theirs
    index = open_index(settings_for(weaviate_peer, tmp_path, collection=ours))
    try:
        weaviate_peer.collections.pop(theirs, None)
        index.ensure_collection(DIM)
        assert theirs in weaviate_peer.collections
        assert index.collection == ours
    finally:
        weaviate_peer.collections.pop(theirs, None)
        index.close()


def test_the_grpc_address_follows_the_url_unless_given() -> None:
    assert grpc_address("http://weaviate.internal:8080", None) == ("weaviate.internal", 50051, False)
    assert grpc_address("https://abc.c0.europe-west3.gcp.weaviate.cloud", None) == (
        "grpc-abc.c0.europe-west3.gcp.weaviate.cloud",
        443,
        True,
    )
    assert grpc_address("http://localhost:8080", "localhost:50052") == ("localhost", 50052, False)
    with pytest.raises(ConfigError, match="host:port"):
        grpc_address("http://localhost:8080", "localhost")


def test_settings_name_the_store_and_refuse_what_cannot_work(tmp_path: Path) -> None:
    base = {"home": tmp_path, "index": "weaviate"}
    with pytest.raises(ConfigError, match="RAGSTREAM_INDEX_URL"):
        open_index(Settings(**base))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="http"):
        open_index(Settings(**base, index_url="weaviate.internal:8080"))  # type: ignore[arg-type]
    one = Settings(**base, index_url="http://a:8080")  # type: ignore[arg-type]
    two = Settings(**base, index_url="http://b:8080")  # type: ignore[arg-type]
    assert one.index_identity == "weaviate:http://a:8080#ragstream"
    assert one.fingerprint != two.fingerprint


def test_a_wrong_api_key_is_a_configuration_error(weaviate_peer: WeaviateServer, tmp_path: Path) -> None:
    index: VectorIndex = open_index(settings_for(weaviate_peer, tmp_path, index_api_key="not-the-key"))
    try:
        with pytest.raises(ConfigError, match="RAGSTREAM_INDEX_API_KEY"):
            index.exists()
    finally:
        index.close()


# -- the peer itself: its BM25 and fusion are the documented formulas ----------------------------------


def test_the_peers_bm25_and_fusion_are_okapi_and_weaviates_fusions(weaviate_peer: WeaviateServer) -> None:
    import weaviate as client_lib
    from weaviate.classes.config import Configure, DataType, Property, Tokenization
    from weaviate.classes.data import DataObject
    from weaviate.classes.query import HybridFusion, MetadataQuery

    docs = ["leave policy leave", "travel policy", "the expense report"]
    name = f"Peer{uuid.uuid4().hex[:8]}"
    with client_lib.connect_to_local(
        host="127.0.0.1",
        port=int(weaviate_peer.url.rsplit(":", 1)[1]),
        grpc_port=weaviate_peer.grpc_port,
        auth_credentials=client_lib.classes.init.Auth.api_key("peer-key"),
        skip_init_checks=True,
    ) as client:
        col = client.collections.create(
            name,
            vector_config=Configure.Vectors.self_provided(),
            properties=[Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD)],
        )
        ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, d)) for d in docs]
        col.data.insert_many(
            [
                DataObject(properties={"text": d}, uuid=i, vector=direction(1.0, float(n)))
                for n, (d, i) in enumerate(zip(docs, ids, strict=True))
            ]
        )

        # BM25 (k1 1.2, b 0.75), "the" a stopword: only the two documents with "leave" or "policy" score
        bm25 = col.query.bm25("the leave policy", return_metadata=MetadataQuery(score=True))
        lengths = [3, 2, 3]
        avgdl = sum(lengths) / 3

        def okapi(tf: int, df: int, dl: int) -> float:
            idf = math.log(1 + (3 - df + 0.5) / (df + 0.5))
            return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

        expected = [okapi(2, 1, 3) + okapi(1, 2, 3), okapi(1, 2, 2)]
        assert [str(o.uuid) for o in bm25.objects] == ids[:2]
        assert [o.metadata.score for o in bm25.objects] == pytest.approx(expected, rel=1e-6)

        # relative score fusion: each side min-max scaled, weighted by alpha and 1 - alpha
        fused = col.query.hybrid(
            "travel",
            vector=direction(1.0, 2.0),
            alpha=0.25,
            fusion_type=HybridFusion.RELATIVE_SCORE,
            return_metadata=MetadataQuery(score=True),
        )
        # keyword side: only "travel policy" (scaled 1.0); vector side: doc 2 nearest (1.0), doc 0 last (0.0)
        cos = [
            sum(a * b for a, b in zip(direction(1.0, 2.0), direction(1.0, float(n)), strict=True))
            for n in range(3)
        ]
        middle = (cos[1] - cos[0]) / (cos[2] - cos[0])
        scores = {str(o.uuid): o.metadata.score for o in fused.objects}
        assert scores == pytest.approx({ids[1]: 0.75 + 0.25 * middle, ids[2]: 0.25, ids[0]: 0.0}, abs=1e-6)
        client.collections.delete(name)

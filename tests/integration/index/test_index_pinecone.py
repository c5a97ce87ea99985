"""What is Pinecone's own: its limits, its names, its namespaces and its eventual consistency.

Every test runs the real ``pinecone`` SDK against the local peer (``tests/peers/pinecone_server.py``),
which keeps Pinecone's rules (40 KB of metadata per record, 2 MB per request, no nulls, lowercase index
names) and, when told, lags its reads behind its writes.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragstream.config import Settings
from ragstream.errors import ConfigError, DimensionMismatch, IndexUnavailable
from ragstream.index import (
    LexicalQuery,
    Point,
    SearchFilter,
    SparseVector,
    chunk_metadata,
    open_index,
    point_id,
)
from ragstream.index.pinecone import METADATA_LIMIT, PineconeIndex, index_name, to_pinecone_filter
from ragstream.ingest import Pipeline
from tests.peers.pinecone_server import PineconeServer, matches_filter
from tests.support.backends import free_port

DIM = 8
SOURCE = "s3://docs/handbook/leave.md"


def unit(seed: str) -> list[float]:
    rng = random.Random(seed)
    v = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def point(i: int, *, text: str = "", source: str = SOURCE, version: str = "v1", **extra: Any) -> Point:
    return Point(
        id=point_id(source, version, i),
        vector=unit(f"{source}{version}{i}"),
        text=text or f"chunk {i}",
        metadata=chunk_metadata(source=source, version=version, chunk_index=i, extra=extra),
    )


@pytest.fixture
def peer() -> Iterator[PineconeServer]:
    with PineconeServer() as server:
        yield server


def settings(peer: PineconeServer, tmp_path: Path, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "home": tmp_path / "home",
        "collection": "handbook",
        "index": "pinecone",
        "index_url": peer.url,
        "index_api_key": peer.api_key,
    }
    return Settings(**{**base, **extra})


def open_pinecone(peer: PineconeServer, tmp_path: Path, **extra: Any) -> PineconeIndex:
    index = open_index(settings(peer, tmp_path, **extra))
    assert isinstance(index, PineconeIndex)
    return index


# -- names and settings -----------------------------------------------------------------------------------


def test_collection_names_map_to_pinecone_index_names_deterministically(
    peer: PineconeServer, tmp_path: Path
) -> None:
    assert index_name("handbook") == "handbook"  # already valid: as is
    mapped = {c: index_name(c) for c in ("My_Docs", "my-docs", "my docs", "-x-", "Ünïcode", "a" * 60)}
    for collection, name in mapped.items():
        assert len(name) <= 45 and name == name.lower() and name[0].isalnum() and name[-1].isalnum()
        assert all(ch.isalnum() or ch == "-" for ch in name) and name.isascii()
        assert index_name(collection) == name  # the same every time
    assert len(set(mapped.values())) == len(mapped)  # My_Docs and my-docs never share an index
    # the peer refuses what Pinecone refuses, and takes the mapped name
    index = open_pinecone(peer, tmp_path, collection="My_Docs")
    index.ensure_collection(DIM)
    assert [m["name"] for m in peer.control("GET", ["indexes"], None)[1]["indexes"]] == [mapped["My_Docs"]]
    index.close()


def test_pinecone_needs_its_key_and_reports_an_unreachable_or_refusing_service(
    peer: PineconeServer, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="RAGSTREAM_INDEX_API_KEY"):
        open_index(Settings(home=tmp_path, index="pinecone"))
    wrong = open_index(settings(peer, tmp_path, index_api_key="pcsk-wrong"))
    with pytest.raises(IndexUnavailable, match="Invalid API Key"):
        wrong.ping()
    # nothing listens there: transient, the caller retries
    down = open_pinecone(peer, tmp_path, index_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(IndexUnavailable):
        down.ping()
    with pytest.raises(IndexUnavailable):
        down.search(unit("q"), limit=1)
    down.close()
    wrong.close()


def test_the_sdk_retries_an_outage_and_ragstream_does_not_multiply_its_tries(
    peer: PineconeServer, tmp_path: Path
) -> None:
    # GIVEN an index, and a data plane that answers 503 to the next two requests
    index = open_pinecone(peer, tmp_path)
    index.ensure_collection(DIM)
    peer.unavailable = 2
    upserts = [("POST", f"/_data/{index.index_name}/vectors/upsert")]
    # WHEN points are written THEN the pinecone SDK tried again until Pinecone answered
    assert index.upsert([point(0), point(1)]) == 2
    assert [r for r in peer.requests if r[1].endswith("/vectors/upsert")] == upserts * 3
    peer.settle()
    assert set(peer.stored(index.index_name)) == {point(0).id, point(1).id}
    # AND an outage that outlasts the SDK's four tries is IndexUnavailable after those four alone
    peer.requests.clear()
    peer.unavailable = 100
    with pytest.raises(IndexUnavailable):
        index.upsert([point(2)])
    assert [r for r in peer.requests if r[1].endswith("/vectors/upsert")] == upserts * 4
    index.close()


def test_the_index_location_and_namespace_are_part_of_the_fingerprint(
    peer: PineconeServer, tmp_path: Path
) -> None:
    a = settings(peer, tmp_path)
    b = settings(peer, tmp_path, pinecone_namespace="team-a")
    public = Settings(home=tmp_path, index="pinecone", index_api_key="k")
    assert a.index_identity == f"pinecone:{peer.url}#handbook"
    assert b.index_identity == f"pinecone:{peer.url}/team-a#handbook"
    assert public.index_location == "https://api.pinecone.io"
    assert len({a.fingerprint, b.fingerprint, public.fingerprint}) == 3


# -- the collection -----------------------------------------------------------------------------------------


def test_an_index_of_another_metric_is_refused(peer: PineconeServer, tmp_path: Path) -> None:
    index = open_pinecone(peer, tmp_path)
    # GIVEN an index of that name made by someone else, with dotproduct
    index.client.indexes.create(name="handbook", dimension=DIM, metric="dotproduct")
    # THEN ragstream refuses it rather than giving dot products as cosines
    with pytest.raises(DimensionMismatch, match="metric 'dotproduct'"):
        index.ensure_collection(DIM)
    index.close()


def test_a_new_index_is_serverless_where_the_settings_say(peer: PineconeServer, tmp_path: Path) -> None:
    index = open_pinecone(peer, tmp_path, pinecone_cloud="aws", pinecone_region="eu-west-1")
    index.ensure_collection(DIM)
    model = index.client.indexes.describe("handbook")
    assert (model.deployment.cloud, model.deployment.region) == ("aws", "eu-west-1")
    # dotproduct with a sparse field: hybrid-ready; vectors go in at unit length, so dot product = cosine
    assert model.schema.fields["_values"].metric == "dotproduct" and "_sparse_values" in model.schema.fields
    assert model.status.ready
    bad = open_pinecone(peer, tmp_path, collection="other", pinecone_region="mars-1")
    with pytest.raises(Exception, match="Invalid cloud/region"):
        bad.ensure_collection(DIM)
    index.close()
    bad.close()


# -- Pinecone's limits --------------------------------------------------------------------------------------


def test_a_chunk_over_40kb_of_metadata_keeps_its_vector_and_a_flagged_prefix_of_its_text(
    peer: PineconeServer, tmp_path: Path
) -> None:
    index = open_pinecone(peer, tmp_path)
    index.ensure_collection(DIM)
    # GIVEN a chunk of 100 000 characters, multi-byte and with characters JSON escapes
    text = ('Ünïcödé "quoted" line\n' * 5000)[:100_000]
    big, small = point(0, text=text), point(1)
    index.upsert([big, small])
    # THEN it is written, found by its vector, its text a prefix of the whole, flagged with its length
    hit = index.search(big.vector, limit=1)[0]
    assert hit.id == big.id and text.startswith(hit.text) and 30_000 < len(hit.text) < len(text)
    assert hit.metadata["text_truncated"] is True and hit.metadata["text_chars"] == 100_000
    # AND the record is within Pinecone's limit as the peer measures it; the small chunk is whole
    stored = peer.stored("handbook")
    assert len(
        __import__("json").dumps(stored[big.id], ensure_ascii=False, separators=(",", ":")).encode()
    ) <= (METADATA_LIMIT)
    assert stored[small.id]["text"] == "chunk 1" and "text_truncated" not in stored[small.id]
    index.close()


def test_oversized_extractor_metadata_is_dropped_by_name_and_nulls_never_reach_pinecone(
    peer: PineconeServer, tmp_path: Path
) -> None:
    index = open_pinecone(peer, tmp_path)
    index.ensure_collection(DIM)
    p = point(0, links=["https://example.com/" + "x" * 100] * 500, team="people", note=None)
    index.upsert([p])
    hit = index.search(p.vector, limit=1)[0]
    assert hit.metadata["metadata_dropped"] == ["links"] and hit.metadata["team"] == "people"
    assert hit.metadata["source"] == SOURCE and hit.text == "chunk 0"
    assert "note" not in hit.metadata and "page" not in hit.metadata  # nulls dropped, as the contract says
    # the peer refuses a null as Pinecone does: the store really has to drop them
    data = index.client.index(host=index.client.indexes.describe("handbook").host)
    with pytest.raises(Exception, match="got 'null' for field 'note'"):
        data.upsert(vectors=[{"id": "x", "values": unit("x"), "metadata": {"note": None}}])
    with pytest.raises(Exception, match="exceeds the limit of 40960 bytes"):
        data.upsert(vectors=[{"id": "x", "values": unit("x"), "metadata": {"t": "x" * 41_000}}])
    data.close()
    index.close()


def test_large_upserts_are_split_under_pinecone_request_limits(peer: PineconeServer, tmp_path: Path) -> None:
    index = open_pinecone(peer, tmp_path)
    index.ensure_collection(DIM)
    # GIVEN 1200 points of about 30 KB of text each: 36 MB, and more than 1000 records
    pts = [point(i, text=f"{i} " + "word " * 6000) for i in range(1200)]
    before = sum(1 for r in peer.requests if r[1].endswith("/vectors/upsert"))
    assert index.upsert(pts) == 1200
    upserts = sum(1 for r in peer.requests if r[1].endswith("/vectors/upsert")) - before
    # THEN every request was taken (the peer refuses 2 MB and 1000 records) and every point is there
    assert upserts >= 36 * 1024 * 1024 // (2 * 1024 * 1024)
    assert index.count() == 1200 and index.count(SOURCE, "v1") == 1200
    index.close()


# -- namespaces ---------------------------------------------------------------------------------------------


def test_namespaces_of_one_index_are_isolated(peer: PineconeServer, tmp_path: Path) -> None:
    a = open_pinecone(peer, tmp_path, pinecone_namespace="team-a")
    b = open_pinecone(peer, tmp_path, pinecone_namespace="team-b")
    default = open_pinecone(peer, tmp_path)
    for index in (a, b, default):
        index.ensure_collection(DIM)
    a.upsert([point(i) for i in range(3)])
    b.upsert([point(i, source="s3://docs/other.md") for i in range(2)])
    assert (a.count(), b.count(), default.count()) == (3, 2, 0)
    assert a.versions() == {(SOURCE, "v1"): 3} and b.versions() == {("s3://docs/other.md", "v1"): 2}
    assert {h.source for h in b.search(unit("q"), limit=10)} == {"s3://docs/other.md"}
    assert default.search(unit("q"), limit=10) == []
    # a delete in one namespace leaves the other alone, even for the same source
    b.upsert([point(9)])
    a.delete_source(SOURCE)
    assert a.count() == 0 and b.count(SOURCE) == 1 and b.count() == 3
    # a namespace never written to does not exist (Pinecone answers 404): nothing to delete, no error
    default.delete_source(SOURCE)
    assert b.count() == 3
    for index in (a, b, default):
        index.close()


# -- the filter language ----------------------------------------------------------------------------------


def test_filters_translate_to_pinecone_terms_the_peer_evaluates_like_the_reference() -> None:
    # GIVEN metadata as Pinecone keeps it (numbers as floats, folders as a list of strings)
    meta = chunk_metadata(
        source=SOURCE, version="v1", chunk_index=0, content_type="text/markdown", extra={"team": "people"}
    )
    stored = {
        k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
        for k, v in meta.items()
        if v is not None
    }
    cases = [
        SearchFilter(source_prefix="s3://docs/handbook/"),
        SearchFilter(source_prefix="s3://docs/handbook"),
        SearchFilter(source_prefix="s3://docs/hand"),
        SearchFilter(source_prefix=SOURCE, content_type="text/markdown"),
        SearchFilter(allowed_prefixes=["s3://docs/finance/", SOURCE]),
        SearchFilter(allowed_prefixes=["s3://docs/finance/"]),
        SearchFilter(metadata={"team": "people"}),
        SearchFilter(metadata={"team": "sales"}),
        SearchFilter(content_type="application/pdf"),
    ]
    for flt in cases:
        assert matches_filter(to_pinecone_filter(flt), stored) == flt.matches(meta), flt
    assert to_pinecone_filter(None) is None


# -- eventual consistency -----------------------------------------------------------------------------------


def test_reads_lag_writes_and_settle(tmp_path: Path) -> None:
    with PineconeServer(lag=1.0) as peer:
        index = open_pinecone(peer, tmp_path)
        index.ensure_collection(DIM)
        assert not index.capabilities.read_your_writes and not index.capabilities.exact_counts
        index.upsert([point(i) for i in range(4)])
        # right after the write, reads do not see it yet (the peer lags like Pinecone's freshness)
        assert index.count() == 0 and index.versions() == {} and index.search(unit("q"), limit=4) == []
        time.sleep(1.2)
        assert index.count() == 4 and index.versions() == {(SOURCE, "v1"): 4}
        index.delete_source(SOURCE)
        assert index.count(SOURCE) == 4  # the delete is not visible yet
        time.sleep(1.2)
        assert index.count(SOURCE) == 0
        index.close()


def test_the_pipeline_on_a_lagging_pinecone_replaces_once_and_reconcile_keeps_its_hands_off(
    tmp_path: Path, embedder: Any
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nEmployees receive 25 days of paid annual leave per year.\n")
    with PineconeServer(lag=0.5) as peer:
        pipeline = Pipeline.from_settings(
            settings(peer, tmp_path, embedding_provider="local"), embedder=embedder
        )
        try:
            assert [o.status for o in pipeline.sync(str(docs))] == ["indexed"]
            # WHEN the document changes while the store still lags
            (docs / "leave.md").write_text("# Leave\n\nEmployees receive 30 days of paid leave.\n\nMore.\n")
            upserts = sum(1 for r in peer.requests if r[1].endswith("/vectors/upsert"))
            assert [o.status for o in pipeline.sync(str(docs))] == ["indexed"]
            # THEN its points were written once: a lagging count is not taken for vanished points
            assert sum(1 for r in peer.requests if r[1].endswith("/vectors/upsert")) == upserts + 1
            # AND reconcile right away, on a tally that still lags, re-indexes nothing
            outcomes = pipeline.sync(str(docs), repair=True)
            assert {o.status for o in outcomes} == {"skipped"}
            # AND once settled, only the new version is in the index
            peer.settle()
            source = f"file://{docs.resolve()}/leave.md"
            versions = pipeline.index.versions()
            assert list(versions) == [(source, pipeline.ledger.get(source).version)]
        finally:
            pipeline.index.close()


# -- hybrid (sparse-dense) --------------------------------------------------------------------------------


def test_scores_are_cosines_whatever_the_length_of_the_vectors(peer: PineconeServer, tmp_path: Path) -> None:
    index = open_pinecone(peer, tmp_path)
    index.ensure_collection(DIM)
    p = point(0)
    p.vector = [3.0 * x for x in p.vector]  # not unit length: a dot product would be 9
    index.upsert([p])
    hit = index.search([0.5 * x for x in p.vector], limit=1)[0]
    assert hit.score == pytest.approx(1.0, abs=1e-6)
    index.close()


def hybrid_points() -> tuple[list[float], Point, Point]:
    """A query, a chunk near it with none of its terms, and a farther chunk holding all of them."""
    query = unit("query")
    near, lexical = point(0, text="near"), point(1, text="lexical", source="s3://docs/finance/tax.md")
    near.vector = [0.95 * q + 0.05 * u for q, u in zip(query, unit("n"), strict=True)]
    lexical.vector = [0.6 * q + 0.4 * u for q, u in zip(query, unit("l"), strict=True)]
    near.sparse = SparseVector(indices=[1, 2], values=[1.0, 1.0])
    lexical.sparse = SparseVector(indices=[7, 8, 9], values=[1.2, 1.0, 1.0])
    return query, near, lexical


def test_hybrid_search_fuses_dense_and_sparse_in_pinecone_under_the_filter(
    peer: PineconeServer, tmp_path: Path
) -> None:
    index = open_pinecone(peer, tmp_path)
    index.ensure_collection(DIM)
    assert index.capabilities.hybrid
    query, near, lexical = hybrid_points()
    index.upsert([near, lexical])
    assert peer.stored("handbook")[near.id]  # written with its sparse values (the peer checked them)
    terms = LexicalQuery(text="tax rules", sparse=SparseVector(indices=[7, 8], values=[1.0, 1.0]))
    # dense alone: the near chunk first, by cosine
    dense = index.search(query, limit=2)
    assert [h.id for h in dense] == [near.id, lexical.id] and dense[0].score <= 1.0
    # hybrid: the chunk with the query's terms overtakes it; the score is the fused one
    fused = index.search(query, limit=2, lexical=terms)
    assert [h.id for h in fused] == [lexical.id, near.id]
    # fused by reciprocal rank: the near chunk holds none of the terms, so only its dense rank counts
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 60) and fused[1].score == pytest.approx(1 / 60)
    # the filter still restricts the candidates
    only = index.search(query, limit=2, lexical=terms, flt=SearchFilter(source_prefix="s3://docs/handbook/"))
    assert [h.id for h in only] == [near.id]
    index.close()


def test_a_cosine_index_is_searched_dense_only(peer: PineconeServer, tmp_path: Path) -> None:
    index = open_pinecone(peer, tmp_path)
    # GIVEN an index made for dense search only (metric cosine, no sparse field)
    index.client.indexes.create(name="handbook", dimension=DIM, metric="cosine")
    index.ensure_collection(DIM)
    query, near, lexical = hybrid_points()
    # THEN points are written without their sparse values (the peer refuses them there) ...
    index.upsert([near, lexical])
    # ... and lexical is ignored: the ranking is the dense one, scores cosines
    terms = LexicalQuery(text="tax rules", sparse=SparseVector(indices=[7, 8], values=[1.0, 1.0]))
    hits = index.search(query, limit=2, lexical=terms)
    assert [h.id for h in hits] == [near.id, lexical.id] and hits[0].score == pytest.approx(
        index.search(query, limit=1)[0].score
    )
    index.close()

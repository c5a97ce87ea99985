"""The Qdrant Edge index: what it keeps across a reopen, and reads from many threads at once."""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path

import pytest

from ragstream.errors import ConfigError, DimensionMismatch
from ragstream.index import Point, SearchFilter, chunk_metadata, point_id
from ragstream.index.edge import EdgeIndex, EdgeStore

pytest.importorskip("qdrant_edge")

DIM = 16


def _vector(rng: random.Random) -> list[float]:
    v = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _points(source: str, version: str, n: int, seed: int = 0) -> list[Point]:
    rng = random.Random(f"{source}|{version}|{seed}")
    return [
        Point(
            id=point_id(source, version, i),
            vector=_vector(rng),
            text=f"chunk {i} of {source}",
            metadata=chunk_metadata(
                source=source,
                version=version,
                chunk_index=i,
                content_type="application/pdf",
                extra={"team": "people"},
            ),
        )
        for i in range(n)
    ]


def _open(folder: Path, *, indexing_threshold_kb: int | None = None, **kwargs: int) -> EdgeIndex:
    return EdgeIndex(EdgeStore(folder, indexing_threshold_kb=indexing_threshold_kb), "test", **kwargs)


def test_everything_survives_a_close_and_reopen(tmp_path: Path) -> None:
    # GIVEN an index with two sources, one of them replaced by a new version
    index = _open(tmp_path)
    index.ensure_collection(DIM)
    index.upsert(_points("s3://docs/a/one.pdf", "v1", 30) + _points("s3://docs/b/two.pdf", "v1", 20))
    index.upsert(_points("s3://docs/a/one.pdf", "v2", 25))
    index.delete_source("s3://docs/a/one.pdf", keep_version="v2")
    query = _points("s3://docs/b/two.pdf", "v1", 20)[7].vector
    before = [(p.id, round(p.score, 5)) for p in index.search(query, limit=5)]
    index.close()

    # WHEN a new process opens the folder (a new store), without calling ensure_collection first
    reopened = _open(tmp_path)

    # THEN points, versions, payload, filters and search answers are those written
    assert reopened.exists()
    assert reopened.count() == 45
    assert reopened.versions() == {("s3://docs/a/one.pdf", "v2"): 25, ("s3://docs/b/two.pdf", "v1"): 20}
    hits = reopened.search(query, limit=5)
    assert [(p.id, round(p.score, 5)) for p in hits] == before
    assert hits[0].id == point_id("s3://docs/b/two.pdf", "v1", 7)
    assert hits[0].text == "chunk 7 of s3://docs/b/two.pdf"
    only_a = reopened.search(query, limit=50, flt=SearchFilter(source_prefix="s3://docs/a/"))
    assert {p.source for p in only_a} == {"s3://docs/a/one.pdf"}
    # AND the dimension is still checked against what is on disk
    with pytest.raises(DimensionMismatch, match=f"dimension {DIM}, the embedder gives 384"):
        reopened.ensure_collection(384)
    reopened.close()


def test_indexed_segments_answer_like_the_unindexed_ones(tmp_path: Path) -> None:
    # GIVEN an index that builds its HNSW index after a few hundred points
    index = _open(tmp_path, indexing_threshold_kb=10, batch_size=100, optimize_after=300)
    index.ensure_collection(DIM)
    index.upsert(_points("s3://docs/a/one.pdf", "v1", 400) + _points("s3://docs/b/two.pdf", "v1", 200))
    shard = index.store.open("test")
    assert shard is not None and shard.info().indexed_vectors_count == 600
    # WHEN it is searched, counted, filtered and a source deleted
    target = _points("s3://docs/b/two.pdf", "v1", 200)[42]
    hits = index.search(target.vector, limit=3)
    filtered = index.search(target.vector, limit=10, flt=SearchFilter(source_prefix="s3://docs/a/"))
    index.delete_source("s3://docs/a/one.pdf")
    # THEN the answers are exact
    assert hits[0].id == target.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert len(filtered) == 10
    assert all(p.source == "s3://docs/a/one.pdf" for p in filtered)
    assert index.count() == 200 and index.count("s3://docs/a/one.pdf") == 0
    index.close()


def test_many_threads_read_while_one_writes(tmp_path: Path) -> None:
    # GIVEN an index with one source
    index = _open(tmp_path, batch_size=50)
    index.ensure_collection(DIM)
    index.upsert(_points("s3://docs/a/one.pdf", "v1", 200))
    errors: list[BaseException] = []
    only_a = SearchFilter(source_prefix="s3://docs/a/")

    def read(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(100):
                hits = index.search(_vector(rng), limit=5, flt=only_a)
                assert len(hits) == 5
                assert all(p.source == "s3://docs/a/one.pdf" for p in hits)
                assert index.count("s3://docs/a/one.pdf") == 200
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def write() -> None:
        try:
            for n in range(10):
                index.upsert(_points(f"s3://docs/b/{n}.pdf", "v1", 30))
        except BaseException as exc:
            errors.append(exc)

    # WHEN four threads search and count while a fifth upserts other sources
    threads = [threading.Thread(target=read, args=(seed,)) for seed in range(4)]
    threads.append(threading.Thread(target=write))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # THEN every read saw a consistent index and every write landed
    assert errors == []
    assert index.count() == 200 + 10 * 30
    index.close()


def test_two_indexes_of_one_store_share_the_shard(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    writer, reader = EdgeIndex(store, "test"), EdgeIndex(store, "test")
    writer.ensure_collection(DIM)
    writer.upsert(_points("s3://docs/a/one.pdf", "v1", 3))
    assert reader.count() == 3
    store.close()


def test_a_folder_open_elsewhere_is_refused_with_advice(tmp_path: Path) -> None:
    first = _open(tmp_path)
    first.ensure_collection(DIM)
    with pytest.raises(ConfigError, match="open in another process"):
        _open(tmp_path).count()
    first.close()

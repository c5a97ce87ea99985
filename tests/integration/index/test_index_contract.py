"""The VectorIndex contract, checked against every store (see ``backends.py``).

A store that declares ``read_your_writes=False`` (Pinecone: eventually consistent reads, approximate
statistics) is given time: each read that follows a write goes through :func:`eventually`, which
reads once on every other store and, on such a store, reads again until the expected value shows up
(or :data:`SETTLE_SECONDS` pass, and the assertion then fails on the last value read). How each
check behaves on such a store:

- ``count``/``versions`` after upserts and deletes: polled until they agree (Pinecone's statistics
  and fetch-by-metadata catch up with the writes);
- ``search`` after a write: ``load`` waits until the store counts every point it wrote, then searches
  read it; a replaced text is polled for;
- ``DimensionMismatch``, empty reads before the collection, filters: no wait (no write to see).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from ragstream.errors import DimensionMismatch
from ragstream.index import (
    Capabilities,
    LexicalQuery,
    Point,
    SearchFilter,
    SparseVector,
    VectorIndex,
)
from ragstream.lexical import encode_document
from ragstream.query import lexical_query
from tests.support.backends import Backend
from tests.support.points import DIM, points, unit

#: How long an eventually consistent store may take to show a write.
SETTLE_SECONDS = 60.0

T = TypeVar("T")


def eventually(index: VectorIndex, read: Callable[[], T], expected: Any) -> T:
    """``read()`` once when the store reads its writes; otherwise again until it gives ``expected``."""
    value = read()
    if index.capabilities.read_your_writes:
        return value
    deadline = time.monotonic() + SETTLE_SECONDS
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        value = read()
    return value


LEAVE, REPORT, OTHER = (
    "s3://docs/handbook/leave.md",
    "s3://docs/finance/report.pdf",
    "s3://docs/finance-old.pdf",
)


def load(index: VectorIndex) -> dict[str, list[Point]]:
    index.ensure_collection(DIM)
    written = {
        LEAVE: points(LEAVE, "v1", 4, content_type="text/markdown"),
        REPORT: points(REPORT, "v1", 5, team="finance"),
        OTHER: points(OTHER, "v1", 3, team="finance"),
    }
    for pts in written.values():
        assert index.upsert(pts) == len(pts)
    eventually(index, index.count, 12)
    return written


def without_nulls(meta: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in meta.items() if v is not None}


# -- the collection ------------------------------------------------------------------------------------


def test_a_new_store_answers_as_an_empty_index(backend: Backend) -> None:
    index = backend.open()
    assert isinstance(index, VectorIndex) and isinstance(index.capabilities, Capabilities)
    assert not index.exists()
    assert index.search([1.0] + [0.0] * (DIM - 1), limit=3) == []
    assert index.count() == 0 and index.count(LEAVE) == 0
    assert index.versions() == {}
    index.delete_source(LEAVE)  # no collection yet: nothing to do, no error
    index.ping()


def test_ensure_collection_is_idempotent_and_refuses_another_dimension(backend: Backend) -> None:
    index = backend.open()
    index.ensure_collection(DIM)
    index.ensure_collection(DIM)
    assert index.exists()
    index.upsert(points(LEAVE, "v1", 2))
    other = backend.open(index.collection)
    assert other.exists() and eventually(other, other.count, 2) == 2
    with pytest.raises(DimensionMismatch, match=f"dimension {DIM}, the embedder gives {DIM * 2}"):
        other.ensure_collection(DIM * 2)


# -- writes ---------------------------------------------------------------------------------------------


def test_upsert_is_idempotent_by_id_and_replaces(backend: Backend) -> None:
    index = backend.open()
    load(index)
    load(index)
    assert eventually(index, index.count, 12) == 12
    changed = points(LEAVE, "v1", 1, text="rewritten {i}")
    index.upsert(changed)
    assert eventually(index, lambda: index.count(LEAVE), 4) == 4

    def nearest() -> tuple[str, str]:
        hit = index.search(changed[0].vector, limit=1)[0]
        return hit.id, hit.text

    assert eventually(index, nearest, (changed[0].id, "rewritten 0")) == (changed[0].id, "rewritten 0")


def test_delete_a_source_all_but_one_version_or_one_version(backend: Backend) -> None:
    index = backend.open()
    load(index)
    index.upsert(points(LEAVE, "v2", 2))
    assert eventually(index, lambda: index.count(LEAVE), 6) == 6 and index.count(LEAVE, "v2") == 2
    # a source except one version
    index.delete_source(LEAVE, keep_version="v2")
    assert eventually(index, lambda: index.count(LEAVE), 2) == 2 and index.count(LEAVE, "v2") == 2
    # one version only
    index.upsert(points(LEAVE, "v3", 3))
    index.delete_source(LEAVE, only_version="v2")
    assert eventually(index, lambda: index.count(LEAVE), 3) == 3 and index.count(LEAVE, "v3") == 3
    # the whole source; the others untouched
    index.delete_source(LEAVE)
    assert eventually(index, lambda: index.count(LEAVE), 0) == 0
    assert index.count(REPORT) == 5 and index.count(OTHER) == 3 and eventually(index, index.count, 8) == 8


def test_versions_tally_every_source_and_version(backend: Backend) -> None:
    index = backend.open()
    load(index)
    index.upsert(points(LEAVE, "v2", 2))
    expected = {(LEAVE, "v1"): 4, (LEAVE, "v2"): 2, (REPORT, "v1"): 5, (OTHER, "v1"): 3}
    assert eventually(index, index.versions, expected) == expected


# -- search ---------------------------------------------------------------------------------------------


def test_search_returns_neutral_hits_nearest_first(backend: Backend) -> None:
    index = backend.open()
    written = load(index)
    target = written[REPORT][2]
    hits = index.search(target.vector, limit=4)
    assert len(hits) == 4
    assert hits[0].id == target.id and hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].text == target.text
    assert without_nulls(hits[0].metadata) == without_nulls(target.metadata)
    assert hits[0].source == REPORT and hits[0].version == "v1"


#: Each filter with the sources it lets through (over the points of :func:`load`).
FILTERS: list[tuple[SearchFilter, set[str]]] = [
    (SearchFilter(source_prefix="s3://docs/finance/"), {REPORT}),
    (SearchFilter(source_prefix="s3://docs/finance"), {REPORT}),  # the folder of that name
    (SearchFilter(source_prefix=LEAVE), {LEAVE}),  # one exact source
    (SearchFilter(source_prefix="s3://docs/"), {LEAVE, REPORT, OTHER}),
    (SearchFilter(source_prefix="s3://doc"), set()),  # not a folder, not a source
    (SearchFilter(content_type="application/pdf"), {REPORT, OTHER}),
    (SearchFilter(metadata={"team": "finance"}), {REPORT, OTHER}),
    (SearchFilter(metadata={"team": "sales"}), set()),
    (SearchFilter(metadata={"year": 2024, "team": "people"}), {LEAVE}),  # numbers match their text
    (SearchFilter(allowed_prefixes=None), {LEAVE, REPORT, OTHER}),
    (SearchFilter(allowed_prefixes=[]), set()),  # nothing matches
    (SearchFilter(allowed_prefixes=["s3://docs/handbook/"]), {LEAVE}),
    (SearchFilter(allowed_prefixes=["s3://docs/handbook/", OTHER]), {LEAVE, OTHER}),
    (SearchFilter(allowed_prefixes=["s3://docs/finance"]), {REPORT}),
    # ANDed with source_prefix and the other fields
    (SearchFilter(source_prefix="s3://docs/finance/", allowed_prefixes=["s3://docs/handbook/"]), set()),
    (SearchFilter(source_prefix="s3://docs/", allowed_prefixes=["s3://docs/finance/"]), {REPORT}),
    (SearchFilter(source_prefix="s3://docs/", allowed_prefixes=[]), set()),
    (SearchFilter(allowed_prefixes=["s3://docs/"], content_type="text/markdown"), {LEAVE}),
]


def test_filters(backend: Backend) -> None:
    index = backend.open()
    written = load(index)
    everything = [p for pts in written.values() for p in pts]
    for flt, expected in FILTERS:
        hits = index.search(written[LEAVE][0].vector, limit=20, flt=flt)
        shown = flt.model_dump_json(exclude_defaults=True)
        assert {h.source for h in hits} == expected, shown
        # the reference semantics of the filter agree with the store
        assert len(hits) == sum(flt.matches(p.metadata) for p in everything), shown


def test_a_filtered_search_returns_limit_hits_whenever_enough_pass(backend: Backend) -> None:
    # GIVEN 300 points of one folder nearer the query than any of the 10 of another folder
    index = backend.open()
    index.ensure_collection(DIM)
    query = [1.0] + [0.0] * (DIM - 1)
    rng = random.Random(7)
    near = points("s3://docs/near/a.pdf", "v1", 300)
    for p in near:
        p.vector = [0.99, *(x * 0.01 for x in unit(rng)[1:])]
    far = points("s3://docs/far/b.pdf", "v1", 10)
    for p in far:
        p.vector = [-0.5, *unit(rng)[1:]]
    index.upsert(near + far)
    eventually(index, index.count, 310)
    # WHEN searching only the far folder
    hits = index.search(query, limit=5, flt=SearchFilter(source_prefix="s3://docs/far/"))
    # THEN five far points come back (a post-filter of the nearest candidates would find none)
    assert len(hits) == 5 and {h.source for h in hits} == {"s3://docs/far/b.pdf"}


def test_reads_after_a_reopen_see_every_write(backend: Backend) -> None:
    if backend.name == "qdrant-memory":
        pytest.skip("an in-memory index does not outlive its client")
    index = backend.open()
    load(index)
    index.delete_source(OTHER)
    eventually(index, lambda: index.count(OTHER), 0)
    collection = index.collection
    index.close()
    backend.opened.remove(index)
    reopened = backend.open(collection)
    assert reopened.exists()
    assert eventually(reopened, reopened.count, 9) == 9
    assert reopened.versions() == {(LEAVE, "v1"): 4, (REPORT, "v1"): 5}
    target = points(REPORT, "v1", 5)[3]
    assert reopened.search(target.vector, limit=1)[0].id == target.id


# -- hybrid (stores that declare capabilities.hybrid) ---------------------------------------------------

CODE = "ZX-9042"


def hybrid_index(backend: Backend) -> VectorIndex:
    index = backend.open()
    if not index.capabilities.hybrid:
        pytest.skip(f"{backend.name} does not declare capabilities.hybrid: it searches dense only")
    return index


def with_sparse(pts: list[Point]) -> list[Point]:
    """The points with the BM25 vectors of their text, as ingest gives them."""
    for p in pts:
        indices, values = encode_document(p.text)
        p.sparse = SparseVector(indices=indices, values=values)
    return pts


def lexical(text: str) -> LexicalQuery:
    query = lexical_query(text)
    assert query is not None
    return query


def load_hybrid(index: VectorIndex) -> dict[str, list[Point]]:
    """The points of :func:`load` with sparse vectors; one chunk of the report holds an exact code."""
    index.ensure_collection(DIM)
    written = {
        LEAVE: with_sparse(points(LEAVE, "v1", 4, content_type="text/markdown")),
        REPORT: with_sparse(points(REPORT, "v1", 5, team="finance", text="quarterly figures, part {i}")),
        OTHER: with_sparse(points(OTHER, "v1", 3, team="finance")),
    }
    written[REPORT][3].text = f"the invoice {CODE} was paid late"
    with_sparse(written[REPORT])
    for pts in written.values():
        assert index.upsert(pts) == len(pts)
    return written


def test_hybrid_puts_an_exact_term_first_that_dense_ranks_low(backend: Backend) -> None:
    # GIVEN a chunk holding a code, and a query vector nearest to another chunk
    index = hybrid_index(backend)
    written = load_hybrid(index)
    coded = written[REPORT][3]
    dense = index.search(written[LEAVE][0].vector, limit=12)
    assert dense[0].id != coded.id
    # WHEN searching hybrid for the code, THEN its chunk comes first (dense alone ranks it lower)
    hits = index.search(written[LEAVE][0].vector, limit=5, lexical=lexical(f"invoice {CODE}"))
    assert hits[0].id == coded.id
    assert hits[0].text == coded.text and without_nulls(hits[0].metadata) == without_nulls(coded.metadata)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # a query with no term of the index leaves the dense ranking as it was
    unknown = index.search(written[LEAVE][0].vector, limit=5, lexical=lexical("unheard-of words"))
    assert unknown[0].id == dense[0].id


def test_hybrid_honours_filters_and_limit(backend: Backend) -> None:
    index = hybrid_index(backend)
    written = load_hybrid(index)
    everything = [p for pts in written.values() for p in pts]
    query = lexical(f"chunk {CODE} quarterly")
    for flt, expected in FILTERS:
        hits = index.search(written[LEAVE][0].vector, limit=20, flt=flt, lexical=query)
        shown = flt.model_dump_json(exclude_defaults=True)
        assert {h.source for h in hits} == expected, shown
        assert len(hits) == sum(flt.matches(p.metadata) for p in everything), shown
    # the code's chunk is outside the handbook: a handbook search never shows it
    hits = index.search(
        written[LEAVE][0].vector,
        limit=5,
        flt=SearchFilter(source_prefix="s3://docs/handbook/"),
        lexical=query,
    )
    assert hits and all(h.source == LEAVE for h in hits)
    for limit in (1, 3, 7):
        assert len(index.search(written[REPORT][0].vector, limit=limit, lexical=query)) == limit


def test_hybrid_forgets_deleted_points(backend: Backend) -> None:
    index = hybrid_index(backend)
    written = load_hybrid(index)
    index.delete_source(REPORT)
    hits = index.search(written[LEAVE][0].vector, limit=12, lexical=lexical(CODE))
    assert REPORT not in {h.source for h in hits}
    assert len(hits) == 7  # the sparse side lost the report's points too: only the others are left
    # a new version of the source is found by its new terms, not its old ones
    new = with_sparse(points(REPORT, "v2", 2, text="renewed contract {i} for " + CODE))
    index.upsert(new)
    hits = index.search(written[LEAVE][0].vector, limit=3, lexical=lexical(CODE))
    assert hits[0].source == REPORT and hits[0].version == "v2"

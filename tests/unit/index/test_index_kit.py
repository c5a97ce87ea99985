"""The store kit: what every store does alike (the remembered collection, the dimension's refusal and its
advice, a client's HTTP statuses as ours), and the layout's fields for stores with a schema."""

from __future__ import annotations

import pytest

from ragstream.errors import ConfigError, DimensionMismatch, IndexUnavailable
from ragstream.index import chunk_metadata
from ragstream.index.contract import Point
from ragstream.index.kit import (
    Ready,
    all_of,
    any_of,
    batches,
    check_dimension,
    last_of_each,
    missing_collection,
    translate_http_status,
    vector_refused,
)
from ragstream.index.layout import filter_fields, version_key


def test_ready_remembers_a_dimension_until_it_forgets() -> None:
    ready = Ready()
    asked: list[bool] = []
    assert not ready.known(8)
    assert not ready.exists(lambda: asked.append(True))  # asked, and asked again while absent
    assert len(asked) == 1
    ready.remember(8)
    assert ready.known(8) and not ready.known(16)
    assert ready.exists(lambda: asked.append(True)) and len(asked) == 1  # ensured: not asked
    ready.forget()
    assert not ready.known(8) and ready.exists(lambda: True)


def test_a_dimension_mismatch_says_what_to_do() -> None:
    check_dimension("docs", 8, 8)
    with pytest.raises(DimensionMismatch, match="dimension 8, the embedder gives 16: set RAGSTREAM_COLL"):
        check_dimension("docs", 8, 16)
    with pytest.raises(DimensionMismatch, match="not made by ragstream"):
        check_dimension("docs", None, 16)
    refused = vector_refused("vector length 32", "idx", kind="Pinecone index")
    assert isinstance(refused, ConfigError)
    assert str(refused).startswith("vector length 32: Pinecone index 'idx' was made for another embedder")
    assert "delete the Pinecone index and re-ingest" in str(refused)
    assert "call ensure_collection first" in str(missing_collection("docs"))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ConfigError),
        (403, ConfigError),
        (404, ConfigError),
        (422, ConfigError),
        (429, IndexUnavailable),
        (500, IndexUnavailable),
        (503, IndexUnavailable),
    ],
)
def test_http_statuses_become_ours(status: int, kind: type[Exception]) -> None:
    error = translate_http_status(status, "Weaviate", "detail")
    assert type(error) is kind and f"HTTP {status}" in str(error)
    if status in (401, 403):
        assert "RAGSTREAM_INDEX_API_KEY" in str(error)


def test_writes_keep_the_last_of_duplicate_ids_in_batches_and_filters_join() -> None:
    points = [Point(id=i, vector=[1.0], text=t, metadata={}) for i, t in [("a", "1"), ("b", "2"), ("a", "3")]]
    assert [(p.id, p.text) for p in last_of_each(points)] == [("a", "3"), ("b", "2")]
    assert [list(b) for b in batches([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert all_of([], list) is None and all_of([1], list) == 1 and all_of([1, 2], sum) == 3
    assert any_of([{"a": 1}], lambda t: {"$or": t}) == {"a": 1}


def test_filter_fields_are_text_and_folders_a_list() -> None:
    meta = chunk_metadata(source="s3://b/a/c.pdf", version="v1", chunk_index=0)
    assert filter_fields(meta) == {
        "source": "s3://b/a/c.pdf",
        "version": "v1",
        "content_type": "",
        "folders": ["s3://b/", "s3://b/a/"],
    }
    assert version_key({"source": "s", "version": 3}) == ("s", "3") and version_key({}) == ("", "")

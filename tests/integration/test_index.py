"""The Qdrant index: layout compatible with LangChain, replace and delete by source, filters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from qdrant_client import QdrantClient

from ragstream.embeddings import LocalEmbeddings
from ragstream.errors import DimensionMismatch
from ragstream.index import Point, QdrantIndex, SearchFilter, point_id
from ragstream.index.qdrant import folders_of

TEXTS = {
    "s3://docs/handbook/leave.md": [
        "Employees receive 25 days of paid annual leave.",
        "Sick leave is unlimited.",
    ],
    "s3://docs/finance/report.pdf": ["Revenue in Q3 was 18.4 million EUR.", "Gross margin improved to 71%."],
}


@pytest.fixture(scope="module")
def embedder() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture(params=["memory", "disk", "edge"])
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QdrantIndex]:
    if request.param == "edge":
        if request.node.originalname == "test_langchain_vector_store_reads_our_collection":
            pytest.skip("LangChain reads a Qdrant collection through qdrant-client; an Edge shard has none")
        from ragstream.index.edge import EdgeIndex, EdgeStore

        edge = EdgeIndex(EdgeStore(tmp_path_factory.mktemp("edge")), "test", batch_size=3)
        yield edge  # type: ignore[misc]  # same public methods as QdrantIndex
        edge.close()
        return
    if request.param == "memory":
        client = QdrantClient(":memory:")
    else:
        client = QdrantClient(path=str(tmp_path_factory.mktemp("qdrant")))
    idx = QdrantIndex(client, "test", batch_size=3)
    yield idx
    idx.close()


def _points(embedder: LocalEmbeddings, source: str, version: str, texts: list[str]) -> list[Point]:
    vectors = embedder.embed_documents(texts)
    content_type = "application/pdf" if source.endswith(".pdf") else "text/markdown"
    return [
        Point(
            id=point_id(source, version, i),
            vector=v,
            text=t,
            metadata={
                "source": source,
                "version": version,
                "chunk_index": i,
                "page": i + 1,
                "content_type": content_type,
                "folders": folders_of(source),
                "team": "people",
            },
        )
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]


def _load(index: QdrantIndex, embedder: LocalEmbeddings) -> None:
    index.ensure_collection(384)
    for source, texts in TEXTS.items():
        index.upsert(_points(embedder, source, "v1", texts))


def test_langchain_vector_store_reads_our_collection(index: QdrantIndex, embedder: LocalEmbeddings) -> None:
    from langchain_qdrant import QdrantVectorStore

    # GIVEN chunks written by ragstream
    _load(index, embedder)
    # WHEN a LangChain user opens the collection as it is
    store = QdrantVectorStore(
        client=index.client, collection_name="test", embedding=embedder, vector_name="dense"
    )
    docs = store.similarity_search("how many vacation days?", k=1)
    # THEN they find our chunk with its text and metadata
    assert docs[0].page_content == "Employees receive 25 days of paid annual leave."
    assert docs[0].metadata["source"] == "s3://docs/handbook/leave.md"
    assert docs[0].metadata["page"] == 1


def test_point_ids_are_deterministic_so_rewrites_do_not_duplicate(
    index: QdrantIndex, embedder: LocalEmbeddings
) -> None:
    _load(index, embedder)
    _load(index, embedder)
    assert index.count() == 4
    assert point_id("s3://a/b", "v", 0) == point_id("s3://a/b", "v", 0) != point_id("s3://a/b", "v", 1)


def test_replace_keeps_only_the_new_version(index: QdrantIndex, embedder: LocalEmbeddings) -> None:
    _load(index, embedder)
    source = "s3://docs/handbook/leave.md"
    index.upsert(_points(embedder, source, "v2", ["Employees receive 30 days of leave."]))
    assert index.count(source) == 3  # both versions are visible until the old one is dropped
    index.delete_source(source, keep_version="v2")
    assert index.count(source) == 1 and index.count(source, "v2") == 1
    assert index.count("s3://docs/finance/report.pdf") == 2  # other sources untouched
    index.delete_source(source)
    assert index.count(source) == 0


def test_filters_by_folder_type_and_user_metadata(index: QdrantIndex, embedder: LocalEmbeddings) -> None:
    _load(index, embedder)
    q = embedder.embed_query("revenue and leave")

    def sources(flt: SearchFilter) -> set[str]:
        return {p.payload["metadata"]["source"] for p in index.search(q, limit=10, flt=flt)}

    assert sources(SearchFilter(source_prefix="s3://docs/finance/")) == {"s3://docs/finance/report.pdf"}
    assert sources(SearchFilter(source_prefix="s3://docs/finance")) == {"s3://docs/finance/report.pdf"}
    assert sources(SearchFilter(source_prefix="s3://docs/handbook/leave.md")) == {
        "s3://docs/handbook/leave.md"
    }
    assert sources(SearchFilter(content_type="application/pdf")) == {"s3://docs/finance/report.pdf"}
    assert sources(SearchFilter(metadata={"team": "people"})) == set(TEXTS)
    assert sources(SearchFilter(metadata={"team": "sales"})) == set()
    assert sources(SearchFilter(source_prefix="s3://doc")) == set()  # not a folder, not a source


def test_allowed_prefixes_are_one_or_anded_with_the_rest(
    index: QdrantIndex, embedder: LocalEmbeddings
) -> None:
    _load(index, embedder)
    q = embedder.embed_query("revenue and leave")

    def sources(flt: SearchFilter) -> set[str]:
        return {p.payload["metadata"]["source"] for p in index.search(q, limit=10, flt=flt)}

    finance, leave = "s3://docs/finance/report.pdf", "s3://docs/handbook/leave.md"
    assert sources(SearchFilter(allowed_prefixes=None)) == {finance, leave}
    assert sources(SearchFilter(allowed_prefixes=[])) == set()  # nothing allowed, nothing found
    assert sources(SearchFilter(allowed_prefixes=["s3://docs/finance/"])) == {finance}
    assert sources(SearchFilter(allowed_prefixes=["s3://docs/finance"])) == {
        finance
    }  # the folder of that name
    assert sources(SearchFilter(allowed_prefixes=[leave, "s3://docs/finance/"])) == {finance, leave}
    assert sources(SearchFilter(allowed_prefixes=["s3://docs/fin", "s3://doc"])) == set()
    # ANDed with the request's own filter: it narrows, never widens
    both = ["s3://docs/finance/"]
    assert sources(SearchFilter(source_prefix="s3://docs/", allowed_prefixes=both)) == {finance}
    assert sources(SearchFilter(source_prefix=leave, allowed_prefixes=both)) == set()
    assert sources(SearchFilter(content_type="text/markdown", allowed_prefixes=both)) == set()


def test_a_collection_of_another_dimension_is_refused_with_advice(index: QdrantIndex) -> None:
    index.ensure_collection(384)
    other = QdrantIndex(index.client, "test")
    with pytest.raises(DimensionMismatch, match="dimension 384, the embedder gives 1536"):
        other.ensure_collection(1536)


def test_an_empty_index_answers_empty(index: QdrantIndex, embedder: LocalEmbeddings) -> None:
    assert index.search(embedder.embed_query("x"), limit=3) == []
    assert index.count("s3://nothing") == 0
    index.delete_source("s3://nothing")  # no collection yet: nothing to do, no error

"""The Qdrant store: its collection is LangChain's Qdrant layout, readable by ``QdrantVectorStore``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from qdrant_client import QdrantClient

from ragstream.embeddings import LocalEmbeddings
from ragstream.index import Point, chunk_metadata, point_id
from ragstream.index.qdrant import QdrantIndex

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


@pytest.fixture(params=["memory", "disk"])
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QdrantIndex]:
    if request.param == "memory":
        client = QdrantClient(":memory:")
    else:
        client = QdrantClient(path=str(tmp_path_factory.mktemp("qdrant")))
    idx = QdrantIndex(client, "test", batch_size=3)
    yield idx
    idx.close()


def test_langchain_vector_store_reads_our_collection(index: QdrantIndex, embedder: LocalEmbeddings) -> None:
    from langchain_qdrant import QdrantVectorStore

    from ragstream.integrations.langchain import RagstreamEmbeddings

    # GIVEN chunks written by ragstream
    index.ensure_collection(384)
    for source, texts in TEXTS.items():
        vectors = embedder.embed_documents(texts)
        index.upsert(
            [
                Point(
                    id=point_id(source, "v1", i),
                    vector=v,
                    text=t,
                    metadata=chunk_metadata(source=source, version="v1", chunk_index=i, page=i + 1),
                )
                for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
            ]
        )
    # WHEN a LangChain user opens the collection as it is
    store = QdrantVectorStore(
        client=index.client,
        collection_name="test",
        embedding=RagstreamEmbeddings(embedder),
        vector_name="dense",
    )
    docs = store.similarity_search("how many vacation days?", k=1)
    # THEN they find our chunk with its text and metadata
    assert docs[0].page_content == "Employees receive 25 days of paid annual leave."
    assert docs[0].metadata["source"] == "s3://docs/handbook/leave.md"
    assert docs[0].metadata["page"] == 1


def test_exists_is_asked_once_then_known(index: QdrantIndex) -> None:
    # GIVEN a collection made by another instance (another Lambda container)
    QdrantIndex(index.client, "test").ensure_collection(8)
    calls: list[str] = []
    original = index.client.collection_exists

    def counting(name: str) -> bool:
        calls.append(name)
        return original(name)

    index.client.collection_exists = counting  # type: ignore[method-assign]
    # WHEN this instance answers several queries
    for _ in range(3):
        index.search([1.0] + [0.0] * 7, limit=1)
    # THEN it asked Qdrant whether the collection exists once (no extra round trip per query)
    assert calls == ["test"]

"""Hybrid retrieval through the pipeline: document context in what is embedded, BM25 vectors on every
chunk, the lexical side of every search, and collections made before hybrid retrieval."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstream.blobs import MemoryBlobs
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.errors import ConfigError
from ragstream.evaluation import corpus_refs
from ragstream.index import Point, SparseVector, VectorIndex, chunk_metadata, open_index, point_id
from ragstream.ingest import Pipeline
from ragstream.lexical import encode_document
from ragstream.query import Retriever, lexical_query

BODY = """## Results of Operations

Net revenue for the quarter was ${revenue} million, up from the same quarter a year earlier.
Gross margin was {margin}% of net revenue, and the Company held hiring flat.

## Liquidity

At the end of the quarter the Company held cash of ${cash} million and no debt.
"""


class Recording(LocalEmbeddings):
    """The offline model, remembering every text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.seen += texts
        return super().embed_documents(texts)


@pytest.fixture(scope="module")
def embedder() -> Recording:
    return Recording()


def reports() -> dict[str, bytes]:
    """Two quarterly reports alike but for their title and figures: the body never names the company."""
    docs = {}
    for n, (company, revenue, margin, cash) in enumerate(
        [("Harborlane Coffee", 412, 38, 188), ("Veltrix Semiconductor", 1280, 52, 2150)], start=1
    ):
        text = f"# {company} Quarterly Report, Q2 2024\n\n" + BODY.format(
            revenue=revenue, margin=margin, cash=cash
        )
        docs[f"s3://ragstream-eval/filings/report-{n}.md"] = text.encode()
    return docs


def test_chunks_are_embedded_with_their_document_context_and_stored_as_they_are(
    tmp_path: Path, embedder: Recording
) -> None:
    # GIVEN two reports whose chunks say "the Company", ingested hybrid with title and section context
    settings = Settings(
        home=tmp_path,
        index="edge",
        retrieval="hybrid",
        embed_context="title,section",
        chunk_size=40,
        chunk_overlap=0,
    )
    docs = reports()
    pipeline = Pipeline.from_settings(settings, store=MemoryBlobs(docs), embedder=embedder)
    embedder.seen.clear()
    outcomes = pipeline.run(corpus_refs(docs))
    assert [o.status for o in outcomes] == ["indexed", "indexed"]
    # THEN what was embedded carries the title and the section; what is stored is the chunk's own text
    cash = next(t for t in embedder.seen if "cash of $2150" in t)
    assert cash.startswith("Veltrix Semiconductor Quarterly Report, Q2 2024 › Liquidity\n\n")
    retriever = Retriever(settings, embedder, pipeline.index)
    hits = retriever.search("How much cash did Veltrix Semiconductor hold?", top_k=2)
    assert hits[0].source.endswith("report-2.md") and "cash of $2150 million" in hits[0].text
    assert "Veltrix" not in hits[0].text and not hits[0].text.startswith("Veltrix")
    # AND the hit's score is the fused one (reciprocal rank), not a cosine
    assert 0 < hits[0].score <= 2 / 60 + 1e-6
    pipeline.index.close()


def test_retrieval_and_context_are_part_of_the_fingerprint(tmp_path: Path) -> None:
    base = Settings(home=tmp_path)
    assert base.retrieval == "hybrid" and base.context_parts == {"title", "section"}
    others = [
        Settings(home=tmp_path, retrieval="dense"),
        Settings(home=tmp_path, embed_context="none"),
        Settings(home=tmp_path, embed_context="title"),
        Settings(home=tmp_path, embed_context="title,section,page"),
    ]
    assert len({base.fingerprint, *(s.fingerprint for s in others)}) == 5
    assert Settings(home=tmp_path, embed_context="section,title").fingerprint == base.fingerprint
    with pytest.raises(ValueError, match="embed_context"):
        Settings(home=tmp_path, embed_context="title,chapter")


def test_dense_retrieval_writes_no_sparse_vector_and_searches_dense(
    tmp_path: Path, embedder: Recording
) -> None:
    settings = Settings(home=tmp_path, index="edge", retrieval="dense", embed_context="none")
    docs = reports()
    pipeline = Pipeline.from_settings(settings, store=MemoryBlobs(docs), embedder=embedder)
    pipeline.run(corpus_refs(docs))
    hits = Retriever(settings, embedder, pipeline.index).search(
        "cash held at the end of the quarter", top_k=2
    )
    assert hits and all(0.2 < h.score <= 1.0 for h in hits)  # cosine similarities: no fusion
    pipeline.index.close()


def old_collection(name: str, settings: Settings) -> VectorIndex:
    """A collection made as ragstream made them before hybrid retrieval: one dense vector, no sparse."""
    if name == "edge":
        import qdrant_edge as qe

        path = settings.home / "edge" / settings.collection
        path.mkdir(parents=True)
        config = qe.EdgeConfig(vectors={"dense": qe.EdgeVectorParams(size=8, distance=qe.Distance.Cosine)})
        qe.EdgeShard.create(str(path), config).close()
    else:
        from qdrant_client import QdrantClient
        from qdrant_client.http import models as qm

        client = QdrantClient(path=str(settings.home / "qdrant"))
        client.create_collection(
            settings.collection,
            vectors_config={"dense": qm.VectorParams(size=8, distance=qm.Distance.COSINE)},
        )
        client.close()
    return open_index(settings)


@pytest.mark.parametrize("name", ["edge", "qdrant"])
def test_a_collection_made_before_hybrid_is_searched_dense_and_refuses_sparse_points(
    name: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, index=name)  # type: ignore[arg-type]
    index = old_collection(name, settings)
    try:
        index.ensure_collection(8)
        source = "s3://docs/a.md"
        point = Point(
            id=point_id(source, "v1", 0),
            vector=[1.0] + [0.0] * 7,
            text="invoice ZX-9042",
            metadata=chunk_metadata(source=source, version="v1", chunk_index=0),
        )
        # dense points go in as before; a search with a lexical side is answered dense
        assert index.upsert([point]) == 1
        hits = index.search(point.vector, limit=1, lexical=lexical_query("ZX-9042"))
        assert hits[0].id == point.id and hits[0].score == pytest.approx(1.0, abs=1e-3)
        # a sparse point is refused with what to do
        indices, values = encode_document(point.text)
        sparse = point.model_copy(update={"sparse": SparseVector(indices=indices, values=values)})
        with pytest.raises(ConfigError, match=r"without the sparse vector.*RAGSTREAM_RETRIEVAL=dense"):
            index.upsert([sparse])
    finally:
        index.close()

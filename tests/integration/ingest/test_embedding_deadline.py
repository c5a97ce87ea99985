"""Embedding checks the invocation's remaining time: a document that cannot be embedded before the
deadline is parked (``pending``) and comes back later, and the documents embedded whole before it
are indexed in the same invocation. The clock moves only when the embedder works, so the budget is
exact; the index (embedded Qdrant), the ledger (SQLite) and the pipeline are real."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from pydantic import ConfigDict
from qdrant_client import QdrantClient

from ragstream.blobs import MemoryBlobs
from ragstream.budget import Deadline
from ragstream.config import Settings
from ragstream.index.qdrant import QdrantIndex
from ragstream.ingest import Pipeline
from ragstream.model import SourceRef, Status

SECONDS_PER_CALL = 6.0


class Clock:
    now = 0.0


class SlowEmbeddings(DeterministicFakeEmbedding):
    """LangChain's deterministic embedding, taking SECONDS_PER_CALL of the test's clock per call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    clock: Clock
    calls: int = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.clock.now += SECONDS_PER_CALL
        self.calls += 1
        return super().embed_documents(texts)


NOTE = "file:///docs/note.md"
BIG = "file:///docs/big.md"


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    big = "\n\n".join(
        f"## Clause {i}\n\nThe supplier shall keep records of shipment {i} for seven years and "
        f"report any loss within {i % 30 + 1} days to the compliance office of the buyer."
        for i in range(300)
    )
    documents = {NOTE: b"# Note\n\nThe team meets on Tuesdays.\n", BIG: big.encode()}
    settings = Settings(
        home=tmp_path,
        embedding_provider="local",
        extract_isolation="none",
        embedding_batch_size=8,
        openai_concurrency=1,  # slices of 8 texts
        chunk_size=64,
        chunk_overlap=0,
    )
    clock = Clock()
    return Pipeline.from_settings(
        settings,
        store=MemoryBlobs(documents),
        index=QdrantIndex(QdrantClient(":memory:"), "t"),
        embedder=SlowEmbeddings(size=384, clock=clock),
    )


def _deadline(pipeline: Pipeline, seconds: float) -> Deadline:
    clock: Clock = pipeline.embedder.clock  # type: ignore[attr-defined]
    ends = clock.now + seconds
    return Deadline(remaining=lambda: ends - clock.now, reserve=0.0)


def test_a_document_the_time_left_cannot_embed_is_parked_and_its_batch_mate_indexed(
    pipeline: Pipeline,
) -> None:
    refs = [SourceRef(source=NOTE, key="note.md"), SourceRef(source=BIG, key="big.md")]
    # GIVEN 30 s left: four slices of embedding (6 s each) before less than MIN_EMBED_SECONDS remain
    outcomes = {o.source: o for o in pipeline.run(refs, deadline=_deadline(pipeline, 30))}
    # THEN the note, embedded whole, is indexed; the big document is parked with nothing written
    assert outcomes[NOTE].status == "indexed"
    assert outcomes[BIG].status == "pending" and "no time left" in (outcomes[BIG].reason or "")
    assert pipeline.embedder.calls == 4  # type: ignore[attr-defined]
    assert pipeline.index.count(BIG) == 0
    record = pipeline.ledger.get(BIG)
    assert record is not None and record.status is Status.PENDING
    # WHEN it comes back in an invocation with time for it
    again = {o.source: o for o in pipeline.run(refs, deadline=_deadline(pipeline, 900))}
    # THEN it is indexed, and the note is not embedded again
    assert again[BIG].status == "indexed" and again[NOTE].status == "skipped"
    assert pipeline.index.count(BIG) == again[BIG].chunks > 32


def test_a_document_of_more_chunks_than_one_invocation_can_embed_fails_on_its_limit(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, embedding_provider="local", extract_isolation="none", max_chunks=5)
    text = "\n\n".join(f"Paragraph {i}. " + "Words of this paragraph fill a chunk. " * 40 for i in range(20))
    pipeline = Pipeline.from_settings(
        settings,
        store=MemoryBlobs({BIG: text.encode()}),
        index=QdrantIndex(QdrantClient(":memory:"), "t"),
        embedder=DeterministicFakeEmbedding(size=384),
    )
    [outcome] = pipeline.run([SourceRef(source=BIG, key="big.md")])
    assert outcome.status == "failed" and outcome.error_kind == "TooLarge" and not outcome.retryable
    assert "RAGSTREAM_MAX_CHUNKS" in (outcome.reason or "")

"""A small collection written with the real local embedder and the SQLite ledger beside it: what the
query API tests read (:data:`DOCS`), and a feedback sink that keeps what it is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ragstream.api import Feedback, FeedbackResult
from ragstream.embeddings import LocalEmbeddings
from ragstream.index import Point, VectorIndex, chunk_metadata, point_id
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.model import DocumentRecord, Status

#: A placeholder, not a secret: the key the test apps require.
API_KEY = "test-api-key"


@dataclass(frozen=True)
class Doc:
    source: str
    content_type: str
    team: str
    chunks: list[tuple[int | None, str | None, str]]  # (page, title, text)


DOCS = [
    Doc(
        "s3://docs/handbook/leave-policy.md",
        "text/markdown",
        "people",
        [
            (
                None,
                "Annual leave",
                "Employees receive 25 days of paid annual leave per calendar year. "
                "Unused days can be carried over until the end of March.",
            ),
            (
                None,
                "Sick leave",
                "Sick leave does not count against annual leave and needs a doctor's note after three days.",
            ),
        ],
    ),
    Doc(
        "s3://docs/finance/q3 report.pdf",
        "application/pdf",
        "finance",
        [
            (1, "Summary", "This report covers the third quarter of 2024 for the whole group."),
            (
                2,
                "Revenue",
                "Revenue in the third quarter of 2024 was 18.4 million EUR, up 12 percent year over year.",
            ),
            (3, "Margins", "Gross margin improved to 71 percent thanks to lower hosting costs."),
        ],
    ),
    Doc(
        "s3://docs/engineering/adr-007-vector-database.md",
        "text/markdown",
        "platform",
        [
            (
                None,
                "Decision",
                "We chose Qdrant as the vector database because it supports payload filtering "
                "and runs embedded for local development.",
            ),
        ],
    ),
]

EXTRA_RECORDS = [
    DocumentRecord(
        source="s3://docs/broken/scan.pdf",
        status=Status.FAILED,
        error="the PDF is encrypted",
        error_kind="EncryptedDocument",
        content_type="application/pdf",
    ),
    DocumentRecord(source="s3://docs/old/retired.md", status=Status.DELETED),
]


def seed_index(index: VectorIndex, embedder: LocalEmbeddings) -> int:
    """Write the chunks of :data:`DOCS` into ``index``; returns how many."""
    index.ensure_collection(384)
    points: list[Point] = []
    for doc in DOCS:
        vectors = embedder.embed_documents([text for _, _, text in doc.chunks])
        for i, ((page, title, text), vector) in enumerate(zip(doc.chunks, vectors, strict=True)):
            meta = chunk_metadata(
                source=doc.source,
                version="v1",
                chunk_index=i,
                page=page,
                title=title,
                content_type=doc.content_type,
                bucket="docs",
                key=doc.source.removeprefix("s3://docs/"),
                extra={"team": doc.team},
            )
            points.append(Point(id=point_id(doc.source, "v1", i), vector=vector, text=text, metadata=meta))
    return index.upsert(points)


def seed_ledger(ledger: SQLiteLedger) -> None:
    """One record per source of :data:`DOCS`, plus a failed and a deleted one."""
    for doc in DOCS:
        pages = max((p or 0) for p, _, _ in doc.chunks) or None
        ledger.put(
            DocumentRecord(
                source=doc.source,
                status=Status.INDEXED,
                version="v1",
                content_type=doc.content_type,
                chunks=len(doc.chunks),
                pages=pages,
            )
        )
    for record in EXTRA_RECORDS:
        ledger.put(record)


def seed_home(home: Path, embedder: LocalEmbeddings, collection: str = "ragstream") -> Path:
    """A RAGSTREAM_HOME with the embedded index (the default kind) and the SQLite ledger seeded
    (clients closed after)."""
    from ragstream.config import Settings
    from ragstream.index import open_index

    index = open_index(Settings(home=home, collection=collection))
    try:
        seed_index(index, embedder)
    finally:
        index.close()
    with SQLiteLedger(home / "ledger.sqlite") as ledger:
        seed_ledger(ledger)
    return home


@dataclass
class CapturingSink:
    """A feedback sink that keeps what it is given."""

    received: list[Feedback] = field(default_factory=list)

    def __call__(self, feedback: Feedback) -> FeedbackResult:
        self.received.append(feedback)
        return FeedbackResult(recorded=True)

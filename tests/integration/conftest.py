"""Fixtures of the query API tests: a small collection written with the real local embedder, a SQLite
ledger, the app over them, and the local HTTP server on an ephemeral port."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from backends import backend, chroma_server, pinecone_server, weaviate_peer  # noqa: F401  (fixtures: every store, servers, peers)

from ragstream.api import Feedback, FeedbackResult, QueryResolver, build_app
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.index import Point, VectorIndex, chunk_metadata, open_index, point_id
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.model import DocumentRecord, Status
from ragstream.query import Retriever
from ragstream.server import make_server


def _load_parent_conftest() -> Any:
    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("_ragstream_tests_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Both conftest files are imported as ``conftest``; whichever was imported last answers
# ``from conftest import load_event`` in test modules: this one offers the helpers of tests/conftest.py too.
_parent = _load_parent_conftest()
for _name in ("load_event", "EVENTS_DIR"):
    if hasattr(_parent, _name):
        globals()[_name] = getattr(_parent, _name)

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


@pytest.fixture(name="seed_home", scope="session")
def seed_home_fixture() -> Any:
    """:func:`seed_home`, for test modules (they cannot import this conftest by name reliably)."""
    return seed_home


@pytest.fixture(name="seed_index", scope="session")
def seed_index_fixture() -> Any:
    """:func:`seed_index`, for test modules."""
    return seed_index


@pytest.fixture(scope="session")
def embedder() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        home=tmp_path_factory.mktemp("api-home"),
        api_key=API_KEY,
        llm="extractive",
        embedding_provider="local",
        openai_api_key=None,
        max_body_bytes=4096,
    )


@pytest.fixture(scope="session")
def seeded_index(
    embedder: LocalEmbeddings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VectorIndex]:
    index = open_index(
        Settings(home=tmp_path_factory.mktemp("seeded"), index="qdrant", index_path=":memory:")
    )
    seed_index(index, embedder)
    yield index
    index.close()


@pytest.fixture(scope="session")
def seeded_ledger(api_settings: Settings) -> Iterator[SQLiteLedger]:
    ledger = SQLiteLedger(api_settings.ledger_path)
    seed_ledger(ledger)
    yield ledger
    ledger.close()


@pytest.fixture(scope="session")
def retriever(api_settings: Settings, embedder: LocalEmbeddings, seeded_index: VectorIndex) -> Retriever:
    return Retriever(api_settings, embedder, seeded_index, None)


@pytest.fixture(scope="session")
def feedback_sink() -> CapturingSink:
    return CapturingSink()


@pytest.fixture(scope="session")
def api_app(
    retriever: Retriever, seeded_ledger: SQLiteLedger, api_settings: Settings, feedback_sink: CapturingSink
) -> QueryResolver:
    return build_app(retriever, seeded_ledger, api_settings, feedback_sink)


@pytest.fixture(scope="session")
def live_server(api_app: QueryResolver) -> Iterator[str]:
    """The local HTTP server over the seeded app, on an ephemeral port; yields its base URL."""
    server = make_server(api_app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, name="api-server", daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()
    thread.join(5)

"""Fixtures of the integration tests: every store (``tests.support.backends``), the collection and SQLite
ledger of ``tests.support.seed``, the app over them, and the local HTTP server on an ephemeral port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ragstream.api import QueryResolver, build_app
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.index import VectorIndex, open_index
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.query import Retriever
from ragstream.server import make_server
from tests.support.backends import (  # noqa: F401  (fixtures: every store, servers, peers)
    backend,
    chroma_server,
    pinecone_server,
    weaviate_peer,
)
from tests.support.seed import API_KEY, CapturingSink, seed_home, seed_index, seed_ledger


@pytest.fixture(name="seed_home", scope="session")
def seed_home_fixture() -> Any:
    """:func:`tests.support.seed.seed_home`, as a fixture."""
    return seed_home


@pytest.fixture(name="seed_index", scope="session")
def seed_index_fixture() -> Any:
    """:func:`tests.support.seed.seed_index`, as a fixture."""
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

"""Every vector store the contract suite and the ingest scenarios run against, as pytest params.

Embedded engines always run. A Chroma server runs here (``chroma run`` on 127.0.0.1, a free port);
live services run when their URL (and key) are in the environment:
``RAGSTREAM_TEST_QDRANT_URL`` (+ ``_API_KEY``), ``RAGSTREAM_TEST_CHROMA_URL`` (+ ``_API_KEY``,
``_TENANT``, ``_DATABASE``), ``RAGSTREAM_TEST_MILVUS_URL`` (+ ``_API_KEY``), ``RAGSTREAM_TEST_WEAVIATE_URL``
(+ ``_API_KEY``, ``_GRPC_URL``). Weaviate also runs here through weaviate-client against the local peer
(``tests/peers/weaviate_server.py``), ``RAGSTREAM_TEST_PINECONE_API_KEY`` (+ ``_CLOUD``, ``_REGION``).
Pinecone also runs here through its real SDK against the local peer ``tests/peers/pinecone_server.py``
(``pinecone-peer``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ragstream.config import Settings
from ragstream.index import VectorIndex, open_index

#: (param id, what it needs to run, or None when it always runs here)
BACKENDS = [
    "qdrant-memory",
    "qdrant-path",
    "edge",
    "faiss",
    "chroma",
    "chroma-server",
    "milvus-lite",
    "weaviate-peer",
    "pinecone-peer",
    "qdrant-live",
    "chroma-live",
    "milvus-live",
    "weaviate-live",
    "pinecone-live",
]
LIVE = {
    "qdrant-live": "RAGSTREAM_TEST_QDRANT_URL",
    "chroma-live": "RAGSTREAM_TEST_CHROMA_URL",
    "milvus-live": "RAGSTREAM_TEST_MILVUS_URL",
    "weaviate-live": "RAGSTREAM_TEST_WEAVIATE_URL",
    "pinecone-live": "RAGSTREAM_TEST_PINECONE_API_KEY",
}


@dataclass
class Backend:
    """One store under test: settings that open it, and a fresh collection name per test."""

    name: str
    settings: Settings
    opened: list[VectorIndex] = field(default_factory=list)
    _shared: Any = None

    def open(self, collection: str | None = None) -> VectorIndex:
        """An index on this store (the same store for every call), on ``collection`` or the test's own."""
        settings = self.settings.model_copy(update={"collection": collection or self.settings.collection})
        if self.name == "qdrant-memory":  # one in-memory client: every index of the test shares it
            from qdrant_client import QdrantClient

            from ragstream.index.qdrant import QdrantIndex

            if self._shared is None:
                self._shared = QdrantClient(":memory:")
            index: VectorIndex = QdrantIndex(self._shared, settings.collection, batch_size=3)
        else:
            index = open_index(settings)
        self.opened.append(index)
        return index

    def close(self) -> None:
        if self.name == "pinecone-live":  # an index per test: drop them (a plan holds few indexes)
            from pinecone import Pinecone

            from ragstream.index.pinecone import index_name

            assert self.settings.index_api_key is not None
            with Pinecone(api_key=self.settings.index_api_key.get_secret_value()) as pc:
                for name in {index_name(getattr(i, "collection", "")) for i in self.opened}:
                    with contextlib.suppress(Exception):  # never made by this test
                        pc.indexes.delete(name, timeout=-1)
        for index in self.opened:
            with contextlib.suppress(Exception):  # already closed by the test
                index.close()
        self.opened.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``chroma run`` server on 127.0.0.1 and a free port; yields its URL."""
    chroma = shutil.which("chroma", path=str(Path(os.sys.executable).parent)) or shutil.which("chroma")
    if chroma is None:
        pytest.skip("the chroma CLI is not installed (pip install 'ragstream[chroma]')")
    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    log = open(folder / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(folder / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"chroma run did not start: {(folder / 'server.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="session")
def weaviate_peer() -> Iterator[Any]:
    """The Weaviate peer (REST + gRPC on free 127.0.0.1 ports) for the session, with an API key."""
    from tests.peers.weaviate_server import WeaviateServer

    with WeaviateServer(api_key="peer-key") as server:
        yield server


@pytest.fixture(scope="session")
def pinecone_server() -> Iterator[Any]:
    """The local Pinecone peer (REST control and data plane) on 127.0.0.1 and a free port."""
    from tests.peers.pinecone_server import PineconeServer

    with PineconeServer() as server:
        yield server


def backend_settings(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings that open store ``name`` (skips a live one without its URL in the environment)."""
    collection = f"t{uuid.uuid4().hex[:12]}"
    base: dict[str, Any] = {"home": tmp_path / "home", "collection": collection}
    if name in LIVE:
        url = os.environ.get(LIVE[name])
        if not url:
            also = "" if LIVE[name].endswith("_API_KEY") else " (and its _API_KEY)"
            pytest.skip(f"live service: set {LIVE[name]}{also} to run against it")
        if name == "pinecone-live":  # a key, no URL: Pinecone's public API; its own index per test
            return Settings(
                **base,
                index="pinecone",
                index_api_key=url,
                pinecone_cloud=os.environ.get("RAGSTREAM_TEST_PINECONE_CLOUD", "aws"),
                pinecone_region=os.environ.get("RAGSTREAM_TEST_PINECONE_REGION", "us-east-1"),
            )
        key = os.environ.get(LIVE[name].replace("_URL", "_API_KEY"))
        if name == "qdrant-live":
            return Settings(**base, index="qdrant", index_url=url, index_api_key=key)
        if name == "chroma-live":
            return Settings(
                **base,
                index="chroma",
                index_url=url,
                index_api_key=key,
                chroma_tenant=os.environ.get("RAGSTREAM_TEST_CHROMA_TENANT"),
                chroma_database=os.environ.get("RAGSTREAM_TEST_CHROMA_DATABASE"),
            )
        if name == "weaviate-live":
            grpc_url = os.environ.get("RAGSTREAM_TEST_WEAVIATE_GRPC_URL")
            return Settings(
                **base, index="weaviate", index_url=url, index_api_key=key, weaviate_grpc_url=grpc_url
            )
        return Settings(**base, index="milvus", index_url=url, index_api_key=key)
    if name == "qdrant-memory":
        return Settings(**base, index="qdrant", index_path=":memory:")
    if name == "qdrant-path":
        return Settings(**base, index="qdrant")
    if name == "milvus-lite":
        return Settings(**base, index="milvus")
    if name == "weaviate-peer":
        peer = request.getfixturevalue("weaviate_peer")
        return Settings(
            **base,
            index="weaviate",
            index_url=peer.url,
            index_api_key="peer-key",
            weaviate_grpc_url=peer.grpc_address,
        )
    if name == "pinecone-peer":
        peer = request.getfixturevalue("pinecone_server")
        return Settings(**base, index="pinecone", index_url=peer.url, index_api_key=peer.api_key)
    if name == "chroma-server":
        return Settings(**base, index="chroma", index_url=request.getfixturevalue("chroma_server"))
    return Settings(**base, index=name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store in turn, with a collection of the test's own."""
    b = Backend(request.param, backend_settings(request.param, tmp_path, request))
    yield b
    b.close()

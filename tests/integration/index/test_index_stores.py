"""What individual stores promise beyond the contract: FAISS survives a crash and locks its folder,
Chroma never embeds nor phones home, Qdrant retries a busy server after its Retry-After, and switching
stores re-indexes into the new one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from ragstream.config import Settings
from ragstream.errors import ConfigError
from ragstream.index import open_index
from ragstream.ingest import Pipeline
from tests.peers.served import JSONHandler, ServedHTTP
from tests.support.points import DIM, points

FAISS_WRITER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[2])
    from ragstream.config import Settings
    from ragstream.index import open_index
    from tests.support.points import DIM, points

    index = open_index(Settings(home=sys.argv[1], index="faiss"))
    index.ensure_collection(DIM)
    index.upsert(points("s3://docs/a/one.pdf", "v1", 30))
    index.checkpoint()
    index.upsert(points("s3://docs/b/two.pdf", "v1", 20))
    index.delete_source("s3://docs/a/one.pdf", only_version="v1")
    index.upsert(points("s3://docs/a/one.pdf", "v2", 5))
    print("written", flush=True)
    if sys.argv[3] == "crash":
        os._exit(1)  # no close, no checkpoint: the FAISS file is behind the sidecar
    sys.stdin.readline()  # hold the folder until told
    """
)


def run_writer(home: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", FAISS_WRITER, str(home), str(Path(__file__).resolve().parents[3]), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    return proc


def test_faiss_recovers_every_committed_write_after_a_crash(tmp_path: Path) -> None:
    # GIVEN a process that wrote, deleted and replaced points, then died without saving FAISS
    proc = run_writer(tmp_path, "crash")
    assert proc.wait(30) == 1
    # WHEN another process opens the folder
    index = open_index(Settings(home=tmp_path, index="faiss"))
    # THEN every committed write is there, and search answers from the rebuilt index
    assert index.versions() == {("s3://docs/b/two.pdf", "v1"): 20, ("s3://docs/a/one.pdf", "v2"): 5}
    target = points("s3://docs/a/one.pdf", "v2", 5)[3]
    assert index.search(target.vector, limit=1)[0].id == target.id
    deleted = points("s3://docs/a/one.pdf", "v1", 30)[7]
    assert all(h.id != deleted.id for h in index.search(deleted.vector, limit=10))
    index.close()
    # AND one checkpoint remains, of the sidecar's generation
    assert len(list((tmp_path / "faiss").glob("*.faiss"))) == 1


def test_faiss_refuses_a_folder_held_by_another_process_naming_it(tmp_path: Path) -> None:
    proc = run_writer(tmp_path, "hold")
    try:
        with pytest.raises(ConfigError, match=f"in use by process {proc.pid}"):
            open_index(Settings(home=tmp_path, index="faiss"))
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0
    # once it is gone, the folder opens, with everything the other process wrote
    index = open_index(Settings(home=tmp_path, index="faiss"))
    assert index.count() == 25
    index.close()


def test_chroma_collections_have_no_embedding_function_and_no_telemetry(tmp_path: Path) -> None:
    index = open_index(Settings(home=tmp_path, index="chroma"))
    index.ensure_collection(DIM)
    assert index.client.get_settings().anonymized_telemetry is False  # type: ignore[attr-defined]
    # the collection as ragstream (and a second process) opens it has no embedding function: Chroma
    # cannot embed text with it (its default function would download a model at run time)
    for opened in (index, open_index(Settings(home=tmp_path, index="chroma"))):
        collection = opened._collection()  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="You must provide an embedding function"):
            collection.query(query_texts=["anything"], n_results=1)
    index.close()


@pytest.mark.parametrize(("first", "second"), [("edge", "faiss"), ("chroma", "milvus"), ("faiss", "qdrant")])
def test_switching_stores_reindexes_everything_into_the_new_one(
    tmp_path: Path, embedder: object, first: str, second: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nEmployees receive 25 days of paid annual leave per year.\n")
    (docs / "travel.md").write_text("# Travel\n\nTrain journeys under six hours go second class.\n")

    def sync(index_name: str, **extra: object) -> list[str]:
        settings = Settings(home=tmp_path / "home", index=index_name, embedding_provider="local", **extra)
        pipeline = Pipeline.from_settings(settings, embedder=embedder)  # type: ignore[arg-type]
        try:
            statuses = sorted(o.status for o in pipeline.sync(str(docs)))
            assert pipeline.index.count() > 0
            return statuses
        finally:
            pipeline.index.close()

    # GIVEN the folder ingested into the first store
    assert sync(first) == ["indexed", "indexed"]
    assert sync(first) == ["skipped", "skipped"]
    # WHEN the store changes, THEN the next ingest indexes everything into the new one
    assert sync(second) == ["indexed", "indexed"]
    assert sync(second) == ["skipped", "skipped"]
    # AND so does a new collection in the same store
    assert sync(second, collection="other") == ["indexed", "indexed"]


@pytest.mark.parametrize("store", ["qdrant", "chroma", "weaviate"])
def test_a_server_store_is_opened_without_a_call_and_ping_reports_it_down(tmp_path: Path, store: str) -> None:
    from ragstream.errors import IndexUnavailable
    from tests.support.backends import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = Settings(home=tmp_path, index=store, index_url=url, qdrant_timeout=1)
    index = open_index(settings)  # no network call: a cold start pays only for what it uses
    with pytest.raises(IndexUnavailable):
        index.ping()
    index.close()


FIRST_USE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from ragstream.config import Settings
    from ragstream.index import FirstUseIndex, SearchFilter
    from tests.support.points import DIM, points

    index = FirstUseIndex(Settings(home=sys.argv[1], index="edge"))
    before = sorted(m for m in sys.modules if m.split(".")[0] in ("qdrant_edge", "ragstream"))
    index.ensure_collection(DIM)
    index.upsert(points("s3://docs/a/one.pdf", "v1", 3) + points("s3://docs/b/two.pdf", "v1", 2))
    index.delete_source("s3://docs/a/one.pdf", keep_version="v2")
    hits = index.search([1.0] + [0.0] * (DIM - 1), limit=5, flt=SearchFilter(source_prefix="s3://docs/b/"))
    print(json.dumps({
        "store_loaded_before_use": "qdrant_edge" in {m.split(".")[0] for m in before},
        "edge_module_before_use": "ragstream.index.edge" in before,
        "collection": index.collection,
        "hybrid": index.capabilities.hybrid,
        "count": index.count(),
        "versions": sorted(f"{s}@{v}={n}" for (s, v), n in index.versions().items()),
        "hit_sources": sorted({h.source for h in hits}),
    }))
    index.close()
    index.close()  # closing twice (or never opened) is a no-op
    """
)


def test_a_first_use_index_opens_its_store_only_when_used(tmp_path: Path) -> None:
    # GIVEN the index the query API builds at start: a FirstUseIndex on the embedded Qdrant Edge
    # WHEN a fresh process builds it, then writes, deletes and searches through it
    out = subprocess.run(
        [sys.executable, "-c", FIRST_USE, str(tmp_path), str(Path(__file__).resolve().parents[3])],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # THEN nothing of the store was imported before the first use
    assert result["store_loaded_before_use"] is False and result["edge_module_before_use"] is False
    # AND every call reached the real store: the delete, the filter and the counts are the store's
    assert result["collection"] == "ragstream" and result["hybrid"] is True
    assert result["count"] == 2
    assert result["versions"] == ["s3://docs/b/two.pdf@v1=2"]
    assert result["hit_sources"] == ["s3://docs/b/two.pdf"]


def test_a_first_use_index_raises_the_stores_config_error_at_first_use(tmp_path: Path) -> None:
    from ragstream.index import FirstUseIndex

    # GIVEN a server store whose URL is not one (the settings take it; the store's module refuses it)
    index = FirstUseIndex(Settings(home=tmp_path, index="weaviate", index_url="ftp://weaviate.example"))
    assert index.opened is False
    # WHEN it is first used THEN it raises the store's own ConfigError, naming the setting
    with pytest.raises(ConfigError, match="RAGSTREAM_INDEX_URL must be an http"):
        index.ping()
    assert index.opened is False


class _FlakyQdrant(JSONHandler):
    """Answers ``GET /collections/<name>/exists`` with the statuses queued on the server (then
    "exists"), recording when each request arrived."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.arrivals.append(time.monotonic())
        if server.answers:
            status, headers = server.answers.pop(0)
            self._json(status, {"status": {"error": "busy"}, "time": 0}, headers)
        else:
            self._json(200, {"result": {"exists": True}, "status": "ok", "time": 0})


def test_qdrant_retries_5xx_and_429_after_its_retry_after(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    from ragstream.errors import IndexUnavailable
    from ragstream.index.qdrant import QdrantIndex

    served = ServedHTTP(_FlakyQdrant, name="flaky-qdrant")
    httpd: Any = served.httpd
    try:
        # GIVEN a Qdrant answering 503, then 429 with Retry-After: 1 s, then the answer
        httpd.arrivals, httpd.answers = [], [(503, {}), (429, {"Retry-After": "1"})]
        client = QdrantClient(url=served.url, check_compatibility=False, timeout=5)
        index = QdrantIndex(client, "docs", retries=3)
        # WHEN the index asks whether its collection exists THEN it does, on the third try
        assert index.exists()
        assert len(httpd.arrivals) == 3
        # AND the try after the 429 came no earlier than its Retry-After (a lower bound only)
        assert httpd.arrivals[2] - httpd.arrivals[1] >= 1.0
        # AND a Qdrant that keeps failing is IndexUnavailable after the tries allowed
        httpd.arrivals, httpd.answers = [], [(502, {})] * 10
        with pytest.raises(IndexUnavailable, match="after 2 tries"):
            QdrantIndex(client, "docs", retries=1).exists()
        assert len(httpd.arrivals) == 2
        client.close()
    finally:
        served.close()

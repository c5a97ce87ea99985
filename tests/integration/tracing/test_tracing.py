"""Langfuse tracing against a local receiver: the OTLP export decoded into trace trees, scores, prompts.

The receiver (``tests/peers/langfuse_server.py``) accepts what the real SDK sends; nothing is mocked
on the ragstream side. Every connection the process opens is watched: only the local peers are ever
contacted, and without keys none at all.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstream import tracing
from ragstream.api import FEEDBACK_SCORE, build_app, tracing_feedback
from ragstream.blobs import Blobs
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings, count_tokens
from ragstream.index import VectorIndex, open_index
from ragstream.ingest import Outcome, Pipeline
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.query import NO_ANSWER, Retriever
from ragstream.server import make_server
from ragstream.tracing import NOOP, LangfuseTracer, build_tracer
from tests.peers.langfuse_server import ExportedSpan, LangfuseServer

ROOT = Path(__file__).resolve().parents[3]
API_KEY = "test-api-key"  # a placeholder, not a secret
FLUSH_TIMEOUT = 1.0
LEAVE = (
    "Employees receive 25 days of paid annual leave per calendar year. Unused days carry over until March."
)
TRAVEL = (
    "Hotels in London may cost up to 220 GBP per night. Economy class is booked for flights under six hours."
)


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket of this process connects to, while the test runs."""
    seen: list[Any] = []
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def make_tracer(
    server: LangfuseServer, *, url: str | None = None, timeout: float = FLUSH_TIMEOUT
) -> LangfuseTracer:
    assert server.public_key and server.secret_key
    return LangfuseTracer(
        public_key=server.public_key,
        secret_key=server.secret_key,
        host=url or server.url,
        environment="test",
        flush_timeout=timeout,
    )


def settings_for(home: Path, **extra: Any) -> Settings:
    return Settings(home=home, embedding_provider="local", llm="extractive", openai_api_key=None, **extra)


def make_pipeline(home: Path, embedder: LocalEmbeddings, tracer: tracing.Tracer) -> Pipeline:
    settings = settings_for(home)
    return Pipeline(
        settings=settings,
        embedder=embedder,
        index=open_index(settings.model_copy(update={"index": "qdrant", "index_path": ":memory:"})),
        ledger=SQLiteLedger(settings.ledger_path),
        store=Blobs(),
        length=count_tokens,
        tracer=tracer,
    )


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text(f"# Annual leave\n\n{LEAVE}\n", encoding="utf-8")
    (folder / "travel.txt").write_text(TRAVEL + "\n", encoding="utf-8")
    (folder / "empty.md").write_text("", encoding="utf-8")
    return folder


def roots_after_flush(
    server: LangfuseServer, tracer: LangfuseTracer, name: str, n: int
) -> list[ExportedSpan]:
    assert tracer.flush(10)
    assert server.wait_for(lambda s: len(s.roots(name)) >= n), [r.name for r in server.roots()]
    return server.roots(name)


def by_source(roots: list[ExportedSpan]) -> dict[str, ExportedSpan]:
    return {r.trace_metadata("source"): r for r in roots}


def only_local(addresses: list[Any], *ports: int) -> None:
    """Every connection went to one of the local peers: no product telemetry, nothing else."""
    assert addresses, "nothing was sent"
    for address in addresses:
        assert isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost"), address
        assert address[1] in ports, address


# -- ingest --------------------------------------------------------------------------------------------------


def test_ingest_traces_one_tree_per_document(
    langfuse_server: LangfuseServer,
    embedder: LocalEmbeddings,
    docs: Path,
    tmp_path: Path,
    connections: list[Any],
) -> None:
    # GIVEN a pipeline tracing to the receiver
    tracer = make_tracer(langfuse_server)
    pipeline = make_pipeline(tmp_path / "home", embedder, tracer)

    # WHEN a folder of two good documents and an empty one is ingested
    outcomes = {o.source.rsplit("/", 1)[-1]: o for o in pipeline.sync(str(docs))}
    roots = by_source(roots_after_flush(langfuse_server, tracer, "ingest", 3))

    # THEN each document has one trace, named, tagged, with the spans of every step
    assert {o.status for o in outcomes.values()} == {"indexed", "failed"}
    assert len(langfuse_server.traces()) == 3
    leave = roots[(docs / "leave.md").as_uri()]
    print("\n" + leave.render(("metadata.engine", "metadata.chunks", "usage_details", "points_upserted")))
    assert leave.attributes["langfuse.trace.name"] == "ingest"
    assert leave.attributes["langfuse.environment"] == "test"
    tags = leave.attributes["langfuse.trace.tags"]
    assert {"ingest", "indexed", "content_type:text/markdown"} <= set(tags)
    assert leave.trace_metadata("key") == "leave.md"
    assert len(leave.trace_metadata("version")) == 64  # sha256 of the bytes
    assert leave.trace_metadata("content_type") == "text/markdown"
    assert leave.json("output")["status"] == "indexed"
    assert [c.name for c in leave.children] == ["fetch", "extract", "chunk", "embed", "index"]

    fetch, extract, chunk, embed, index = leave.children
    assert fetch.metadata("bytes") == len((docs / "leave.md").read_bytes())
    assert extract.metadata("engine") == outcomes["leave.md"].engine
    assert extract.metadata("content_type") == "text/markdown"
    assert chunk.metadata("chunks") == outcomes["leave.md"].chunks >= 1
    assert embed.type == "embedding"
    assert embed.attributes["langfuse.observation.model.name"] == "all-MiniLM-L6-v2"
    tokens = embed.json("usage_details")["input"]
    assert tokens == embed.metadata("tokens") >= count_tokens(LEAVE)  # MiniLM word pieces of its chunks
    assert embed.metadata("inputs") == outcomes["leave.md"].chunks
    assert embed.metadata("tokens_approximate") is False
    assert embed.metadata("batch_documents") == 2  # shared with travel.txt; its own share above
    assert index.metadata("points_upserted") == outcomes["leave.md"].chunks
    assert index.metadata("points_deleted") == 0
    for span in langfuse_server.walk(leave):  # the tree nests inside the document's time
        assert leave.start_ns <= span.start_ns <= span.end_ns <= leave.end_ns

    # AND the failure is recorded with its reason
    empty = roots[(docs / "empty.md").as_uri()]
    assert empty.attributes["langfuse.observation.level"] == "ERROR"
    assert "empty" in empty.attributes["langfuse.observation.status_message"].lower()
    assert {"failed", "error:EmptyDocument"} <= set(empty.attributes["langfuse.trace.tags"])
    assert "embed" not in [c.name for c in empty.children]

    # AND only the receiver was contacted, with gzip-compressed OTLP and the project's keys
    only_local(connections, langfuse_server.port)
    assert langfuse_server.gzipped_exports >= 1
    pipeline.index.close()


def test_ingest_traces_skips_replaces_and_deletes(
    langfuse_server: LangfuseServer, embedder: LocalEmbeddings, docs: Path, tmp_path: Path
) -> None:
    tracer = make_tracer(langfuse_server)
    pipeline = make_pipeline(tmp_path / "home", embedder, tracer)
    first = {o.source: o for o in pipeline.sync(str(docs))}
    roots_after_flush(langfuse_server, tracer, "ingest", 3)
    langfuse_server.spans.clear()

    # WHEN one file changes, one is removed, and the rest are unchanged
    leave, travel = (docs / "leave.md"), (docs / "travel.txt")
    leave.write_text(
        f"# Annual leave\n\n{LEAVE}\n\n## Sick leave\n\nSick days need a note.\n", encoding="utf-8"
    )
    travel.unlink()
    pipeline.sync(str(docs))
    roots = by_source(roots_after_flush(langfuse_server, tracer, "ingest", 3))

    # THEN the replace counts the old version's points as deleted
    replaced = roots[leave.as_uri()]
    index = replaced.child("index")
    assert index.metadata("points_deleted") == first[leave.as_uri()].chunks
    # AND the removal is a trace of its own, with the points it deleted
    removed = roots[travel.as_uri()]
    assert "deleted" in removed.attributes["langfuse.trace.tags"]
    assert removed.child("index").metadata("points_deleted") == first[travel.as_uri()].chunks
    # AND the unchanged (still empty) file failed again, with no embedding
    assert "embed" not in [c.name for c in roots[(docs / "empty.md").as_uri()].children]

    # WHEN nothing changed: every document is a "skipped" trace, no embedding, no extraction
    langfuse_server.spans.clear()
    pipeline.sync(str(docs))
    skipped = by_source(roots_after_flush(langfuse_server, tracer, "ingest", 1))[leave.as_uri()]
    assert "skipped" in skipped.attributes["langfuse.trace.tags"]
    assert [c.name for c in skipped.children] == []
    pipeline.index.close()


def test_unreachable_langfuse_never_stalls_an_ingest(
    embedder: LocalEmbeddings, docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def timed(tracer: tracing.Tracer, home: str) -> tuple[float, list[Outcome]]:
        pipeline = make_pipeline(tmp_path / home, embedder, tracer)
        started = time.perf_counter()
        outcomes = pipeline.sync(str(docs))
        tracer.flush()
        elapsed = time.perf_counter() - started
        pipeline.index.close()
        return elapsed, outcomes

    timed(NOOP, "warm")  # model loaded, caches warm
    baseline, _ = timed(NOOP, "off")
    with LangfuseServer(public_key="pk-lf-up", secret_key="sk-lf-up") as server:
        normal, _ = timed(make_tracer(server), "up")
        assert len(server.roots("ingest")) == 3

    # GIVEN a Langfuse that refuses connections (the receiver is gone)
    with LangfuseServer(public_key="pk-lf-down", secret_key="sk-lf-down") as gone:
        down_url = gone.url
    down, outcomes = timed(make_tracer(gone, url=down_url), "down")
    assert sorted(o.status for o in outcomes) == ["failed", "indexed", "indexed"]
    assert down < normal + FLUSH_TIMEOUT + 1.0

    # GIVEN a Langfuse that accepts connections and never answers
    with LangfuseServer(public_key="pk-lf-hang", secret_key="sk-lf-hang") as hanging:
        hanging.hang()
        tracer = make_tracer(hanging)
        hung, outcomes = timed(tracer, "hang")
        assert sorted(o.status for o in outcomes) == ["failed", "indexed", "indexed"]
        assert hung < baseline + FLUSH_TIMEOUT + 1.5
        started = time.perf_counter()
        tracer.flush()  # the next invocation's flush is bounded too
        assert time.perf_counter() - started < FLUSH_TIMEOUT + 0.5
    with capsys.disabled():
        print(
            f"\ningest of 3 files: no tracing {baseline:.2f}s, Langfuse up {normal:.2f}s, "
            f"refusing {down:.2f}s, black-holed {hung:.2f}s (flush bound {FLUSH_TIMEOUT}s)"
        )


# -- query ---------------------------------------------------------------------------------------------------


@pytest.fixture
def traced_api(
    langfuse_server: LangfuseServer,
    openai_server: Any,
    embedder: LocalEmbeddings,
    seeded_index: VectorIndex,
    seeded_ledger: SQLiteLedger,
) -> Iterator[tuple[str, LangfuseTracer, Settings]]:
    """The query API with the chat model (the OpenAI peer), tracing to the receiver, over HTTP."""
    openai_server.chat_reply = lambda body: "Revenue in Q3 2024 was 18.4 million EUR [1]."
    settings = Settings(
        api_key=API_KEY,
        llm="openai",
        embedding_provider="local",
        openai_api_key="sk-placeholder",
        openai_base_url=f"{openai_server.url}/v1",
        openai_max_retries=0,
        openai_timeout=10,
        langfuse_prompt_name="rag-answer",
    )
    tracer = make_tracer(langfuse_server)
    retriever = Retriever.from_settings(settings, embedder=embedder, index=seeded_index, tracer=tracer)
    server = make_server(
        build_app(retriever, seeded_ledger, settings, tracing_feedback(tracer)), "127.0.0.1", 0
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url, tracer, settings
    server.shutdown()
    server.server_close()


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, headers={"x-api-key": API_KEY}, timeout=30)


def test_answer_trace_generation_prompt_and_feedback_score(
    traced_api: tuple[str, LangfuseTracer, Settings],
    langfuse_server: LangfuseServer,
    openai_server: Any,
    connections: list[Any],
) -> None:
    url, tracer, _ = traced_api
    langfuse_server.add_prompt(
        "rag-answer", "Answer from these sources only.\n{{sources}}\n\nQ: {{question}}", version=7
    )

    # WHEN a client asks, with its user and session ids
    question = "What was the revenue in Q3 2024?"
    response = post(url, "/ask", {"question": question, "top_k": 3, "user_id": "u-42", "session_id": "s-1"})
    answer = response.json()

    # THEN the answer carries its trace id, and the prompt came from Langfuse
    assert response.status_code == 200, answer
    trace_id = answer["trace_id"]
    assert tracing.is_trace_id(trace_id)
    sent = openai_server.requests_to("/v1/chat/completions")[-1].body["messages"][0]["content"]
    assert sent.startswith("Answer from these sources only.") and sent.endswith(f"Q: {question}")

    # WHEN the user scores the answer
    feedback = post(url, "/feedback", {"trace_id": trace_id, "score": 0.0, "comment": "wrong quarter"})
    assert feedback.status_code == 202 and feedback.json() == {"recorded": True, "reason": None}
    [root] = roots_after_flush(langfuse_server, tracer, "ask", 1)
    assert langfuse_server.wait_for(lambda s: len(s.scores) == 1)

    # THEN one trace holds the retrieval and the generation, with usage and the prompt version
    print("\n" + root.render(("model.name", "usage_details", "prompt.name", "prompt.version", "user.id")))
    assert root.trace_id == trace_id
    assert root.attributes["user.id"] == "u-42" and root.attributes["session.id"] == "s-1"
    assert root.attributes["langfuse.trace.name"] == "ask"
    assert "grounded" in root.attributes["langfuse.trace.tags"]
    assert root.json("input")["question"] == question
    assert root.json("output")["citations"][0]["source"] == "s3://docs/finance/q3 report.pdf"
    assert [c.name for c in root.children] == ["embed-query", "retrieve", "answer"]
    retrieve, generation = root.child("retrieve"), root.child("answer")
    assert retrieve.type == "retriever"
    assert retrieve.json("input") == {"query": question, "top_k": 3, "filter": None}
    hits = retrieve.json("output")
    assert len(hits) == 3 and all({"source", "score", "page"} <= set(h) for h in hits)
    assert hits[0]["score"] >= hits[-1]["score"]
    assert generation.type == "generation"
    assert generation.attributes["langfuse.observation.model.name"] == "gpt-4o-mini"
    assert generation.json("input") == sent
    assert generation.json("output") == answer["answer"]
    usage = generation.json("usage_details")
    words = len(sent.split())  # the peer counts words as tokens
    assert usage["input"] == words and usage["output"] == len(answer["answer"].split())
    assert usage["total"] == usage["input"] + usage["output"]
    assert generation.attributes["langfuse.observation.prompt.name"] == "rag-answer"
    assert generation.attributes["langfuse.observation.prompt.version"] == 7
    for span in root.children:  # every observation carries the user and session for aggregation
        assert span.attributes["user.id"] == "u-42" and span.attributes["session.id"] == "s-1"

    # AND the feedback is a score on that trace
    [score] = langfuse_server.scores
    assert score["traceId"] == trace_id and score["name"] == FEEDBACK_SCORE
    assert score["value"] == 0.0 and score["comment"] == "wrong quarter" and score["dataType"] == "NUMERIC"
    api_port = int(url.rsplit(":", 1)[1])  # the test's own requests to the API
    only_local(connections, langfuse_server.port, openai_server.port, api_port)


def test_packaged_prompt_is_the_fallback(
    traced_api: tuple[str, LangfuseTracer, Settings], langfuse_server: LangfuseServer, openai_server: Any
) -> None:
    url, tracer, _ = traced_api
    # GIVEN no prompt of that name in Langfuse
    response = post(url, "/ask", {"question": "What was the revenue in Q3 2024?", "top_k": 2})
    assert response.status_code == 200
    sent = openai_server.requests_to("/v1/chat/completions")[-1].body["messages"][0]["content"]
    assert sent.startswith("You answer questions using only the sources below")  # the packaged prompt
    [root] = roots_after_flush(langfuse_server, tracer, "ask", 1)
    generation = root.child("answer")
    assert generation.metadata("prompt_source") == "packaged"
    assert "langfuse.observation.prompt.name" not in generation.attributes  # fallbacks are never linked
    # AND the miss is remembered: the next answer does not ask Langfuse again
    asked = len([r for r in langfuse_server.requests if "/prompts/" in r.path])
    assert post(url, "/ask", {"question": "How many days of leave?", "top_k": 2}).status_code == 200
    assert len([r for r in langfuse_server.requests if "/prompts/" in r.path]) == asked


def test_feedback_for_an_unknown_trace_id_is_not_recorded(
    traced_api: tuple[str, LangfuseTracer, Settings], langfuse_server: LangfuseServer
) -> None:
    url, _, _ = traced_api
    response = post(url, "/feedback", {"trace_id": "not-a-trace", "score": 1})
    assert response.status_code == 202 and response.json()["recorded"] is False
    assert langfuse_server.scores == []


def test_user_and_session_ids_are_validated(traced_api: tuple[str, LangfuseTracer, Settings]) -> None:
    url, _, _ = traced_api
    response = post(url, "/ask", {"question": "leave?", "user_id": "x" * 201})
    assert response.status_code == 422
    assert post(url, "/ask", {"question": "leave?", "session_id": "caf\u00e9"}).status_code == 422


# -- the Lambda handler and the CLI flush --------------------------------------------------------------------


def test_query_lambda_flushes_before_it_returns(
    langfuse_server: LangfuseServer,
    tmp_path: Path,
    embedder: LocalEmbeddings,
    seed_home: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the query Lambda configured with Langfuse keys from the environment
    home = seed_home(tmp_path / "home", embedder)
    for name, value in {
        "RAGSTREAM_HOME": str(home),
        "RAGSTREAM_API_KEY": API_KEY,
        "RAGSTREAM_LLM": "extractive",
        "RAGSTREAM_EMBEDDING_PROVIDER": "local",
        "LANGFUSE_PUBLIC_KEY": langfuse_server.public_key,
        "LANGFUSE_SECRET_KEY": langfuse_server.secret_key,
        "LANGFUSE_BASE_URL": langfuse_server.url,
        "RAGSTREAM_LANGFUSE_FLUSH_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(name, str(value))
    for name in (
        "OPENAI_API_KEY",
        "RAGSTREAM_OPENAI_API_KEY",
        "RAGSTREAM_QDRANT_URL",
        "RAGSTREAM_INDEX_URL",
        "RAGSTREAM_LEDGER_TABLE",
    ):
        monkeypatch.delenv(name, raising=False)
    spec = importlib.util.spec_from_file_location("query_lambda_traced", ROOT / "functions/query/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = json.loads((ROOT / "events/http-ask.json").read_text(encoding="utf-8"))
    event["body"] = json.dumps({"question": "How many days of annual leave?", "user_id": "u-1"})
    event["isBase64Encoded"] = False

    # WHEN one request is handled
    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "query", 512, "req-1"
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:query"

    result = module.lambda_handler(event, Context())

    # THEN its trace has arrived by the time the handler returns (no background wait)
    assert result["statusCode"] == 200, result["body"]
    trace_id = json.loads(result["body"])["trace_id"]
    [root] = langfuse_server.roots("ask")
    assert root.trace_id == trace_id
    assert [c.name for c in root.children] == ["embed-query", "retrieve", "answer"]
    module.tracer.close()


def test_cli_ingest_flushes_at_exit(
    langfuse_server: LangfuseServer, docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragstream.cli import main

    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", str(langfuse_server.public_key))
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", str(langfuse_server.secret_key))
    monkeypatch.setenv("RAGSTREAM_LANGFUSE_HOST", langfuse_server.url)
    monkeypatch.setenv("RAGSTREAM_EMBEDDING_PROVIDER", "local")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["ingest", str(docs), "--home", str(tmp_path / "cli-home"), "--json"]) == 0
    assert len(langfuse_server.roots("ingest")) == 3  # sent before main() returned


# -- without keys: nothing leaves the machine ------------------------------------------------------------


def test_without_keys_nothing_is_sent_and_one_line_is_logged(
    embedder: LocalEmbeddings,
    docs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN sockets that refuse to connect anywhere, and no Langfuse keys
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a[0]))  # type: ignore[arg-type]
    for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "RAGSTREAM_LANGFUSE_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracing, "_off_logged", False)
    settings = settings_for(tmp_path / "home")
    caplog.set_level(logging.DEBUG)

    # WHEN documents are ingested and questions answered, traced "everywhere"
    tracer = build_tracer(settings)
    assert tracer is NOOP and not settings.tracing
    pipeline = make_pipeline(tmp_path / "home", embedder, build_tracer(settings))
    outcomes = pipeline.sync(str(docs))
    retriever = Retriever(settings, embedder, pipeline.index, None, build_tracer(settings))
    for _ in range(3):
        answer = retriever.ask("How many days of annual leave?")
    retriever.search("hotel limit")
    tracer.flush()
    tracing.flush_all()

    # THEN it all worked, nothing tried to connect, and tracing said once that it is off
    assert sorted(o.status for o in outcomes) == ["failed", "indexed", "indexed"]
    assert answer.answer != NO_ANSWER and answer.trace_id is None
    assert attempts == []
    lines = [r for r in caplog.records if r.name.startswith(("ragstream.tracing", "langfuse"))]
    assert [r.getMessage() for r in lines] == [
        "tracing is off: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to trace to Langfuse"
    ]
    assert "langfuse" not in sys.modules or not [r for r in caplog.records if r.levelno >= logging.WARNING]
    pipeline.index.close()

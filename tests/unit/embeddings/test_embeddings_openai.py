"""The OpenAI embedder against a real local OpenAI-compatible server."""

from __future__ import annotations

import json
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ragstream.config import Settings
from ragstream.embeddings import OpenAIEmbeddings, build_embeddings, translate_openai_error
from ragstream.errors import ConfigError, ServiceUnavailable, Throttled
from tests.peers.openai_server import OpenAIServer, fake_embedding

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, openai_server: OpenAIServer) -> Iterator[list[Any]]:
    """Every address a socket connects to; anything but the peer server is refused."""
    seen: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        seen.append(address)
        if address[:2] != ("127.0.0.1", openai_server.port):
            raise OSError(f"test blocks connections to {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield seen


@pytest.fixture(autouse=True)
def no_tiktoken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """tiktoken would download its BPE files: make any use of it fail loudly."""
    import tiktoken

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tiktoken was used")

    monkeypatch.setattr(tiktoken, "get_encoding", refuse)
    monkeypatch.setattr(tiktoken, "encoding_for_model", refuse)


def _settings(server: OpenAIServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embedding_provider": "openai",
        "openai_api_key": KEY,
        "openai_base_url": server.url + "/v1",
        "embedding_model": "text-embedding-3-small",
        "embedding_dimensions": 16,
        "embedding_batch_size": 4,
        "openai_max_retries": 2,
        "openai_timeout": 5.0,
        **overrides,
    }
    return Settings(**values)


def test_vectors_and_batching(openai_server: OpenAIServer, connections: list[Any]) -> None:
    # GIVEN the OpenAI embedder with batches of 4
    embedder = build_embeddings(_settings(openai_server))
    assert openai_server.requests == []  # building it called nobody
    texts = [f"text number {i}" for i in range(10)]
    # WHEN it embeds 10 texts and a query
    vectors = embedder.embed_documents(texts)
    query = embedder.embed_query("a question")
    # THEN the vectors are the server's, in order, from 3 + 1 requests of at most 4 texts
    assert vectors == [pytest.approx(fake_embedding(t, 16), abs=1e-6) for t in texts]
    assert query == pytest.approx(fake_embedding("a question", 16), abs=1e-6)
    calls = openai_server.requests_to("/v1/embeddings")
    # (the document's three requests go out together: they may arrive in any order)
    assert sorted(len(c.body["input"]) for c in calls[:3]) == [2, 4, 4] and len(calls[3].body["input"]) == 1
    assert sorted(t for c in calls[:3] for t in c.body["input"]) == sorted(texts)
    assert all(c.body["model"] == "text-embedding-3-small" and c.body["dimensions"] == 16 for c in calls)
    assert all(isinstance(t, str) for c in calls for t in c.body["input"])  # raw text, no tiktoken ids
    assert calls[0].headers["authorization"] == f"Bearer {KEY}"
    assert connections and all(a[:2] == ("127.0.0.1", openai_server.port) for a in connections)


def test_429_is_retried_then_succeeds(openai_server: OpenAIServer, connections: list[Any]) -> None:
    openai_server.fail(429, times=2)
    vector = build_embeddings(_settings(openai_server)).embed_query("hello")
    assert vector == pytest.approx(fake_embedding("hello", 16), abs=1e-6)
    assert len(openai_server.requests_to("/v1/embeddings")) == 3


def test_persistent_429_is_throttled(openai_server: OpenAIServer, connections: list[Any]) -> None:
    openai_server.fail(429, times=None)
    embedder = build_embeddings(_settings(openai_server, openai_max_retries=2))
    with pytest.raises(Throttled) as caught:
        embedder.embed_documents(["a", "b"])
    assert caught.value.retryable
    assert len(openai_server.requests) == 3  # the first try and 2 retries


def test_persistent_500_is_service_unavailable(openai_server: OpenAIServer, connections: list[Any]) -> None:
    openai_server.fail(500, times=None)
    with pytest.raises(ServiceUnavailable):
        build_embeddings(_settings(openai_server, openai_max_retries=1)).embed_query("x")
    assert len(openai_server.requests) == 2


def test_timeout_is_service_unavailable(openai_server: OpenAIServer, connections: list[Any]) -> None:
    openai_server.delay = 0.5
    settings = _settings(openai_server, openai_max_retries=0, openai_timeout=0.1)
    with pytest.raises(ServiceUnavailable):
        build_embeddings(settings).embed_query("x")


def test_unreachable_endpoint_is_service_unavailable(openai_server: OpenAIServer) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = _settings(openai_server, openai_base_url=f"http://127.0.0.1:{port}/v1", openai_max_retries=0)
    with pytest.raises(ServiceUnavailable):
        build_embeddings(settings).embed_query("x")


def test_401_is_a_config_error_without_the_key(openai_server: OpenAIServer, connections: list[Any]) -> None:
    # GIVEN a server that expects another key (its error message echoes part of ours, as OpenAI's does)
    openai_server.api_key = "sk-the-right-one"
    embedder = build_embeddings(_settings(openai_server))
    # WHEN embedding
    with pytest.raises(ConfigError, match="OPENAI_API_KEY") as caught:
        embedder.embed_documents(["a"])
    # THEN no retry, and the key is nowhere in the error, its chain or its traceback
    assert len(openai_server.requests) == 1
    rendered = "".join(traceback.format_exception(caught.value))
    assert KEY not in rendered and KEY[-4:] not in rendered
    assert not caught.value.retryable


@pytest.mark.parametrize("status", [403, 404, 400])
def test_other_client_errors_are_config_errors(
    openai_server: OpenAIServer, connections: list[Any], status: int
) -> None:
    openai_server.fail(status)
    with pytest.raises(ConfigError, match="RAGSTREAM_"):
        build_embeddings(_settings(openai_server)).embed_query("x")
    assert len(openai_server.requests) == 1


async def _aembed(settings: Settings) -> list[float]:
    from ragstream.integrations.langchain import RagstreamEmbeddings  # LangChain's async methods

    return await RagstreamEmbeddings(build_embeddings(settings)).aembed_query("async")


def test_async_errors_are_translated_too(openai_server: OpenAIServer, connections: list[Any]) -> None:
    import asyncio

    assert asyncio.run(_aembed(_settings(openai_server))) == pytest.approx(
        fake_embedding("async", 16), abs=1e-6
    )
    openai_server.fail(429, times=None)
    with pytest.raises(Throttled):
        asyncio.run(_aembed(_settings(openai_server, openai_max_retries=0)))


def test_chat_through_the_peer_and_translated_errors(
    openai_server: OpenAIServer, connections: list[Any]
) -> None:
    from ragstream.chat import OpenAIChat

    # GIVEN the answering model on the peer, whose reply is computed from the request
    openai_server.chat_reply = lambda body: f"echo: {body['messages'][-1]['content']}"
    chat = OpenAIChat(
        model="gpt-4o-mini", temperature=0.0, api_key=KEY, base_url=openai_server.url + "/v1", max_retries=0
    )
    # WHEN asked
    reply = chat.complete("ping")
    # THEN the reply, its usage in Langfuse's keys and its metadata come back
    assert reply.content == "echo: ping"
    usage = reply.usage
    assert usage is not None and usage["total"] == usage["input"] + usage["output"] > 0
    assert reply.metadata == {"model_name": "gpt-4o-mini", "finish_reason": "stop"}
    # AND the request was one user message with the model and temperature
    (request,) = openai_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["messages"] == [{"role": "user", "content": "ping"}]
    assert request.body["model"] == "gpt-4o-mini" and request.body["temperature"] == 0.0
    # AND its errors translate like the embedder's; other exceptions pass through unchanged
    openai_server.fail(429, times=None)
    with pytest.raises(Exception) as caught:
        chat.complete("again")
    assert isinstance(translate_openai_error(caught.value, model="gpt-4o-mini"), Throttled)
    other = ValueError("not openai")
    assert translate_openai_error(other) is other


# -- requests in flight together, bounded, and shrinking on 429 ----------------------------------------


def test_requests_go_out_together_up_to_the_bound(
    openai_server: OpenAIServer, connections: list[Any]
) -> None:
    # GIVEN a server taking 0.2 s per request, and an embedder allowed 3 requests in flight
    openai_server.delay = 0.2
    embedder = build_embeddings(_settings(openai_server, embedding_batch_size=2, openai_concurrency=3))
    texts = [f"chunk {i}" for i in range(24)]
    # WHEN it embeds 12 requests' worth of texts
    started = time.monotonic()
    vectors = embedder.embed_documents(texts)
    wall = time.monotonic() - started
    # THEN exactly 3 were in flight at the peak, never more, and the wall is ~4 rounds, not 12
    assert openai_server.peak_in_flight == 3
    assert len(openai_server.requests) == 12
    assert wall < 12 * 0.2 * 0.6
    # AND the vectors keep the order of the texts
    assert vectors == [pytest.approx(fake_embedding(t, 16), abs=1e-6) for t in texts]


def test_one_at_a_time_when_the_bound_is_one(openai_server: OpenAIServer, connections: list[Any]) -> None:
    openai_server.delay = 0.02
    embedder = build_embeddings(_settings(openai_server, embedding_batch_size=1, openai_concurrency=1))
    embedder.embed_documents([f"t{i}" for i in range(6)])
    assert openai_server.peak_in_flight == 1
    assert [r.body["input"] for r in openai_server.requests] == [[f"t{i}"] for i in range(6)]


def test_429s_shrink_concurrency_instead_of_a_retry_storm(
    openai_server: OpenAIServer, connections: list[Any]
) -> None:
    # GIVEN a server that can take only 2 requests at once (429 beyond), 50 ms per request
    openai_server.delay = 0.05
    openai_server.capacity = 2
    embedder = build_embeddings(
        _settings(openai_server, embedding_batch_size=1, openai_concurrency=8, openai_max_retries=20)
    )
    texts = [f"chunk {i}" for i in range(60)]
    # WHEN an embedder allowed 8 in flight embeds 60 requests' worth
    vectors = embedder.embed_documents(texts)
    # THEN every vector is there, in order
    assert vectors == [pytest.approx(fake_embedding(t, 16), abs=1e-6) for t in texts]
    # AND the embedder came down from 8 towards the server's 2. AIMD probes upwards by one request
    # per round and is cut back by a 429: about one 429 per 3-4 successes after the first burst
    # (~25 here); 8 workers retrying regardless would meet ~6 429s per round: ~180.
    requests = openai_server.requests
    assert openai_server.peak_in_flight <= 8
    assert len(openai_server.throttled) <= 40, len(openai_server.throttled)
    late = requests[len(requests) // 2 :]
    assert max(r.in_flight for r in late) <= 4
    assert embedder.last_limit is not None and embedder.last_limit.limit < 8


@dataclass(frozen=True)
class _Event:
    at: float  # time.monotonic() in the client: when it sent the request, or received the answer
    text: str  # the one input of the request (batches of one)
    status: int | None = None  # None: a request sent


def _recording_embedder(server: OpenAIServer, *, concurrency: int) -> tuple[OpenAIEmbeddings, list[_Event]]:
    """The OpenAI embedder over an httpx client whose hooks record, on the client's side, when each
    request is sent and when each answer arrives: what ragstream did, not when the server saw it."""
    import httpx

    events: list[_Event] = []
    lock = threading.Lock()

    def sent(request: httpx.Request) -> None:
        (text,) = json.loads(request.content)["input"]
        with lock:
            events.append(_Event(time.monotonic(), text))

    def answered(response: httpx.Response) -> None:
        (text,) = json.loads(response.request.content)["input"]
        with lock:
            events.append(_Event(time.monotonic(), text, response.status_code))

    client = httpx.Client(event_hooks={"request": [sent], "response": [answered]})
    embedder = OpenAIEmbeddings(
        model="text-embedding-3-small",
        api_key=KEY,
        base_url=server.url + "/v1",
        dimensions=16,
        batch_size=1,
        concurrency=concurrency,
        max_retries=2,
        timeout=5.0,
        backoff=0.01,  # without the server's hint it would come back within 10 ms
        http_client=client,
    )
    return embedder, events


RETRY_AFTER = 0.3


@pytest.mark.parametrize("concurrency", [1, 2])
def test_retry_after_is_honoured(
    openai_server: OpenAIServer, connections: list[Any], concurrency: int
) -> None:
    # GIVEN a server answering 429 to every 3rd request with Retry-After: 0.3 s
    openai_server.rate_limit_every = 3
    openai_server.retry_after = RETRY_AFTER
    openai_server.retry_after_ms = None
    embedder, events = _recording_embedder(openai_server, concurrency=concurrency)
    texts = [f"t{i}" for i in range(5)]
    # WHEN it embeds
    vectors = embedder.embed_documents(texts)
    # THEN the vectors are all there, each throttled text sent again
    assert vectors == [pytest.approx(fake_embedding(t, 16), abs=1e-6) for t in texts]
    throttled = [e for e in events if e.status == 429]
    sends = [e for e in events if e.status is None]
    assert throttled and len(throttled) == len(openai_server.throttled)
    assert len(sends) == len(texts) + len(throttled) == len(openai_server.requests)
    # AND ragstream sent the retry of a throttled text no earlier than Retry-After after the 429
    # reached it (times of the client's own sends: a busy machine only makes the gaps longer)
    for answer in throttled:
        retry = next(e for e in sends if e.text == answer.text and e.at > answer.at)
        assert retry.at - answer.at >= RETRY_AFTER - 1e-6, (answer, retry)
    # AND it held every other request too: with one request in flight at a time, whatever it sent
    # after a 429 arrived waited out the Retry-After (with two, one may already be on its way)
    if concurrency == 1:
        for answer in throttled:
            later = [e.at - answer.at for e in sends if e.at > answer.at]
            assert all(gap >= RETRY_AFTER - 1e-6 for gap in later), later


def test_a_refused_key_stops_the_batch(openai_server: OpenAIServer, connections: list[Any]) -> None:
    openai_server.api_key = "sk-the-right-one"
    openai_server.delay = 0.05
    embedder = build_embeddings(_settings(openai_server, embedding_batch_size=1, openai_concurrency=2))
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        embedder.embed_documents([f"t{i}" for i in range(40)])
    assert len(openai_server.requests) < 40  # the pending requests were never sent

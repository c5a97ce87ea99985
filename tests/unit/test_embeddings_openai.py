"""The OpenAI embedder against a real local OpenAI-compatible server."""

from __future__ import annotations

import socket
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peers.openai_server import OpenAIServer, fake_embedding
from ragstream.config import Settings
from ragstream.embeddings import build_embeddings, embedding_dimension, translate_openai_error
from ragstream.errors import ConfigError, ServiceUnavailable, Throttled

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
    assert [len(c.body["input"]) for c in calls] == [4, 4, 2, 1]
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


def test_embedding_dimension_without_a_call(openai_server: OpenAIServer, connections: list[Any]) -> None:
    assert embedding_dimension(_settings(openai_server)) == 16
    for model, size in [
        ("text-embedding-3-small", 1536),
        ("text-embedding-3-large", 3072),
        ("text-embedding-ada-002", 1536),
    ]:
        settings = _settings(openai_server, embedding_model=model, embedding_dimensions=None)
        assert embedding_dimension(settings) == size
    assert openai_server.requests == []


def test_embedding_dimension_of_an_unknown_model_probes(
    openai_server: OpenAIServer, connections: list[Any]
) -> None:
    settings = _settings(openai_server, embedding_model="my-embedder", embedding_dimensions=None)
    assert embedding_dimension(settings) == 1536
    assert len(openai_server.requests_to("/v1/embeddings")) == 1


async def _aembed(settings: Settings) -> list[float]:
    return await build_embeddings(settings).aembed_query("async")


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
    from langchain_openai import ChatOpenAI

    # GIVEN a chat model on the peer, whose reply is computed from the request
    openai_server.chat_reply = lambda body: f"echo: {body['messages'][-1]['content']}"
    chat = ChatOpenAI(model="gpt-4o-mini", api_key=KEY, base_url=openai_server.url + "/v1", max_retries=0)
    # WHEN asked, plainly and streaming
    reply = chat.invoke("ping")
    streamed = "".join(str(chunk.content) for chunk in chat.stream("pong"))
    # THEN the replies and usage come back
    assert reply.content == "echo: ping" and reply.usage_metadata and reply.usage_metadata["total_tokens"] > 0
    assert streamed == "echo: pong"
    assert [r.path for r in openai_server.requests] == ["/v1/chat/completions"] * 2
    # AND its errors translate like the embedder's; other exceptions pass through unchanged
    openai_server.fail(429, times=None)
    with pytest.raises(Exception) as caught:
        chat.invoke("again")
    assert isinstance(translate_openai_error(caught.value, model="gpt-4o-mini"), Throttled)
    other = ValueError("not openai")
    assert translate_openai_error(other) is other

"""``ragstream serve``'s HTTP server under load and under malformed or hostile requests.

The server runs on an ephemeral port over the seeded app of conftest.py (real local embedder,
embedded Qdrant, SQLite ledger); clients are raw sockets or httpx, in threads.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from ragstream.api import build_app
from ragstream.chat import OpenAIChat
from ragstream.query import Retriever
from ragstream.server import make_server
from tests.peers.openai_server import OpenAIServer

API_KEY = "test-api-key"  # the placeholder key of conftest.py's app
SLOW_ASK_SECONDS = 3.0


@pytest.fixture(scope="module")
def slow_server(
    api_settings: Any, embedder: Any, seeded_index: Any, seeded_ledger: Any
) -> Iterator[tuple[str, Any]]:
    """A server whose chat model (the OpenAI peer) takes SLOW_ASK_SECONDS per answer, with a short read
    timeout."""
    settings = api_settings.model_copy(update={"max_body_bytes": 65536})
    reply = "Employees get 25 days of paid leave [1]."
    peer = OpenAIServer(chat_reply=lambda body: reply, delay=SLOW_ASK_SECONDS)
    peer.start()
    chat = OpenAIChat(model="gpt-4o-mini", temperature=0.0, api_key="sk-peer", base_url=peer.url + "/v1")
    app = build_app(Retriever(settings, embedder, seeded_index, chat), seeded_ledger, settings)
    server = make_server(app, "127.0.0.1", 0, read_timeout=1.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url, server
    server.shutdown()
    server.server_close()
    thread.join(5)
    peer.stop()


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _raw(url: str, request: bytes, *, wait: float = 5.0) -> bytes:
    """Send raw bytes on a new connection; everything the server answers until it closes or goes quiet."""
    with socket.create_connection(_address(url), timeout=wait) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except TimeoutError:
            pass
    return b"".join(chunks)


def test_500_requests_from_20_clients_are_all_answered(live_server: str) -> None:
    # GIVEN 20 clients, each opening a new connection per request (the harshest case for the backlog)
    def one(i: int) -> int:
        path = "/health" if i % 2 else "/documents?limit=5"
        response = httpx.get(f"{live_server}{path}", headers={"x-api-key": API_KEY}, timeout=60)
        return response.status_code

    # WHEN they send 500 requests at once
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(one, range(500)))

    # THEN every one is answered (a reset would raise in the client)
    assert codes.count(200) == 500


def test_a_slow_ask_does_not_hold_up_a_search(slow_server: tuple[str, Any]) -> None:
    url, _ = slow_server
    headers = {"x-api-key": API_KEY}
    finished: dict[str, float] = {}

    def ask() -> None:
        httpx.post(f"{url}/ask", json={"question": "How many days of leave?"}, headers=headers, timeout=30)
        finished["ask"] = time.monotonic()

    # GIVEN an /ask whose model takes SLOW_ASK_SECONDS
    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(0.5)  # the ask is inside its model call by now
    # WHEN a search comes in meanwhile
    response = httpx.post(f"{url}/search", json={"query": "annual leave"}, headers=headers, timeout=30)
    finished["search"] = time.monotonic()
    asking.join(30)

    # THEN the search is answered while the ask is still waiting for its model
    assert response.status_code == 200
    assert response.json()["hits"]
    assert finished["search"] < finished["ask"]


def test_a_half_sent_request_is_dropped_after_the_read_timeout(slow_server: tuple[str, Any]) -> None:
    url, _ = slow_server
    started = time.monotonic()
    # headers never finished: the server (read timeout 1 s) closes the connection
    answer = _raw(url, b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Le", wait=10)
    assert answer == b""
    assert time.monotonic() - started < 8
    # a body that never arrives in full is dropped the same way, and nothing is resolved
    answer = _raw(url, b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", wait=10)
    assert answer == b""


def test_a_transfer_encoding_other_than_chunked_is_refused_and_nothing_is_smuggled(
    slow_server: tuple[str, Any],
) -> None:
    url, _ = slow_server
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    request = (
        b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n" + body
    )
    answer = _raw(url, request)
    assert answer.startswith(b"HTTP/1.1 501 ")
    assert answer.count(b"HTTP/1.1 ") == 1  # the body was not read as a second request
    assert b"Connection: close" in answer


def test_content_length_with_transfer_encoding_is_refused(slow_server: tuple[str, Any]) -> None:
    url, _ = slow_server
    request = (
        b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert _raw(url, request).startswith(b"HTTP/1.1 400 ")


def test_a_plain_chunked_body_is_read(slow_server: tuple[str, Any]) -> None:
    url, _ = slow_server
    payload = b'{"query": "annual leave", "top_k": 1}'
    body = (
        b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:10], payload[10:])) + b"0\r\n\r\n"
    )
    request = (
        b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"x-api-key: {API_KEY}\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + body
    )
    answer = _raw(url, request)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b'"hits"' in answer


def test_a_chunked_body_over_the_limit_is_413(slow_server: tuple[str, Any]) -> None:
    url, _ = slow_server
    chunk = b"x" * 40000
    body = (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 2 + b"0\r\n\r\n"
    request = b"POST /search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    assert _raw(url, request).startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"query": "x", "top_k": ' + b"9" * 5000 + b"}", b"too many digits"),
        (b'{"query": "x", "filter": ' + b"[" * 20000 + b"]" * 20000 + b"}", b"nested too deeply"),
    ],
    ids=["5000-digit integer", "nested 20k deep"],
)
def test_bodies_the_parser_cannot_take_are_400(
    slow_server: tuple[str, Any], body: bytes, reason: bytes
) -> None:
    url, _ = slow_server
    response = httpx.post(
        f"{url}/search",
        content=body,
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    assert reason in response.content


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/vnd.api+json"],
)
def test_an_odd_content_type_is_a_4xx(slow_server: tuple[str, Any], content_type: str) -> None:
    url, _ = slow_server
    response = httpx.post(
        f"{url}/search",
        content=b'{"query": "x"}',
        headers={"x-api-key": API_KEY, "content-type": content_type},
        timeout=30,
    )
    assert 400 <= response.status_code < 500
